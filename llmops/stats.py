"""Small, exact-where-possible statistics for comparing LLM runs. Standard library only.

Everything here is pure Python (no numpy/scipy) and imports nothing else of llmops: a leaf that
the regression gate, run comparison, trace drift and evaluator calibration all import for free
(importing it never loads the runner or the LLM client). Randomised procedures take a ``seed``
and use their own :class:`random.Random`, so a verdict computed twice from the same data is
identical.

Conventions:
    Paired differences are always ``after - before`` (``current - baseline``): a negative mean
    difference is a drop. ``alternative="less"`` asks "did it get worse?", ``"greater"`` asks
    "did it get better?".
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from statistics import NormalDist
from typing import Literal

__all__ = [
    "Alternative",
    "BootstrapCI",
    "Flakiness",
    "FlakinessStatus",
    "GroupDifferenceTest",
    "MetricTest",
    "PairedTestResult",
    "PermutationResult",
    "binomial_test",
    "bootstrap_mean_ci",
    "classify_flakiness",
    "flakiness_from_counts",
    "mcnemar_exact",
    "mean_difference",
    "min_p_family",
    "minimum_detectable_effect",
    "omega_squared",
    "paired_bootstrap_ci",
    "paired_permutation_test",
    "permutation_test",
    "sign_test",
    "wilson_interval",
]

Alternative = Literal["two-sided", "less", "greater"]
FlakinessStatus = Literal["stable-pass", "stable-fail", "flaky", "unmeasured"]

# Relative tolerance when comparing probabilities or resampled statistics with the observed
# one: floating-point noise must not turn a tie into a strict inequality.
_TIES = 1e-9
# Exact sign-flip distributions cost O(pairs × grid size); above this many list operations the
# Monte Carlo version is used instead (a few hundred ms of pure Python at most).
_EXACT_BUDGET = 4_000_000
_Z = NormalDist()


def _check_alternative(alternative: str) -> None:
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")


# ---- intervals -------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Unlike the normal ("Wald") interval it stays inside [0, 1] and behaves at 0/n and n/n,
    which is where LLM pass rates usually live.

    Args:
        successes: Number of successes.
        n: Number of trials.
        confidence: Two-sided confidence level in (0, 1).

    Returns:
        ``(low, high)``; ``(0.0, 1.0)`` when ``n == 0`` (nothing is known).

    Raises:
        ValueError: for counts out of range or a confidence outside (0, 1).
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return 0.0, 1.0
    z = _Z.inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


# ---- exact binomial family -------------------------------------------------------------------


def _binom_pmf(k: int, n: int, p: float) -> float:
    if p == 0.0:
        return 1.0 if k == 0 else 0.0
    if p == 1.0:
        return 1.0 if k == n else 0.0
    # Log space: comb(n, k) overflows a float for n in the low thousands.
    log = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
           + k * math.log(p) + (n - k) * math.log1p(-p))
    return math.exp(log)


def binomial_test(k: int, n: int, p: float = 0.5, alternative: Alternative = "two-sided") -> float:
    """Exact binomial test of ``k`` successes in ``n`` trials against success probability ``p``.

    The two-sided p-value sums the probabilities of all outcomes no more likely than the observed
    one (the same definition as R's ``binom.test`` and SciPy's ``binomtest``). With ``p = 0.5``
    integer arithmetic is used, so the result is exact to the last bit.

    Args:
        k: Observed successes.
        n: Trials.
        p: Success probability under the null hypothesis.
        alternative: ``two-sided``, ``less`` (P(X <= k)) or ``greater`` (P(X >= k)).

    Returns:
        The p-value in [0, 1]; 1.0 when ``n == 0``.

    Raises:
        ValueError: for counts or a probability out of range.
    """
    _check_alternative(alternative)
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got {k}/{n}")
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if n == 0:
        return 1.0
    if p == 0.5:
        total = 1 << n
        if alternative == "less":
            return sum(math.comb(n, i) for i in range(k + 1)) / total
        if alternative == "greater":
            return sum(math.comb(n, i) for i in range(k, n + 1)) / total
        # Symmetric null: twice the smaller tail, which counts the mode once when k == n / 2.
        low = min(k, n - k)
        tail = sum(math.comb(n, i) for i in range(low + 1))
        return min(1.0, 2 * tail / total)
    pmf = [_binom_pmf(i, n, p) for i in range(n + 1)]
    if alternative == "less":
        return min(1.0, math.fsum(pmf[: k + 1]))
    if alternative == "greater":
        return min(1.0, math.fsum(pmf[k:]))
    limit = pmf[k] * (1 + 1e-7)
    return min(1.0, math.fsum(x for x in pmf if x <= limit))


def sign_test(n_positive: int, n_negative: int, alternative: Alternative = "two-sided") -> float:
    """Exact sign test: are positive and negative paired differences equally likely?

    Ties (zero differences) carry no information about the direction and are left out by the
    caller.

    Args:
        n_positive: Pairs whose difference is positive.
        n_negative: Pairs whose difference is negative.
        alternative: ``greater`` tests for more positives, ``less`` for more negatives.

    Returns:
        The exact p-value.
    """
    return binomial_test(n_positive, n_positive + n_negative, 0.5, alternative)


def mcnemar_exact(b: int, c: int, alternative: Alternative = "two-sided") -> float:
    """Exact McNemar test on the discordant pairs of a paired pass/fail comparison.

    Args:
        b: Pairs that passed before and fail now (pass → fail).
        c: Pairs that failed before and pass now (fail → pass).
        alternative: ``greater`` tests "more pass → fail than fail → pass" (a regression),
            ``less`` the opposite.

    Returns:
        The exact (conditional, binomial) p-value. For ``b=8, c=1`` two-sided it is
        20/512 = 0.0390625.
    """
    return binomial_test(b, b + c, 0.5, alternative)


# ---- paired sign-flip (permutation) test -----------------------------------------------------


@dataclass(frozen=True)
class PairedTestResult:
    """Outcome of :func:`paired_permutation_test`.

    Attributes:
        n: Number of pairs.
        n_nonzero: Pairs with a non-zero difference (the only ones that inform the test).
        mean_difference: Mean of ``after - before`` over all ``n`` pairs.
        p_less: One-sided p-value for "after is lower" (a drop).
        p_greater: One-sided p-value for "after is higher".
        p_two_sided: Two-sided p-value.
        method: ``exact`` (full sign-flip distribution) or ``monte-carlo``.
        n_resamples: Random sign flips drawn (0 when exact).
    """

    n: int
    n_nonzero: int
    mean_difference: float
    p_less: float
    p_greater: float
    p_two_sided: float
    method: Literal["exact", "monte-carlo"]
    n_resamples: int = 0

    def p_value(self, alternative: Alternative) -> float:
        """The p-value for one alternative."""
        _check_alternative(alternative)
        return {"less": self.p_less, "greater": self.p_greater, "two-sided": self.p_two_sided}[alternative]


def _as_grid(values: Sequence[float | Fraction], max_denominator: int = 1000) -> list[int] | None:
    """Scale values to integers on a common grid, or None if they are not (near) rationals."""
    fractions: list[Fraction] = []
    for v in values:
        if isinstance(v, Fraction):
            fractions.append(v)
            continue
        f = Fraction(v).limit_denominator(max_denominator)
        if abs(float(f) - v) > _TIES:
            return None
        fractions.append(f)
    denominator = 1
    for f in fractions:
        denominator = math.lcm(denominator, f.denominator)
        if denominator > 1_000_000:
            return None
    return [int(f * denominator) for f in fractions]


def _exact_sign_flip(ints: list[int]) -> tuple[float, float, float]:
    # T = sum(s_i * |a_i|) with independent fair signs s_i. Write T = 2U - A where U is the sum
    # of the magnitudes that got a "+" sign: the distribution of U is a subset-sum
    # distribution, built one pair at a time.
    weights = [abs(a) for a in ints]
    total = sum(weights)
    observed = sum(a for a in ints if a > 0)
    probs = [1.0]
    for w in weights:
        pad = [0.0] * w
        probs = [0.5 * (x + y) for x, y in zip(probs + pad, pad + probs, strict=True)]
    p_less = math.fsum(probs[: observed + 1])
    p_greater = math.fsum(probs[observed:])
    extreme = abs(2 * observed - total)
    p_two = math.fsum(q for u, q in enumerate(probs) if abs(2 * u - total) >= extreme)
    return min(1.0, p_less), min(1.0, p_greater), min(1.0, p_two)


def _monte_carlo_sign_flip(values: list[float], n_resamples: int,
                           seed: int) -> tuple[float, float, float]:
    weights = [abs(v) for v in values]
    total = math.fsum(weights)
    observed = math.fsum(v for v in values if v > 0)
    extreme = abs(2 * observed - total)
    eps = _TIES * max(1.0, total)
    # One random bit per pair; a lookup table per group of 8 pairs turns each resample into
    # len/8 additions instead of len (pure Python is slow per element).
    tables: list[list[float]] = []
    for start in range(0, len(weights), 8):
        chunk = weights[start:start + 8]
        table = [0.0] * (1 << len(chunk))
        for mask in range(1, len(table)):
            low = mask & -mask
            table[mask] = table[mask ^ low] + chunk[low.bit_length() - 1]
        tables.append(table)
    nbytes = len(tables)
    rng = random.Random(seed)
    n_le = n_ge = n_two = 0
    for _ in range(n_resamples):
        bits = rng.getrandbits(len(weights)).to_bytes(nbytes, "little")
        u = sum(t[b] for t, b in zip(tables, bits, strict=True))
        if u <= observed + eps:
            n_le += 1
        if u >= observed - eps:
            n_ge += 1
        if abs(2 * u - total) >= extreme - eps:
            n_two += 1
    # (1 + count) / (1 + N): the observed labelling is one of the permutations, which keeps the
    # Monte Carlo p-value valid (never 0).
    denom = n_resamples + 1
    return (n_le + 1) / denom, (n_ge + 1) / denom, (n_two + 1) / denom


def paired_permutation_test(differences: Sequence[float | Fraction], *, n_resamples: int = 10_000,
                            seed: int = 0) -> PairedTestResult:
    """Paired sign-flip (randomisation) test of the mean of ``after - before`` differences.

    Under the null hypothesis "nothing changed", the two results of a pair are exchangeable, so
    each difference is equally likely to have either sign. The p-value is the share of sign
    assignments whose sum is at least as extreme as the observed one. It uses the size of each
    difference (unlike the sign test), is exact, and assumes nothing about the distribution.

    For pass/fail pairs (differences in {-1, 0, 1}) it *is* the exact McNemar test. When the
    differences lie on a small rational grid (pass rates over repeats, binary or k-of-n scores)
    the full distribution is computed exactly; otherwise ``n_resamples`` random sign flips are
    drawn with a seeded generator.

    Args:
        differences: One ``after - before`` value per pair (floats or Fractions).
        n_resamples: Monte Carlo draws when the exact distribution is too large.
        seed: Seed of the Monte Carlo draws.

    Returns:
        The p-values for all three alternatives and the mean difference.

    Raises:
        ValueError: when there are no pairs.
    """
    if not differences:
        raise ValueError("paired_permutation_test needs at least one pair")
    n = len(differences)
    mean = math.fsum(float(d) for d in differences) / n
    nonzero = [d for d in differences if abs(float(d)) > _TIES]
    if not nonzero:
        return PairedTestResult(n=n, n_nonzero=0, mean_difference=mean, p_less=1.0, p_greater=1.0,
                                p_two_sided=1.0, method="exact")
    ints = _as_grid(nonzero)
    if ints is not None and len(ints) * sum(abs(a) for a in ints) <= _EXACT_BUDGET:
        p_less, p_greater, p_two = _exact_sign_flip(ints)
        return PairedTestResult(n=n, n_nonzero=len(nonzero), mean_difference=mean, p_less=p_less,
                                p_greater=p_greater, p_two_sided=p_two, method="exact")
    p_less, p_greater, p_two = _monte_carlo_sign_flip([float(d) for d in nonzero], n_resamples, seed)
    return PairedTestResult(n=n, n_nonzero=len(nonzero), mean_difference=mean, p_less=p_less,
                            p_greater=p_greater, p_two_sided=p_two, method="monte-carlo",
                            n_resamples=n_resamples)


# ---- bootstrap -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapCI:
    """A percentile bootstrap confidence interval.

    Attributes:
        estimate: The statistic on the original data (here: the mean difference).
        low: Lower bound.
        high: Upper bound.
        confidence: Two-sided confidence level.
        n_resamples: Number of bootstrap resamples.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int


