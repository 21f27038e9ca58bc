"""The statistics against known values and independent brute-force computations."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from fractions import Fraction
from statistics import NormalDist

import pytest

from llmops.regression import (
    binomial_test,
    bootstrap_mean_ci,
    classify_flakiness,
    flakiness_from_counts,
    mcnemar_exact,
    minimum_detectable_effect,
    paired_bootstrap_ci,
    paired_permutation_test,
    permutation_test,
    sign_test,
    wilson_interval,
)
from llmops.stats import Alternative


def _binom_exact(k: int, n: int, p: Fraction, alternative: str) -> float:
    """Reference implementation with exact rationals."""
    pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    if alternative == "less":
        return float(sum(pmf[: k + 1]))
    if alternative == "greater":
        return float(sum(pmf[k:]))
    return float(min(Fraction(1), sum(x for x in pmf if x <= pmf[k] * Fraction(10**7 + 1, 10**7))))


# ---- Wilson ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (8, 10, 0.4902, 0.9433),   # textbook value (Newcombe 1998 style tables, 95%)
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (1, 1, 0.2065, 1.0),
    (50, 100, 0.4038, 0.5962),
])
def test_wilson_known_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


def test_wilson_edge_cases_and_level() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    narrow = wilson_interval(8, 10, confidence=0.80)
    wide = wilson_interval(8, 10, confidence=0.99)
    assert wide[0] < narrow[0] < 0.8 < narrow[1] < wide[1]
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 10, confidence=1.0)


# ---- binomial / sign / McNemar ---------------------------------------------------------------

def test_mcnemar_exact_known_values() -> None:
    # b=8, c=1: P(X <= 1 | n=9, 1/2) = 10/512; two-sided doubles it.
    assert mcnemar_exact(8, 1) == 20 / 512
    assert mcnemar_exact(8, 1, "greater") == 10 / 512
    assert mcnemar_exact(8, 1, "less") == 1 - 1 / 512  # P(X <= 8 | n=9)
    assert mcnemar_exact(1, 8) == mcnemar_exact(8, 1)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(5, 0, "greater") == 1 / 32


def test_sign_test_known_value() -> None:
    assert sign_test(9, 1) == 22 / 1024
    assert sign_test(1, 9, "less") == 11 / 1024


def test_binomial_test_r_documentation_example() -> None:
    # R: binom.test(682, 925, p = 3/4) -> p-value = 0.3825
    assert binomial_test(682, 925, 0.75) == pytest.approx(0.3825, abs=5e-5)


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
@pytest.mark.parametrize(("k", "n", "p"), [(7, 20, "1/4"), (0, 12, "1/3"), (15, 15, "9/10"), (3, 10, "3/10"),
                                           (2, 18, "1/2"), (40, 61, "1/2")])
def test_binomial_test_matches_exact_rationals(k: int, n: int, p: str, alternative: Alternative) -> None:
    expected = _binom_exact(k, n, Fraction(p), alternative)
    assert binomial_test(k, n, float(Fraction(p)), alternative) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_binomial_test_large_n_does_not_overflow() -> None:
    assert binomial_test(1000, 2000) == pytest.approx(1.0)
    assert 0 < binomial_test(900, 2000, 0.5, "less") < 1e-5
    assert 0 < binomial_test(1300, 2000, 0.6, "greater") < 1e-5


# ---- paired sign-flip test -------------------------------------------------------------------

def _brute_force(diffs: list[float]) -> tuple[float, float, float]:
    observed = sum(diffs)
    sums = [sum(s * abs(d) for s, d in zip(signs, diffs, strict=True))
            for signs in itertools.product((-1, 1), repeat=len(diffs))]
    total = len(sums)
    eps = 1e-9
    return (sum(t <= observed + eps for t in sums) / total, sum(t >= observed - eps for t in sums) / total,
            sum(abs(t) >= abs(observed) - eps for t in sums) / total)


def test_sign_flip_on_pass_fail_pairs_is_exact_mcnemar() -> None:
    diffs: list[float] = [-1.0] * 8 + [1.0] + [0.0] * 30
    result = paired_permutation_test(diffs)
    assert result.method == "exact"
    assert (result.n, result.n_nonzero) == (39, 9)
    assert result.p_less == mcnemar_exact(8, 1, "greater")
    assert result.p_two_sided == mcnemar_exact(8, 1)
    assert result.mean_difference == pytest.approx(-7 / 39)


def test_sign_flip_exact_on_a_grid_matches_brute_force() -> None:
    diffs = [Fraction(-2, 3), Fraction(-1, 3), Fraction(1, 3), Fraction(-1), Fraction(-2, 3), Fraction(0),
             Fraction(1, 2), Fraction(-1, 2), Fraction(-1, 6), Fraction(-1)]
    result = paired_permutation_test(diffs)
    assert result.method == "exact"
    nonzero = [float(d) for d in diffs if d]
    less, greater, two = _brute_force(nonzero)
    assert result.p_less == pytest.approx(less)
    assert result.p_greater == pytest.approx(greater)
    assert result.p_two_sided == pytest.approx(two)


def test_sign_flip_monte_carlo_for_continuous_differences() -> None:
    rng = random.Random(5)
    diffs = [rng.gauss(-0.15, 0.3) * math.pi / 3 for _ in range(13)]
    result = paired_permutation_test(diffs, n_resamples=20_000, seed=1)
    assert result.method == "monte-carlo"
    less, greater, two = _brute_force(diffs)
    assert result.p_less == pytest.approx(less, abs=0.01)
    assert result.p_greater == pytest.approx(greater, abs=0.01)
    assert result.p_two_sided == pytest.approx(two, abs=0.01)
    assert paired_permutation_test(diffs, n_resamples=500, seed=3) == paired_permutation_test(
        diffs, n_resamples=500, seed=3)


def test_sign_flip_no_change_and_no_pairs() -> None:
    assert paired_permutation_test([0.0, 0.0]).p_less == 1.0
    with pytest.raises(ValueError):
        paired_permutation_test([])


# ---- bootstrap -------------------------------------------------------------------------------

def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    rng = random.Random(0)
    before = [rng.random() for _ in range(60)]
    after = [b - 0.1 + rng.gauss(0, 0.05) for b in before]
    ci = paired_bootstrap_ci(before, after, seed=7)
    assert ci == paired_bootstrap_ci(before, after, seed=7)
    assert ci != paired_bootstrap_ci(before, after, seed=8)
    assert ci.n_resamples == 2000
    assert ci.low < ci.estimate < ci.high
    assert ci.estimate == pytest.approx(sum(a - b for a, b in zip(after, before, strict=True)) / 60)
    # The pairing matters: the standard error of the paired differences is ~0.05/sqrt(60)≈0.0065,
    # so the 95% interval is about ±0.013; an unpaired one would be ~10 times wider.
    assert ci.high - ci.low < 0.04
    assert ci.high < -0.07


def test_bootstrap_coverage_is_roughly_nominal() -> None:
    # 200 samples of n=40 from a known distribution: the 90% interval should cover the true
    # mean about 90% of the time (percentile bootstrap undercovers a little at small n).
    covered = 0
    for i in range(200):
        rng = random.Random(100 + i)
        data = [rng.expovariate(2.0) - 0.5 for _ in range(40)]  # true mean 0
        ci = bootstrap_mean_ci(data, n_resamples=300, confidence=0.9, seed=i)
        covered += ci.low <= 0.0 <= ci.high
    assert 0.82 <= covered / 200 <= 0.96


def test_bootstrap_degenerate_and_bad_input() -> None:
    ci = bootstrap_mean_ci([0.25] * 10)
    assert (ci.low, ci.estimate, ci.high) == (0.25, 0.25, 0.25)
    with pytest.raises(ValueError, match="length"):
        paired_bootstrap_ci([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        bootstrap_mean_ci([])


# ---- minimum detectable effect ---------------------------------------------------------------

def test_mde_solves_connor_formula_and_respects_exact_floor() -> None:
    mde = minimum_detectable_effect(400, background_discordance=0.3)
    z_a, z_b = NormalDist().inv_cdf(0.95), NormalDist().inv_cdf(0.8)
    psi = 0.3 + mde
    assert mde * math.sqrt(400) == pytest.approx(z_a * math.sqrt(psi) + z_b * math.sqrt(psi - mde**2),
                                                 rel=1e-6)
    # Deterministic model: 5 flipped cases are needed at alpha=0.05 (0.5**5 < 0.05).
    assert 5 / 1000 <= minimum_detectable_effect(1000) < 0.015
    assert minimum_detectable_effect(60) == pytest.approx(5 / 60, abs=0.03)
    assert minimum_detectable_effect(4) == math.inf
    assert minimum_detectable_effect(0) == math.inf
    # More cases, less noise, looser alpha -> smaller detectable effects.
    assert minimum_detectable_effect(50, background_discordance=0.3) > minimum_detectable_effect(
        200, background_discordance=0.3) > minimum_detectable_effect(200)
    assert minimum_detectable_effect(100, alpha=0.01) > minimum_detectable_effect(100, alpha=0.1)
    assert minimum_detectable_effect(100, one_sided=False) > minimum_detectable_effect(100)


def test_mde_matches_simulated_power() -> None:
    # At the MDE, the exact one-sided McNemar test should have roughly 80% power.
    n, background = 150, 0.3
    delta = minimum_detectable_effect(n, background_discordance=background)
    rng = random.Random(42)
    # Per case: with prob background/2 each way a noise flip, plus a real pass->fail flip w.p. delta.
    hits = 0
    trials = 400
    for _ in range(trials):
        b = c = 0
        for _ in range(n):
            u = rng.random()
            if u < delta or u < delta + background / 2:
                b += 1
            elif u < delta + background:
                c += 1
        hits += mcnemar_exact(b, c, "greater") < 0.05
    assert 0.68 <= hits / trials <= 0.9


# ---- permutation test (for the bias evaluator) ------------------------------------------------

def test_permutation_test_unpaired_and_paired_known_values() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0]
    unpaired = permutation_test(a, b, n=5000, seed=0)
    assert unpaired.statistic == 5.0
    assert unpaired.p_value == pytest.approx(2 / 252, abs=0.004)  # 2 of C(10,5) splits are as extreme
    paired = permutation_test(a, b, n=5000, seed=0, paired=True)
    assert paired.p_value == pytest.approx(2 / 32, abs=0.01)  # all 5 pairs must flip together
    greater = permutation_test(a, b, n=2000, seed=0, alternative="greater")
    assert greater.p_value == pytest.approx(1 / 252, abs=0.004)
    assert permutation_test(a, b, n=2000, seed=0, alternative="less").p_value > 0.99


def test_permutation_test_null_and_custom_statistic() -> None:
    rng = random.Random(3)
    a = [rng.gauss(0, 1) for _ in range(30)]
    b = [rng.gauss(0, 1) for _ in range(30)]
    assert permutation_test(a, b, n=1000, seed=1).p_value > 0.05

    def max_gap(x: Sequence[float], y: Sequence[float]) -> float:
        return max(y) - max(x)

    result = permutation_test(a, [v + 3 for v in b], stat=max_gap, n=1000, seed=1, alternative="greater")
    assert result.statistic == pytest.approx(max(b) + 3 - max(a))
    assert result.p_value < 0.01
    with pytest.raises(ValueError, match="length"):
        permutation_test([1.0], [1.0, 2.0], paired=True)


# ---- flakiness -------------------------------------------------------------------------------

def test_flakiness_classification() -> None:
    flaky = classify_flakiness([True, False, True, None, True])
    assert (flaky.status, flaky.passed, flaky.runs, flaky.pass_rate) == ("flaky", 3, 4, 0.75)
    assert (flaky.low, flaky.high) == wilson_interval(3, 4)
    assert classify_flakiness([True] * 5).status == "stable-pass"
    assert classify_flakiness([False, None, False]).status == "stable-fail"
    assert classify_flakiness([None, None]).status == "unmeasured"
    assert classify_flakiness([None]).pass_rate is None
    single = flakiness_from_counts(1, 0)
    assert single.status == "stable-pass" and single.low < 0.25  # one observation says little


# ---- a leaf module ---------------------------------------------------------------------------
def test_the_statistics_module_is_a_leaf_that_loads_no_other_llmops_module() -> None:
    """Trace drift and evaluator calibration import the statistics without the runner or the client."""
    import subprocess
    import sys

    code = ("import sys, llmops.stats\n"
            "print(','.join(sorted(m for m in sys.modules if m.startswith('llmops'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "llmops,llmops._version,llmops.stats"


def test_the_old_module_name_still_gives_the_same_functions() -> None:
    import llmops.regression.stats as old
    import llmops.stats as new

    assert set(old.__all__) == set(new.__all__)
    assert all(getattr(old, name) is getattr(new, name) for name in new.__all__)


def test_min_p_family_counts_ties_and_takes_the_smallest_p_of_each_labelling() -> None:
    from llmops.stats import min_p_family

    # Labelling 0 is the observed one; p-values count the reference statistics at or above.
    p_values, family = min_p_family({"a": 3.0, "b": 1.0}, {"a": [3.0, 1.0, 2.0, 3.0], "b": [1.0, 1.0, 2.0, 0.0]})
    assert p_values == {"a": 0.5, "b": 0.75}
    # Smallest p per labelling: 0.5, 0.75, 0.25, 0.5 -> three of four at or below the observed 0.5.
    assert family == 0.75
    assert min_p_family({"f": math.inf}, {"f": [math.inf, 1.0]}) == ({"f": 0.5}, 0.5)


def test_omega_squared_is_chance_corrected_and_clipped() -> None:
    from llmops.stats import omega_squared

    assert omega_squared(6.0, 10.0, 1, 8) == pytest.approx((6 - 0.5) / 10.5)
    assert omega_squared(0.0, 10.0, 1, 8) == 0.0  # below chance: clipped at 0
    assert omega_squared(5.0, 0.0, 1, 8) == 0.0 and omega_squared(5.0, 10.0, 0, 8) == 0.0
