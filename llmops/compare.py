"""Compare models and prompt versions on one suite: quality with intervals, cost, latency, verdict.

Every variant (prompt version × model) answers the same cases, so comparisons are paired by
case: a sign-flip permutation test on per-case differences (exact McNemar for pass/fail) and a
paired bootstrap interval on each difference (always ``low <= high``, oriented as ``b - a``).

Which comparisons are tested:

- ``reference`` (default): each variant against one reference variant (``reference=``; default
  the first variant of the run, i.e. the first model / prompt version given) — k−1 tests for k
  variants, the comparisons people ask for ("is the new prompt worse than the current one?");
- ``all-pairs``: every pair, k(k−1)/2 tests (much less power per test with many variants).

Holm's correction is applied per metric over that metric's tests, and the verdict says so. The
minimum detectable effect (80% power, two-sided, at the Bonferroni level Holm starts from)
states what the sample size could have found. The verdict paragraph only claims what the tests
support: no "leads by 0", no "highest" among ties.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

from pydantic import BaseModel, Field

from llmops.errors import UserError, did_you_mean
from llmops.runner.results import RunResult, UnitResult, percentile
from llmops.stats import (
    bootstrap_mean_ci,
    minimum_detectable_effect,
    paired_bootstrap_ci,
    paired_permutation_test,
    wilson_interval,
)

PASS_RATE = "pass rate"
POWER = 0.8
Mode = Literal["reference", "all-pairs"]


class Interval(BaseModel):
    """A point estimate with a confidence interval."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0


class VariantStats(BaseModel):
    """One prompt version × model."""

    label: str
    prompt: str
    model: str
    cases: int
    units: int
    pass_rate: Interval
    means: dict[str, Interval] = Field(default_factory=dict)
    unmeasured: int = 0
    errors: int = 0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    tokens_per_case: float = 0.0
    cost_per_1000_cases_usd: float = 0.0
    judge_cost_per_1000_cases_usd: float = 0.0
    tool_call_accuracy: float | None = None
    steps_per_task: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None


# Evaluators of tool use: a unit's tool calls are right when every one of these that measured passed.
TOOL_EVALUATORS = frozenset({"tool-called", "tool-sequence", "no-tool-called", "tool-args-valid", "agent"})


def _tool_stats(units: list[UnitResult]) -> tuple[float | None, float | None, float | None, float | None]:
    """(tool-call accuracy, model calls per agent task, TTFT p50, TTFT p95); None where nothing measured them."""
    judged = [[s for s in u.scores if s.evaluator in TOOL_EVALUATORS and s.measured] for u in units]
    judged = [scores for scores in judged if scores]
    accuracy = sum(all(s.status == "pass" for s in scores) for scores in judged) / len(judged) if judged else None
    agents = [u.steps for u in units if u.trajectory]
    steps = sum(agents) / len(agents) if agents else None
    ttfts = [u.ttft_s for u in units if u.ttft_s is not None]
    return accuracy, steps, percentile(ttfts, 0.5), percentile(ttfts, 0.95)


class Pairwise(BaseModel):
    """A paired comparison of two variants on one metric (``b - a``; in reference mode ``a`` is the reference).

    ``low <= high`` always; ``p_adjusted`` is Holm-corrected over the tests of the same metric.
    """

    a: str
    b: str
    metric: str
    n: int
    difference: float
    low: float
    high: float
    p_value: float
    p_adjusted: float
    significant: bool


class Comparison(BaseModel):
    """The outcome of :func:`compare` / :func:`compare_run`."""

    run_id: str
    suite: str
    alpha: float
    quality_metric: str
    variants: list[VariantStats]
    pairwise: list[Pairwise]
    pareto_cost: list[str]
    pareto_latency: list[str]
    verdict: str
    mode: Mode = "reference"
    reference: str | None = Field(default=None, description="The reference variant (reference mode)")
    correction: str = Field(default="", description="Which multiple-comparison correction was applied, in words")
    tests_per_metric: int = 0
    mde: float | None = Field(default=None, description="Minimum detectable difference on the quality "
                                                        "metric (80% power), None when not estimable")

    def variant(self, label: str) -> VariantStats:
        """A variant by label."""
        return next(v for v in self.variants if v.label == label)