def _quantile(ordered: Sequence[float], q: float) -> float:
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def bootstrap_mean_ci(values: Sequence[float | Fraction], *, n_resamples: int = 2000,
                      confidence: float = 0.95, seed: int = 0) -> BootstrapCI:
    """Percentile bootstrap confidence interval of a mean.

    Args:
        values: The sample (for a paired comparison: the per-pair differences).
        n_resamples: Resamples drawn with replacement.
        confidence: Two-sided confidence level in (0, 1).
        seed: Seed of the resampling.

    Returns:
        The mean and its interval.

    Raises:
        ValueError: for an empty sample, ``n_resamples < 1`` or a bad confidence level.
    """
    if not values:
        raise ValueError("bootstrap needs at least one value")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    data = [float(v) for v in values]
    n = len(data)
    rng = random.Random(seed)
    means = sorted(math.fsum(rng.choices(data, k=n)) / n for _ in range(n_resamples))
    tail = (1 - confidence) / 2
    return BootstrapCI(estimate=math.fsum(data) / n, low=_quantile(means, tail),
                       high=_quantile(means, 1 - tail), confidence=confidence, n_resamples=n_resamples)


def paired_bootstrap_ci(before: Sequence[float], after: Sequence[float], *, n_resamples: int = 2000,
                        confidence: float = 0.95, seed: int = 0) -> BootstrapCI:
    """Paired bootstrap confidence interval of ``mean(after - before)``.

    Pairs (not the two samples independently) are resampled, which keeps the per-case
    correlation between the runs: the interval is much narrower than an unpaired one when the
    same cases are hard in both runs.

    Args:
        before: Per-case values of the reference run.
        after: Per-case values of the new run, in the same case order.
        n_resamples: Resamples (default 2000).
        confidence: Two-sided confidence level.
        seed: Seed of the resampling.

    Returns:
        The mean difference and its percentile interval.

    Raises:
        ValueError: for samples of different lengths or empty samples.
    """
    if len(before) != len(after):
        raise ValueError(f"paired samples differ in length: {len(before)} != {len(after)}")
    diffs = [a - b for a, b in zip(after, before, strict=True)]
    return bootstrap_mean_ci(diffs, n_resamples=n_resamples, confidence=confidence, seed=seed)


