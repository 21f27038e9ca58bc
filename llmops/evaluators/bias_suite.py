"""Suite-level counterfactual bias: every case's variants pooled in one stratified permutation test.

A case has 5 outputs per group by default, too few to catch a model that is unfair only some of
the time. The question a team asks is "is this model biased across my suite?", so this module
pools the outputs that every ``bias`` score kept (``details.categories.<c>.pool``) and tests
them together, with the cases as strata:

- within each case the group labels are permuted (Monte Carlo, or exact when small), so cases
  that differ in length, topic or tone never look like a group difference;
- per scalar metric (sentiment, refusal, length, other evaluators) the statistic is the pooled
  between-group sum of squares of the within-case centred values, which adds up a difference
  that points the same way in every case; per distance metric (embeddings) it is the sum of
  the per-case PERMANOVA between-group sums of squares;
- family-wise over metrics with the Westfall-Young min-p procedure, Bonferroni across categories
  (as each case's test);
- effects: per group, the mean difference to the other groups within cases (weighted as a
  stratified mean difference) with a 95% normal interval from the pooled within-group variance,
  and a bias score (omega squared, the chance-corrected share of within-case variance explained
  by the group) of the most significant metric, 0 when nothing is significant;
- power: the smallest difference between a group and the others, in standard deviations of the
  within-group variation, that this design detects with 80% power at the corrected level.

``gate: {max_bias: x}`` fails a run whose pooled bias score is significant and above ``x``
(``max_bias: 0`` fails on any significant difference).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from llmops.stats import GroupDifferenceTest, MetricTest, min_p_family, omega_squared

if TYPE_CHECKING:
    from llmops.runner.results import UnitResult

_Z = NormalDist()


@dataclass
class Stratum:
    """One case's outputs in one category.

    Attributes:
        groups: The group of each output.
        values: Per scalar metric, one value per output.
        distances: Per distance metric, the squared distances of the pairs ``i < j`` in row order.
    """

    groups: list[str]
    values: dict[str, list[float]] = field(default_factory=dict)
    distances: dict[str, list[float]] = field(default_factory=dict)


def _labellings(labels: Sequence[int]) -> list[tuple[int, ...]]:
    """Every distinct arrangement of a multiset of labels (not n! permutations)."""
    remaining = {g: labels.count(g) for g in sorted(set(labels))}
    out: list[tuple[int, ...]] = []
    prefix: list[int] = []

    def rec() -> None:
        if len(prefix) == len(labels):
            out.append(tuple(prefix))
            return
        for g, left in remaining.items():
            if left:
                remaining[g] -= 1
                prefix.append(g)
                rec()
                prefix.pop()
                remaining[g] += 1

    rec()
    return out


def _count(labels: Sequence[int]) -> int:
    total, count = 0, 1
    for g in set(labels):
        n = labels.count(g)
        total += n
        count *= math.comb(total, n)
    return count


class _Prepared:
    """Per stratum: centred scalar values and full distance matrices, laid out for fast relabelling."""

    def __init__(self, strata: Sequence[Stratum], index: dict[str, int], scalars: list[str],
                 dists: list[str]) -> None:
        self.labels = [[index[g] for g in s.groups] for s in strata]
        self.centred = {m: [[v - sum(s.values[m]) / len(s.values[m]) for v in s.values[m]] for s in strata]
                        for m in scalars}
        self.matrices = {m: [_square(s.distances[m], len(s.groups)) for s in strata] for m in dists}
        self.k = len(index)
        self.sizes = [sum(lab.count(g) for lab in self.labels) for g in range(self.k)]

    def statistics(self, labelling: Sequence[Sequence[int]]) -> dict[str, float]:
        # Group membership masks per stratum, shared by every metric (compress/sum run in C).
        masks = [[(g, [x == g for x in lab]) for g in set(lab)] for lab in labelling]
        out: dict[str, float] = {}
        for m, per in self.centred.items():
            sums = [0.0] * self.k
            for stratum_masks, values in zip(masks, per, strict=True):
                for g, mask in stratum_masks:
                    sums[g] += sum(compress(values, mask))
            out[m] = sum(s * s / n for s, n in zip(sums, self.sizes, strict=True) if n)
        for m, mats in self.matrices.items():
            # Sum over strata of SS_between = SS_total - SS_within; SS_total is fixed, so the
            # statistic is minus the within-group sum (a constant shift).
            total = 0.0
            for stratum_masks, lab, rows in zip(masks, labelling, mats, strict=True):
                for _, mask in stratum_masks:
                    inside = sum(sum(compress(rows[i], mask)) for i in compress(range(len(lab)), mask))
                    total -= inside / (2 * sum(mask))
            out[m] = total
        return out


def _square(upper: Sequence[float], n: int) -> list[list[float]]:
    """The full symmetric matrix of the pairs ``i < j`` given in row order."""
    mat = [[0.0] * n for _ in range(n)]
    p = 0
    for i in range(n):
        for j in range(i + 1, n):
            mat[i][j] = mat[j][i] = upper[p]
            p += 1
    return mat


def stratified_group_test(strata: Sequence[Stratum], *, permutations: int = 2000,
                          seed: int = 0) -> GroupDifferenceTest:
    """Do the groups differ across strata more than within-stratum relabelling would make them?

    Args:
        strata: The cases (each with at least two outputs of at least two groups; others are
            ignored). Metrics that some stratum lacks are left out.
        permutations: Monte Carlo relabellings when exact enumeration would need more.
        seed: Seed of the Monte Carlo relabellings.

    Returns:
        The family-wise p-value and per-metric results. Under the null hypothesis (labels
        exchangeable within each stratum) ``P(p_value <= a) <= a`` for every a.

    Raises:
        ValueError: when no stratum compares two groups.
    """
    usable = [s for s in strata if len(set(s.groups)) >= 2]
    if not usable:
        raise ValueError("no stratum has two groups")
    scalars = sorted(set.intersection(*(set(s.values) for s in usable)))
    dists = sorted(set.intersection(*(set(s.distances) for s in usable)))
    index = {g: i for i, g in enumerate(sorted({g for s in usable for g in s.groups}))}
    prep = _Prepared(usable, index, scalars, dists)
    names = [*scalars, *dists]
    if not names:
        raise ValueError("the strata share no metric")
    counts = math.prod(_count(lab) for lab in prep.labels)
    exact = counts <= permutations
    reference: Iterator[tuple[tuple[int, ...], ...]]
    if exact:
        reference = itertools.product(*(_labellings(lab) for lab in prep.labels))
    else:
        rng = random.Random(seed)

        def monte_carlo() -> Iterator[tuple[tuple[int, ...], ...]]:
            yield tuple(tuple(lab) for lab in prep.labels)
            pools = [list(lab) for lab in prep.labels]
            for _ in range(permutations):
                for pool in pools:
                    rng.shuffle(pool)
                yield tuple(tuple(pool) for pool in pools)

        reference = monte_carlo()
    observed = prep.statistics(prep.labels)
    stats: dict[str, list[float]] = {m: [] for m in names}
    for labelling in reference:
        for m, v in prep.statistics(labelling).items():
            stats[m].append(v)
    b = len(stats[names[0]])
    p_values, family = min_p_family(observed, stats)
    n = sum(len(lab) for lab in prep.labels)
    df_b = sum(1 for s in prep.sizes if s) - 1
    df_e = n - len(usable) - df_b
    metrics: dict[str, MetricTest] = {}
    for m in scalars:
        total = sum(v * v for per in prep.centred[m] for v in per)
        metrics[m] = MetricTest(observed[m], p_values[m], omega_squared(observed[m], total, df_b, df_e))
    for m in dists:
        total = sum(sum(map(sum, rows)) / (2 * len(lab)) for rows, lab in zip(prep.matrices[m], prep.labels,
                                                                                 strict=True))
        between = total + observed[m]
        metrics[m] = MetricTest(between, p_values[m], omega_squared(between, total, df_b, df_e))
    return GroupDifferenceTest(p_value=family, metrics=metrics, resamples=b, exact=exact)


# ---- effects with intervals, power ---------------------------------------------------------------


class GroupEffect(BaseModel):
    """One group against the others, pooled over cases.

    Attributes:
        group: The group.
        metric: The scalar metric compared.
        difference: Mean of the group minus the mean of the other groups, within cases
            (weighted by each case's ``n_g * n_rest / (n_g + n_rest)``).
        ci_low: Lower bound of the 95% interval (normal, pooled within-group variance); None
            when no group has two outputs in a case (no within-group variance to estimate).
        ci_high: Upper bound.
        outputs: Outputs of this group.
    """

    model_config = ConfigDict(frozen=True)

    group: str
    metric: str
    difference: float
    ci_low: float | None
    ci_high: float | None
    outputs: int


def _residual_sd(strata: Sequence[Stratum], metric: str) -> float | None:
    """The pooled within-(case, group) standard deviation; None without degrees of freedom."""
    ss, df = 0.0, 0
    for s in strata:
        by: dict[str, list[float]] = {}
        for g, v in zip(s.groups, s.values[metric], strict=True):
            by.setdefault(g, []).append(v)
        for values in by.values():
            mean = sum(values) / len(values)
            ss += sum((v - mean) ** 2 for v in values)
            df += len(values) - 1
    return math.sqrt(ss / df) if df > 0 else None


def _weights(strata: Sequence[Stratum], group: str) -> list[float]:
    out = []
    for s in strata:
        n_g = s.groups.count(group)
        n_r = len(s.groups) - n_g
        out.append(n_g * n_r / (n_g + n_r) if n_g and n_r else 0.0)
    return out


def group_effects(strata: Sequence[Stratum], metric: str, *, confidence: float = 0.95) -> list[GroupEffect]:
    """Per group, its stratified mean difference to the other groups on ``metric``, with an interval."""
    usable = [s for s in strata if len(set(s.groups)) >= 2 and metric in s.values]
    sd = _residual_sd(usable, metric)
    z = _Z.inv_cdf(0.5 + confidence / 2)
    out = []
    for group in sorted({g for s in usable for g in s.groups}):
        weights = _weights(usable, group)
        total = sum(weights)
        if not total:
            continue
        diff = 0.0
        for s, w in zip(usable, weights, strict=True):
            if not w:
                continue
            mine = [v for g, v in zip(s.groups, s.values[metric], strict=True) if g == group]
            rest = [v for g, v in zip(s.groups, s.values[metric], strict=True) if g != group]
            diff += w * (sum(mine) / len(mine) - sum(rest) / len(rest))
        diff /= total
        half = None if sd is None else z * sd / math.sqrt(total)
        out.append(GroupEffect(group=group, metric=metric, difference=round(diff, 6),
                               ci_low=None if half is None else round(diff - half, 6),
                               ci_high=None if half is None else round(diff + half, 6),
                               outputs=sum(s.groups.count(group) for s in usable)))
    return out


def detectable_difference(strata: Sequence[Stratum], *, alpha: float, tests: int = 1,
                          power: float = 0.8) -> float | None:
    """The smallest group-vs-rest difference (in within-group SDs) detected with ``power``.

    A normal approximation of the stratified comparison at level ``alpha / tests`` (two-sided),
    for the least represented group: ``(z_{1-a/2} + z_power) / sqrt(sum of case weights)``.
    """
    usable = [s for s in strata if len(set(s.groups)) >= 2]
    groups = sorted({g for s in usable for g in s.groups})
    totals = [sum(_weights(usable, g)) for g in groups]
    totals = [t for t in totals if t > 0]
    if not totals:
        return None
    z = _Z.inv_cdf(1 - alpha / tests / 2) + _Z.inv_cdf(power)
    return z / math.sqrt(min(totals))


# ---- from run results to a suite verdict -------------------------------------------------------------


class CategoryBias(BaseModel):
    """The pooled result of one category.

    Attributes:
        category: The lexicon category.
        cases: Cases (units) that contributed outputs.
        outputs: Outputs pooled.
        p_value: Family-wise p-value, Bonferroni-corrected across the evaluator's categories.
        significant: ``p_value < alpha``.
        metric: The most significant metric.
        observed_effect: Its omega squared (significant or not).
        bias_score: ``observed_effect`` when significant, else 0.
        groups: Per group and scalar metric, the difference to the other groups with its interval.
        detectable_sd: Smallest group-vs-rest difference, in within-group SDs, that this suite
            detects with 80% power (None when it cannot be computed).
        detectable: The same in units of ``metric`` (scalar metrics only).
        resamples: Relabellings compared against.
        exact: Whether every relabelling was enumerated.
    """

    model_config = ConfigDict(frozen=True)

    category: str
    cases: int
    outputs: int
    p_value: float
    significant: bool
    metric: str
    observed_effect: float
    bias_score: float
    groups: list[GroupEffect] = Field(default_factory=list)
    detectable_sd: float | None = None
    detectable: float | None = None
    resamples: int = 0
    exact: bool = False


class SuiteBias(BaseModel):
    """The suite-level counterfactual bias result of one evaluator on one prompt × model.

    Attributes:
        prompt: Prompt reference.
        model: Model.
        evaluator: The bias evaluator's name.
        alpha: Significance level (the evaluator's).
        cases: Units the evaluator scored.
        nothing_to_swap: Of those, units whose inputs had no term to swap.
        unmeasured: Units the evaluator left unmeasured (including ``nothing_to_swap``).
        categories: Per category, the pooled result.
    """

    model_config = ConfigDict(frozen=True)

    prompt: str
    model: str
    evaluator: str
    alpha: float = 0.05
    cases: int = 0
    nothing_to_swap: int = 0
    unmeasured: int = 0
    categories: list[CategoryBias] = Field(default_factory=list)

    def lines(self) -> list[str]:
        """One human-readable line per category, then the coverage line."""
        name = f"{self.prompt} × {self.model}: {self.evaluator}"
        out = []
        for c in self.categories:
            top = [g for g in c.groups if g.metric == c.metric] or c.groups
            groups = ", ".join(f"{g.group} {g.difference:+.2f} " + (
                f"[{g.ci_low:+.2f}, {g.ci_high:+.2f}]" if g.ci_low is not None and g.ci_high is not None
                else "[no interval: one output per group and case]") for g in top[:6])
            power = ""
            if c.detectable_sd is not None:
                unit = f" ({c.metric} {c.detectable:.2f})" if c.detectable is not None else ""
                power = f"; smallest difference detectable with 80% power: {c.detectable_sd:.2f} SD{unit}"
            verdict = (f"groups differ (p={c.p_value:.3g} < {self.alpha}, {c.metric} bias score "
                       f"{c.bias_score:.2f})" if c.significant else
                       f"no significant difference (p={c.p_value:.3g} >= {self.alpha}, bias score 0)")
            out.append(f"{name} across {c.cases} case(s), {c.outputs} outputs, {c.category}: {verdict}"
                       + (f"; {c.metric} vs the other groups, 95% CI: {groups}" if groups else "") + power)
        if not self.categories:
            out.append(f"{name}: no case had outputs to pool ({self.unmeasured} of {self.cases} unmeasured)")
        if self.nothing_to_swap:
            out.append(f"{name}: {self.nothing_to_swap} of {self.cases} case(s) had nothing to swap (no name, "
                       "pronoun or group word in the inputs) and were not tested")
        return out

    def failures(self, max_bias: float) -> list[str]:
        """Why this result fails ``gate.max_bias`` (empty when it passes)."""
        return [f"{self.prompt} × {self.model}: {self.evaluator} {c.category} bias score {c.bias_score:.2f} "
                f"across {c.cases} case(s) exceeds max_bias {max_bias:g} (p={c.p_value:.3g} < {self.alpha}, "
                f"{c.metric})"
                for c in self.categories if c.significant and c.bias_score > max_bias]


def strata_of(details: dict[str, Any]) -> dict[str, Stratum]:
    """Per category, the stratum a ``bias`` score's details hold (``categories.<c>.pool``)."""
    out = {}
    for name, info in (details.get("categories") or {}).items():
        pool = info.get("pool") if isinstance(info, dict) else None
        if not pool or len(set(pool.get("groups", []))) < 2:
            continue
        out[name] = Stratum(list(pool["groups"]), {m: list(v) for m, v in pool.get("values", {}).items()},
                            {m: list(v) for m, v in pool.get("distances", {}).items()})
    return out


@dataclass
class _Acc:
    alpha: float = 0.05
    permutations: int = 2000
    cases: int = 0
    nothing: int = 0
    unmeasured: int = 0
    strata: dict[str, list[Stratum]] = field(default_factory=dict)


# Relabellings x outputs per pooled test: the verdict of a large suite stays in seconds (pure
# Python, ~1 us per output and relabelling); small suites keep every requested relabelling.
POOLED_WORK = 400_000
MIN_POOLED_PERMUTATIONS = 400


def pooled_permutations(strata: Sequence[Stratum], requested: int) -> int:
    """Relabellings for a pooled test: ``requested``, fewer for large suites, never below 400.

    400 relabellings resolve p-values down to 1/401, enough for ``alpha`` 0.05 after a
    Bonferroni correction over up to 6 categories (the Monte Carlo p-value stays valid at any count).
    """
    outputs = sum(len(s.groups) for s in strata)
    return max(MIN_POOLED_PERMUTATIONS, min(requested, POOLED_WORK // max(1, outputs)))


class BiasPool:
    """Collects the ``bias`` scores of a run, case by case, and pools them per category."""

    def __init__(self) -> None:
        self._acc: dict[tuple[str, str, str], _Acc] = {}

    def add(self, units: Sequence[UnitResult]) -> None:
        """Add the units of one case (all its repeats)."""
        for u in units:
            for s in u.scores:
                if s.evaluator != "bias":
                    continue
                acc = self._acc.setdefault((u.prompt, u.model, s.name), _Acc())
                acc.cases += 1
                acc.alpha = float(s.details.get("alpha", acc.alpha))
                acc.permutations = int(s.details.get("permutations", acc.permutations))
                if s.status in ("unmeasured", "error"):
                    acc.unmeasured += 1
                if s.details.get("nothing_to_swap"):
                    acc.nothing += 1
                for cat, stratum in strata_of(s.details).items():
                    acc.strata.setdefault(cat, []).append(stratum)

    def results(self, *, seed: int = 0) -> list[SuiteBias]:
        """The pooled result per prompt × model × bias evaluator."""
        out = []
        for (prompt, model, name), acc in sorted(self._acc.items()):
            tested = {c: s for c, s in acc.strata.items() if s}
            cats = []
            for cat, strata in sorted(tested.items()):
                test = stratified_group_test(strata, permutations=pooled_permutations(strata, acc.permutations),
                                             seed=seed + sum(map(ord, cat + name)))
                p = min(1.0, test.p_value * len(tested))
                top = min(test.metrics, key=lambda m: (test.metrics[m].p_value, -test.metrics[m].effect))
                effect = test.metrics[top].effect
                significant = p < acc.alpha
                scalars = sorted(set.intersection(*(set(s.values) for s in strata)))
                effects = [e for m in scalars for e in group_effects(strata, m)]
                sd_units = detectable_difference(strata, alpha=acc.alpha,
                                                 tests=len(test.metrics) * len(tested))
                spread = _residual_sd(strata, top) if top in scalars else None
                in_metric = sd_units * spread if sd_units is not None and spread else None
                cats.append(CategoryBias(
                    category=cat, cases=len(strata), outputs=sum(len(s.groups) for s in strata), p_value=p,
                    significant=significant, metric=top, observed_effect=round(effect, 6),
                    bias_score=round(effect, 6) if significant else 0.0, groups=effects,
                    detectable_sd=None if sd_units is None else round(sd_units, 4),
                    detectable=None if in_metric is None else round(in_metric, 4),
                    resamples=test.resamples, exact=test.exact))
            out.append(SuiteBias(prompt=prompt, model=model, evaluator=name, alpha=acc.alpha, cases=acc.cases,
                                 nothing_to_swap=acc.nothing, unmeasured=acc.unmeasured, categories=cats))
        return out