def _label(unit: UnitResult, prompts: int, models: int) -> str:
    if prompts > 1 and models > 1:
        return f"{unit.prompt} × {unit.model}"
    return unit.prompt if prompts > 1 else unit.model


def _per_case(units: list[UnitResult], metric: str) -> dict[str, float]:
    """Per-case value of a metric, averaged over repeats (measured values only)."""
    values: dict[str, list[float]] = {}
    for u in units:
        if metric == PASS_RATE:
            if u.status in ("pass", "fail"):
                values.setdefault(u.case_id, []).append(1.0 if u.status == "pass" else 0.0)
        else:
            score = u.score(metric)
            if score is not None and score.measured and score.value is not None:
                values.setdefault(u.case_id, []).append(score.value)
    return {case: statistics.fmean(v) for case, v in values.items()}


def _interval_of(per_case: dict[str, float], *, seed: int) -> Interval:
    if not per_case:
        return Interval(value=None)
    values = list(per_case.values())
    if len(values) == 1:
        return Interval(value=values[0], low=None, high=None, n=1)
    ci = bootstrap_mean_ci(values, seed=seed)
    return Interval(value=ci.estimate, low=ci.low, high=ci.high, n=len(values))


def _pass_interval(units: list[UnitResult]) -> Interval:
    decided = [u for u in units if u.status in ("pass", "fail")]
    passed = sum(u.status == "pass" for u in decided)
    if not decided:
        return Interval(value=None)
    low, high = wilson_interval(passed, len(decided))
    return Interval(value=passed / len(decided), low=low, high=high, n=len(decided))