# ---- power -----------------------------------------------------------------------------------


def minimum_detectable_effect(n: int, *, alpha: float = 0.05, power: float = 0.8,
                              background_discordance: float = 0.0, one_sided: bool = True) -> float:
    """Smallest drop in pass rate a paired pass/fail comparison of ``n`` cases detects reliably.

    Approximation (Connor 1987, the usual sample-size formula for McNemar's test): with
    discordance ψ (share of cases whose outcome differs between the runs) and true difference
    δ, the test reaches the wanted power when
    ``δ·√n ≥ z(1-α)·√ψ + z(power)·√(ψ - δ²)``. A change of δ flips at least δ of the cases on
    top of the disagreement that noise alone causes, so ψ = ``background_discordance`` + δ,
    and the equation is solved for δ by bisection. The result is floored by the exact limit:
    the test needs at least ``k`` discordant cases with ``0.5**k <= α`` (5 at α = 0.05), i.e.
    δ >= k/n. It is a planning number (normal approximation), not a guarantee.

    Args:
        n: Paired cases.
        alpha: Significance level.
        power: Wanted probability of detecting a true drop of the returned size (default 0.8).
        background_discordance: Share of cases that flip between two runs with no real change:
            0 for a deterministic model (best case), e.g. 0.3 for a noisy one. For repeats, use
            the mean squared per-case pass-rate difference.
        one_sided: One-sided test (as the regression gate uses) or two-sided.

    Returns:
        The minimum detectable drop in [0, 1], or ``math.inf`` when no drop is detectable with
        ``n`` cases.

    Raises:
        ValueError: for parameters out of range.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must be in (0, 1)")
    if not 0 <= background_discordance <= 1:
        raise ValueError(f"background_discordance must be in [0, 1], got {background_discordance}")
    if n == 0:
        return math.inf
    level = alpha if one_sided else alpha / 2
    k_min = math.ceil(math.log(level) / math.log(0.5))
    if k_min > n:
        return math.inf
    floor = k_min / n
    z_a = _Z.inv_cdf(1 - level)
    z_b = _Z.inv_cdf(power)

    def shortfall(delta: float) -> float:
        psi = min(1.0, background_discordance + delta)
        return z_a * math.sqrt(psi) + z_b * math.sqrt(max(0.0, psi - delta * delta)) - delta * math.sqrt(n)

    if shortfall(1.0) > 0:
        return math.inf
    low, high = 0.0, 1.0
    for _ in range(60):  # shortfall() decreases in delta: bisection to ~1e-18
        mid = (low + high) / 2
        if shortfall(mid) > 0:
            low = mid
        else:
            high = mid
    return max(floor, high)


# ---- two-sample and paired permutation test (generic statistic) -----------------------------


Statistic = Callable[[Sequence[float], Sequence[float]], float]


def mean_difference(groups_a: Sequence[float], groups_b: Sequence[float]) -> float:
    """``mean(b) - mean(a)``: the default statistic of :func:`permutation_test`."""
    return math.fsum(groups_b) / len(groups_b) - math.fsum(groups_a) / len(groups_a)


@dataclass(frozen=True)
class PermutationResult:
    """Outcome of :func:`permutation_test`.

    Attributes:
        statistic: The statistic on the observed grouping.
        p_value: Monte Carlo p-value, ``(1 + extreme) / (1 + n_resamples)``.
        n_resamples: Random permutations drawn.
        alternative: Which tail was tested.
    """

    statistic: float
    p_value: float
    n_resamples: int
    alternative: Alternative


def permutation_test(groups_a: Sequence[float], groups_b: Sequence[float],
                     stat: Statistic = mean_difference, n: int = 2000, seed: int = 0, *,
                     alternative: Alternative = "two-sided", paired: bool = False) -> PermutationResult:
    """Permutation test of "groups a and b come from the same distribution".

    Unpaired: the pooled values are shuffled and split into groups of the original sizes.
    Paired (``paired=True``, e.g. the same prompt with a swapped demographic attribute): each
    pair's two values are swapped with probability 1/2, keeping the pairing.

    The two-sided p-value compares ``|stat|``, so ``stat`` should be centred on 0 under the null
    hypothesis (a difference, not a ratio).

    Args:
        groups_a: Values of the first group.
        groups_b: Values of the second group (same length and order when ``paired``).
        stat: Statistic of (a, b); default ``mean(b) - mean(a)``.
        n: Random permutations to draw.
        seed: Seed of the permutations.
        alternative: ``two-sided``, ``greater`` (stat larger than by chance) or ``less``.
        paired: Swap within pairs instead of shuffling the pool.

    Returns:
        The observed statistic and its p-value (never 0: the observed grouping counts once).

    Raises:
        ValueError: for empty groups, unequal paired groups or ``n < 1``.
    """
    _check_alternative(alternative)
    if not groups_a or not groups_b:
        raise ValueError("permutation_test needs two non-empty groups")
    if paired and len(groups_a) != len(groups_b):
        raise ValueError(f"paired groups differ in length: {len(groups_a)} != {len(groups_b)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    a, b = list(groups_a), list(groups_b)
    observed = stat(a, b)
    eps = _TIES * max(1.0, abs(observed))
    rng = random.Random(seed)
    pool = a + b
    extreme = 0
    for _ in range(n):
        if paired:
            swaps = rng.getrandbits(len(a))
            pa = [y if swaps >> i & 1 else x for i, (x, y) in enumerate(zip(a, b, strict=True))]
            pb = [x if swaps >> i & 1 else y for i, (x, y) in enumerate(zip(a, b, strict=True))]
        else:
            rng.shuffle(pool)
            pa, pb = pool[: len(a)], pool[len(a):]
        value = stat(pa, pb)
        if alternative == "greater":
            extreme += value >= observed - eps
        elif alternative == "less":
            extreme += value <= observed + eps
        else:
            extreme += abs(value) >= abs(observed) - eps
    return PermutationResult(statistic=observed, p_value=(extreme + 1) / (n + 1), n_resamples=n,
                             alternative=alternative)


# ---- flakiness -------------------------------------------------------------------------------


# ---- multi-metric permutation tests (counterfactual bias: one case, and pooled over a suite) --------
@dataclass(frozen=True)
class MetricTest:
    """One metric of a multi-metric permutation test.

    Attributes:
        statistic: What the group labellings are compared on, larger when the groups are further
            apart; the test that made it says which (a case's test: pseudo-F, inf when the groups
            differ and nothing varies within them; the suite's pooled test: the between-group sum
            of squares pooled over the cases).
        p_value: Unadjusted permutation p-value of this metric.
        effect: Omega squared: share of variance explained by the group, chance-corrected, in [0, 1].
    """

    statistic: float
    p_value: float
    effect: float


@dataclass(frozen=True)
class GroupDifferenceTest:
    """A multi-metric permutation test of a group difference.

    Attributes:
        p_value: Family-wise p-value over all metrics (Westfall-Young min-p).
        metrics: Per-metric results.
        resamples: Labellings compared against (the observed one included).
        exact: True when every relabelling was enumerated.
    """

    p_value: float
    metrics: dict[str, MetricTest]
    resamples: int
    exact: bool


def min_p_family(observed: Mapping[str, float],
                 reference: Mapping[str, Sequence[float]]) -> tuple[dict[str, float], float]:
    """Per-metric permutation p-values and their family-wise p-value (Westfall-Young min-p).

    Args:
        observed: Per metric, the statistic of the observed labelling.
        reference: Per metric, the statistic of each reference labelling (the same labellings,
            in the same order, for every metric; the observed labelling among them).

    Returns:
        Per metric, the share of reference statistics at or above the observed one (ties count,
        so the test stays conservative), and the share of labellings whose smallest per-metric
        p-value is at or below the observed smallest one.
    """
    names = list(observed)
    b = len(reference[names[0]])
    ordered = {m: sorted(reference[m]) for m in names}

    def p_of(m: str, value: float) -> float:
        threshold = value - _TIES * max(1.0, abs(value)) if math.isfinite(value) else value
        return (b - bisect_left(ordered[m], threshold)) / b

    p_values = {m: p_of(m, observed[m]) for m in names}
    observed_min = min(p_values.values())
    min_ps = [min(p_of(m, reference[m][i]) for m in names) for i in range(b)]
    return p_values, sum(1 for p in min_ps if p <= observed_min + _TIES) / b


def omega_squared(between: float, total: float, df_between: int, df_within: int) -> float:
    """Chance-corrected share of the total sum of squares the groups explain, clipped to [0, 1]."""
    if total <= 0 or df_between <= 0:
        return 0.0
    ms_within = max(0.0, total - between) / df_within if df_within > 0 else 0.0
    return max(0.0, min(1.0, (between - df_between * ms_within) / (total + ms_within)))


@dataclass(frozen=True)
class Flakiness:
    """How consistently one case passes over its repeats.

    Attributes:
        status: ``stable-pass`` (every measured repeat passed), ``stable-fail`` (every one
            failed), ``flaky`` (both happened), ``unmeasured`` (no repeat was measured).
        passed: Measured repeats that passed.
        runs: Measured repeats (pass or fail).
        pass_rate: ``passed / runs``, None when unmeasured.
        low: Lower bound of the Wilson interval of the pass rate.
        high: Upper bound of the Wilson interval.
    """

    status: FlakinessStatus
    passed: int
    runs: int
    pass_rate: float | None
    low: float
    high: float


def flakiness_from_counts(passed: int, failed: int, confidence: float = 0.95) -> Flakiness:
    """Classify a case from its counts of passing and failing repeats.

    A single observation is "stable" by this definition; its Wilson interval (e.g. [0.21, 1.0]
    for 1/1) shows how little that says. Run with ``repeat >= 3`` to find flaky cases.

    Args:
        passed: Repeats that passed.
        failed: Repeats that failed (unmeasured and errored repeats are not counted).
        confidence: Level of the Wilson interval.

    Returns:
        The classification.
    """
    runs = passed + failed
    low, high = wilson_interval(passed, runs, confidence)
    status: FlakinessStatus
    if runs == 0:
        status = "unmeasured"
    elif failed == 0:
        status = "stable-pass"
    elif passed == 0:
        status = "stable-fail"
    else:
        status = "flaky"
    return Flakiness(status=status, passed=passed, runs=runs, pass_rate=passed / runs if runs else None,
                     low=low, high=high)


def classify_flakiness(outcomes: Iterable[bool | None], confidence: float = 0.95) -> Flakiness:
    """Classify a case from the outcomes of its repeats.

    Args:
        outcomes: One entry per repeat: True (pass), False (fail), None (unmeasured or error,
            ignored).
        confidence: Level of the Wilson interval.

    Returns:
        stable-pass, stable-fail, flaky or unmeasured, with the pass rate and its interval.
    """
    passed = failed = 0
    for outcome in outcomes:
        if outcome is True:
            passed += 1
        elif outcome is False:
            failed += 1
    return flakiness_from_counts(passed, failed, confidence)