def _holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (controls the family-wise error rate)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    m = len(p_values)
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Labels not dominated on (quality: higher is better, cost: lower is better)."""
    front = []
    for label, (quality, cost) in points.items():
        dominated = any(
            q >= quality and c <= cost and (q > quality or c < cost)
            for other, (q, c) in points.items() if other != label)
        if not dominated:
            front.append(label)
    return sorted(front, key=lambda lbl: points[lbl][1])


def paired_tests(per_case: dict[str, dict[str, float]], *, metric: str, mode: Mode = "reference",
                 reference: str | None = None, alpha: float = 0.05, seed: int = 0) -> list[Pairwise]:
    """Paired tests of one metric between variants, Holm-corrected over the tests made.

    Args:
        per_case: Variant label -> case id -> per-case value (a mean over repeats).
        metric: The metric's name (recorded in the rows).
        mode: ``reference`` (each other variant against ``reference``: k−1 tests) or
            ``all-pairs`` (k(k−1)/2 tests).
        reference: The reference label (default: the first variant).
        alpha: Family-wise significance level over this metric's tests.
        seed: Seed of the permutation test and bootstrap.

    Returns:
        One row per pair with at least 2 common cases; ``difference`` is ``b - a``.
    """
    labels = list(per_case)
    if mode == "reference":
        ref = reference if reference is not None else (labels[0] if labels else None)
        pairs = [(ref, b) for b in labels if ref is not None and b != ref]
    else:
        pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]
    raw: list[tuple[str, str, int, float, float, float, float]] = []
    for a, b in pairs:
        va, vb = per_case[a], per_case[b]
        common = sorted(set(va) & set(vb))
        if len(common) < 2:
            continue
        before = [va[c] for c in common]
        after = [vb[c] for c in common]
        diffs = [y - x for x, y in zip(before, after, strict=True)]
        test = paired_permutation_test(diffs, seed=seed)
        mean = math.fsum(diffs) / len(diffs)
        if all(d == diffs[0] for d in diffs):
            low = high = mean  # no variation: the bootstrap interval is the point
        else:
            ci = paired_bootstrap_ci(before, after, seed=seed)
            low, high = min(ci.low, ci.high), max(ci.low, ci.high)
        raw.append((a, b, len(common), mean, min(low, mean), max(high, mean), test.p_two_sided))
    adjusted = _holm([row[6] for row in raw])
    return [Pairwise(a=a, b=b, metric=metric, n=n, difference=d, low=lo, high=hi, p_value=p, p_adjusted=adj,
                     significant=adj < alpha)
            for (a, b, n, d, lo, hi, p), adj in zip(raw, adjusted, strict=True)]


def detectable_effect(per_case: dict[str, dict[str, float]], *, metric: str, tests: int, alpha: float = 0.05,
                      power: float = POWER) -> float | None:
    """Minimum detectable difference on ``metric`` for this sample size, or None when not estimable.

    Two-sided, at the level Holm's first step uses (``alpha / tests``). Pass rate: the McNemar
    planning formula of :func:`llmops.stats.minimum_detectable_effect` with the
    smallest observed discordance between variants as background noise. Other metrics: the
    normal approximation ``(z(1-α/2m) + z(power)) · sd / √n`` with the smallest observed standard
    deviation of per-case differences (None when every difference is exactly 0).
    """
    labels = list(per_case)
    if len(labels) < 2 or tests < 1:
        return None
    spreads: list[tuple[int, float, float]] = []  # (n, mean squared difference, sd of differences)
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            common = sorted(set(per_case[a]) & set(per_case[b]))
            if len(common) < 2:
                continue
            diffs = [per_case[b][c] - per_case[a][c] for c in common]
            spreads.append((len(common), math.fsum(d * d for d in diffs) / len(diffs), statistics.stdev(diffs)))
    if not spreads:
        return None
    n = min(s[0] for s in spreads)
    level = alpha / tests
    if metric == PASS_RATE:
        background = min(s[1] for s in spreads)
        mde = minimum_detectable_effect(n, alpha=level, power=power, background_discordance=min(1.0, background),
                                        one_sided=False)
        return None if math.isinf(mde) else min(1.0, mde)
    sd = min(s[2] for s in spreads)
    if sd <= 0:
        return None
    z = NormalDist()
    return (z.inv_cdf(1 - level / 2) + z.inv_cdf(power)) * sd / math.sqrt(n)


def compare_run(run: RunResult, *, alpha: float = 0.05, quality: str | None = None, seed: int = 0,
                mode: Mode = "reference", reference: str | None = None) -> Comparison:
    """Compare the variants of a run that holds several models and/or prompt versions.

    Args:
        run: A run with at least one variant.
        alpha: Family-wise significance level per metric (Holm-corrected over that metric's tests).
        quality: The metric that defines "better" (default: pass rate).
        seed: Seed of the bootstrap.
        mode: ``reference`` (each variant against the reference: k−1 tests) or ``all-pairs``.
        reference: The reference variant's label, model or prompt reference (default: the first
            variant of the run).

    Raises:
        UserError: when ``reference`` names no variant of the run, or ``mode`` is unknown.
    """
    if mode not in ("reference", "all-pairs"):
        raise UserError(f"compare: mode must be 'reference' or 'all-pairs', got {mode!r}")
    groups: dict[tuple[str, str], list[UnitResult]] = {}
    for r in run.results:
        if r.status != "skipped":
            groups.setdefault((r.prompt, r.model), []).append(r)
    prompts = len({p for p, _ in groups})
    models = len({m for _, m in groups})
    metrics = [PASS_RATE]
    for units in groups.values():
        for u in units:
            for s in u.scores:
                if s.name not in metrics:
                    metrics.append(s.name)
    quality = quality or PASS_RATE
    if not 0 < alpha < 1:  # `not <` also refuses NaN
        raise UserError(f"alpha must be between 0 and 1 (exclusive), got {alpha}", key="alpha")
    known = [*metrics, *(str(e.get("name")) for e in run.manifest.evaluators if e.get("name") not in metrics)]
    if quality not in known:
        raise UserError(f"unknown quality metric '{quality}'", key="quality",
                        hint=did_you_mean(quality, known) or f"use one of: {', '.join(known)}")
    variants: list[VariantStats] = []
    per_case: dict[str, dict[str, dict[str, float]]] = {}
    for (prompt, model), units in groups.items():
        label = _label(units[0], prompts, models)
        cases = {u.case_id for u in units}
        per_case[label] = {m: _per_case(units, m) for m in metrics}
        latencies = [u.latency_s for u in units if u.latency_s is not None and not u.cached]
        if not latencies:  # fully replayed: the recorded latencies are still the best evidence
            latencies = [u.latency_s for u in units if u.latency_s is not None]
        n_cases = max(1, len(cases))
        accuracy, steps, ttft_p50, ttft_p95 = _tool_stats(units)
        variants.append(VariantStats(
            label=label, prompt=prompt, model=model, cases=len(cases), units=len(units),
            pass_rate=_pass_interval(units),
            means={m: _interval_of(per_case[label][m], seed=seed) for m in metrics if m != PASS_RATE},
            unmeasured=sum(u.status == "unmeasured" for u in units),
            errors=sum(u.status == "error" for u in units),
            latency_p50_s=percentile(latencies, 0.5), latency_p95_s=percentile(latencies, 0.95),
            tokens_per_case=sum(u.prompt_tokens + u.completion_tokens for u in units) / n_cases,
            cost_per_1000_cases_usd=1000 * sum(u.cost_usd for u in units) / n_cases,
            judge_cost_per_1000_cases_usd=1000 * sum(u.judge_cost_usd for u in units) / n_cases,
            tool_call_accuracy=accuracy, steps_per_task=steps, ttft_p50_s=ttft_p50, ttft_p95_s=ttft_p95))
    ref_label: str | None = None
    if mode == "reference" and variants:
        if reference is None:
            ref_label = variants[0].label
        else:
            found = [v.label for v in variants if reference in (v.label, v.model, v.prompt)]
            if len(found) != 1:
                names = ", ".join(v.label for v in variants)
                problem = "names no variant" if not found else f"matches {len(found)} variants"
                raise UserError(f"compare: --reference {reference!r} {problem} of this run; use one of: {names}",
                                key="reference")
            ref_label = found[0]
    pairwise: list[Pairwise] = []
    for metric in metrics:
        pairwise += paired_tests({label: per_case[label][metric] for label in per_case}, metric=metric, mode=mode,
                                 reference=ref_label, alpha=alpha, seed=seed)
    k = len(variants)
    tests = (k - 1) if mode == "reference" else k * (k - 1) // 2
    if k < 2:
        correction = "none (nothing to compare)"
    elif mode == "reference":
        correction = (f"Holm over {tests} comparison{'s' if tests != 1 else ''} against the reference {ref_label} "
                      f"(one per other variant), per metric, at alpha={alpha:g}")
    else:
        correction = f"Holm over all {tests} pairs, per metric, at alpha={alpha:g}"
    mde = detectable_effect({label: per_case[label][quality] for label in per_case if quality in per_case[label]},
                            metric=quality, tests=max(1, tests), alpha=alpha)

    def quality_of(v: VariantStats) -> float:
        iv = v.pass_rate if quality == PASS_RATE else v.means.get(quality, Interval(value=None))
        return iv.value if iv.value is not None else -math.inf

    cost_points = {v.label: (quality_of(v), v.cost_per_1000_cases_usd + v.judge_cost_per_1000_cases_usd)
                   for v in variants}
    latency_points = {v.label: (quality_of(v), v.latency_p50_s if v.latency_p50_s is not None else math.inf)
                      for v in variants}
    comparison = Comparison(run_id=run.run_id, suite=run.manifest.suite, alpha=alpha, quality_metric=quality,
                            variants=variants, pairwise=pairwise, pareto_cost=pareto_front(cost_points),
                            pareto_latency=pareto_front(latency_points), verdict="", mode=mode,
                            reference=ref_label, correction=correction, tests_per_metric=tests if k > 1 else 0,
                            mde=mde)
    comparison.verdict = _verdict(comparison, quality_of)
    return comparison


def _fmt(metric: str, value: float) -> str:
    return f"{value * 100:.0f}%" if metric == PASS_RATE else f"{value:.2f}"


def _fmt_diff(metric: str, value: float) -> str:
    """A signed difference: points for a pass rate ("+12 pts"), else the value ("-0.08")."""
    if metric == PASS_RATE:
        pts = round(value * 100)
        return "0 pts" if pts == 0 else f"{pts:+d} pts"
    return f"{value:+.2f}"


def _ci(metric: str, low: float, high: float) -> str:
    # low <= high by construction: the interval reads in increasing order.
    return f"95% CI {_fmt_diff(metric, min(low, high))} to {_fmt_diff(metric, max(low, high))}"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _ranking(c: Comparison, quality_of: Any) -> str | None:
    """Which variant has the highest quality, naming every tie; None when nothing is measured."""
    metric = c.quality_metric
    values = {v.label: quality_of(v) for v in c.variants}
    top = max(values.values())
    if top == -math.inf:
        return None
    best = [label for label, value in values.items() if math.isclose(value, top, abs_tol=1e-12)]
    n = max(v.cases for v in c.variants)
    if len(best) == len(c.variants):
        return f"On {n} cases, all {len(best)} variants have the same {metric} ({_fmt(metric, top)})."
    if len(best) > 1:
        return f"On {n} cases, {_join(best)} tie on the highest {metric} ({_fmt(metric, top)})."
    return f"On {n} cases, {best[0]} has the highest {metric} ({_fmt(metric, top)})."


def _verdict(c: Comparison, quality_of: Any) -> str:
    if not c.variants:
        return "Nothing to compare: the run has no results."
    if len(c.variants) == 1:
        v = c.variants[0]
        return f"Only one variant ({v.label}) was run; there is nothing to compare it with."
    metric = c.quality_metric
    ranking = _ranking(c, quality_of)
    if ranking is None:
        return f"No variant has a measured {metric}; the comparison cannot rank them."
    sentences = [ranking]
    tests = [p for p in c.pairwise if p.metric == metric]
    if c.mode == "reference" and c.reference is not None:
        ref = c.variant(c.reference)
        ref_value = quality_of(ref)
        shown = "not measured" if ref_value == -math.inf else _fmt(metric, ref_value)
        parts: list[str] = []
        for other in c.variants:
            if other.label == c.reference:
                continue
            pair = next((p for p in tests if p.b == other.label), None)
            if pair is None:
                parts.append(f"{other.label}: too few paired cases to test")
            elif pair.difference == 0 and pair.low == pair.high:
                parts.append(f"{other.label}: the same {metric} on every paired case")
            elif pair.significant:
                word = "higher" if pair.difference > 0 else "lower"
                parts.append(f"{other.label}: significantly {word} ({_fmt_diff(metric, pair.difference)}, "
                             f"{_ci(metric, pair.low, pair.high)}, adjusted p={pair.p_adjusted:.3g})")
            else:
                parts.append(f"{other.label}: no significant difference ({_fmt_diff(metric, pair.difference)}, "
                             f"{_ci(metric, pair.low, pair.high)}, adjusted p={pair.p_adjusted:.3g})")
        sentences.append(f"Against the reference {c.reference} ({metric} {shown}): " + "; ".join(parts) + ".")
        if not any(p.significant for p in tests):
            sentences.append("No variant is shown better or worse than the reference: do not call a winner "
                             "yet, add cases or repeats.")
    else:
        significant: list[str] = []
        for p in tests:
            if not p.significant or p.difference == 0:
                continue
            hi, lo = (p.b, p.a) if p.difference > 0 else (p.a, p.b)
            d, low, high = (p.difference, p.low, p.high) if p.difference > 0 else (-p.difference, -p.high, -p.low)
            significant.append(f"{hi} over {lo} ({_fmt_diff(metric, d)}, {_ci(metric, low, high)}, "
                               f"adjusted p={p.p_adjusted:.3g})")
        if significant:
            sentences.append("Significant differences: " + "; ".join(significant) + ".")
        else:
            sentences.append(f"No pair differs significantly on {metric} ({len(tests)} pairs tested): "
                             "do not call a winner yet, add cases or repeats.")
    top = max(quality_of(v) for v in c.variants)
    leaders = [v.label for v in c.variants if math.isclose(quality_of(v), top, abs_tol=1e-12)]
    cheapest = c.pareto_cost[0] if c.pareto_cost else None
    if cheapest and cheapest not in leaders:
        sentences.append(f"On the quality/cost Pareto front, {cheapest} is the cheapest option.")
    fastest = c.pareto_latency[0] if c.pareto_latency else None
    if fastest and fastest not in leaders and fastest != cheapest:
        sentences.append(f"On the quality/latency front, {fastest} answers fastest.")
    sentences.append(f"Tests are paired by case; correction: {c.correction}.")
    n = min(v.cases for v in c.variants)
    if c.mde is None and metric == PASS_RATE and c.pairwise:
        sentences.append(f"With {n} paired cases, no difference in {metric} can be detected reliably "
                         f"({POWER:.0%} power) at the corrected level: add cases or repeats.")
    if c.mde is not None:
        what = f"{c.mde * 100:.0f} pts" if metric == PASS_RATE else f"{c.mde:.2f}"
        sentences.append(f"With {n} paired cases, a true difference in {metric} smaller than about {what} "
                         f"would likely go undetected ({POWER:.0%} power).")
    return " ".join(sentences)


def compare(suite: str | Path, *, models: Sequence[str] | None = None, prompts: Sequence[str] | None = None,
            repeat: int | None = None, alpha: float = 0.05, quality: str | None = None,
            mode: Mode = "reference", reference: str | None = None, **run_kwargs: Any) -> Comparison:
    """Run a suite over several models and/or prompt versions and compare them.

    Args:
        suite: Suite file or name.
        models: Models to compare (default: the suite's).
        prompts: Prompt references to compare (default: the suite's).
        repeat: Repeats per case.
        alpha: Family-wise significance level.
        quality: Metric that defines "better" (default: pass rate; or an evaluator name).
        mode: ``reference`` (default; each variant against the reference) or ``all-pairs``.
        reference: The reference variant (default: the first model / prompt version).
        **run_kwargs: Passed to :func:`llmops.runner.engine.run_suite` (settings, client, cache, ...).
    """
    return run_and_compare(suite, models=models, prompts=prompts, repeat=repeat, alpha=alpha, quality=quality,
                           mode=mode, reference=reference, **run_kwargs)[1]


def run_and_compare(suite: str | Path, *, models: Sequence[str] | None = None,
                    prompts: Sequence[str] | None = None, repeat: int | None = None, alpha: float = 0.05,
                    quality: str | None = None, mode: Mode = "reference", reference: str | None = None,
                    **run_kwargs: Any) -> tuple[RunResult, Comparison]:
    """:func:`compare`, also returning the run (reports render both).

    Traced like ``llmops run``: pass ``tracer=`` in ``run_kwargs`` (the CLI passes
    :func:`llmops.runner.engine.run_tracer`), and each unit of each variant is one trace.
    """
    from llmops.runner.engine import run_suite

    run = run_suite(suite, models=models, prompts=prompts, repeat=repeat, **run_kwargs)
    return run, compare_run(run, alpha=alpha, quality=quality, mode=mode, reference=reference)
