"""`llmops compare` statistics and wording: reference comparisons, ties, intervals, power; simulations."""

from __future__ import annotations

import random
import re

import pytest

from llmops.compare import PASS_RATE, compare_run, detectable_effect, paired_tests
from llmops.errors import UserError
from tests.regression.regression_factories import make_run, unit


def run_of(outcomes: dict[str, list[bool]]) -> object:
    """A run from model -> per-case pass/fail (one prompt version, one repeat)."""
    return make_run([unit(f"c{i:03d}", ok, model=model) for model, cases in outcomes.items()
                     for i, ok in enumerate(cases)])


def test_interval_is_never_reversed_and_reads_low_to_high() -> None:
    # The reference is better: the difference is negative, its interval must read low -> high.
    run = run_of({"fake/ref": [True] * 16 + [False] * 4, "fake/worse": [True] * 4 + [False] * 16})
    c = compare_run(run)
    pair = next(p for p in c.pairwise if p.metric == PASS_RATE)
    assert pair.a == "fake/ref" and pair.b == "fake/worse"
    assert pair.low <= pair.difference <= pair.high < 0
    assert "significantly lower (-60 pts, 95% CI" in c.verdict
    found = re.search(r"95% CI ([+-]?\d+) pts to ([+-]?\d+) pts", c.verdict)
    assert found and int(found.group(1)) <= int(found.group(2))
    assert "80%–20%" not in c.verdict


def test_all_pairs_mode_orients_intervals_too() -> None:
    run = run_of({"fake/a": [True] * 18 + [False] * 2, "fake/b": [True] * 3 + [False] * 17})
    c = compare_run(run, mode="all-pairs")
    for found in re.finditer(r"95% CI ([+-]?\d+) pts to ([+-]?\d+) pts", c.verdict):
        assert int(found.group(1)) <= int(found.group(2))
    assert "fake/a over fake/b (+75 pts" in c.verdict


def test_ties_name_no_highest_and_no_lead_by_zero() -> None:
    same = [True, False] * 10
    c = compare_run(run_of({"fake/a": same, "fake/b": same, "fake/c": same}))
    assert "all 3 variants have the same pass rate (50%)" in c.verdict
    assert "highest" not in c.verdict and "leads" not in c.verdict and "by 0" not in c.verdict
    assert "the same pass rate on every paired case" in c.verdict


def test_two_tied_leaders_are_both_named() -> None:
    top = [True] * 15 + [False] * 5
    c = compare_run(run_of({"fake/a": [True] * 10 + [False] * 10, "fake/b": top, "fake/c": top}))
    assert "fake/b and fake/c tie on the highest pass rate (75%)" in c.verdict
    assert "has the highest" not in c.verdict


def test_reference_mode_makes_k_minus_1_tests_and_says_which_correction() -> None:
    base = [True] * 20 + [False] * 10
    outcomes = {f"fake/m{i}": base for i in range(6)}
    outcomes["fake/m5"] = [True] * 8 + [False] * 22
    c = compare_run(run_of(outcomes))
    tests = [p for p in c.pairwise if p.metric == PASS_RATE]
    assert len(tests) == 5 and {p.a for p in tests} == {"fake/m0"}
    assert c.tests_per_metric == 5
    assert "Holm over 5 comparisons against the reference fake/m0" in c.correction
    assert c.correction in c.verdict
    everyone = compare_run(run_of(outcomes), mode="all-pairs")
    assert len([p for p in everyone.pairwise if p.metric == PASS_RATE]) == 15
    assert "Holm over all 15 pairs" in everyone.verdict
    # The drop keeps more power against the reference than among all pairs.
    ref_p = next(p for p in tests if p.b == "fake/m5").p_adjusted
    all_p = next(p for p in everyone.pairwise if p.metric == PASS_RATE and {p.a, p.b} == {"fake/m0", "fake/m5"})
    assert ref_p <= all_p.p_adjusted


def test_reference_can_be_chosen_by_model_and_a_wrong_one_is_a_usage_error() -> None:
    run = run_of({"fake/a": [True] * 10, "fake/b": [True] * 10})
    assert compare_run(run, reference="fake/b").reference == "fake/b"
    with pytest.raises(UserError, match="names no variant of this run; use one of: fake/a, fake/b"):
        compare_run(run, reference="fake/zzz")


def test_minimum_detectable_effect_is_stated_and_shrinks_with_cases() -> None:
    def mde(n: int) -> float:
        rng = random.Random(n)
        outcomes = {m: [rng.random() < 0.7 for _ in range(n)] for m in ("fake/a", "fake/b", "fake/c")}
        c = compare_run(run_of(outcomes))
        assert c.mde is not None
        assert f"With {n} paired cases, a true difference in pass rate smaller than about" in c.verdict
        return c.mde

    assert mde(200) < mde(40) < 1.0


def test_single_variant_verdict() -> None:
    c = compare_run(run_of({"fake/a": [True, False]}))
    assert c.verdict == "Only one variant (fake/a) was run; there is nothing to compare it with."
    assert c.pairwise == [] and c.mde is None


# ---- simulations of the reference-based comparisons ------------------------------------------


def _simulate(k: int, n: int, drop: float, trials: int, seed: int, mode: str = "reference") -> tuple[float, float]:
    """(family-wise false alarm rate among null variants, power on the dropped variant).

    Each case has its own difficulty (pass probability), shared by every variant, so outcomes
    are paired as in a real comparison; the last variant's pass probability is lowered by ``drop``.
    """
    rng = random.Random(seed)
    false_alarms = detected = 0
    for _ in range(trials):
        difficulty = [rng.uniform(0.3, 0.95) for _ in range(n)]
        per_case: dict[str, dict[str, float]] = {}
        for v in range(k):
            shift = drop if v == k - 1 else 0.0
            per_case[f"v{v}"] = {f"c{i}": float(rng.random() < max(0.0, p - shift))
                                 for i, p in enumerate(difficulty)}
        rows = paired_tests(per_case, metric=PASS_RATE, reference="v0", alpha=0.05, seed=rng.randrange(10**6),
                            mode=mode)  # type: ignore[arg-type]
        last = f"v{k - 1}"
        null_rows = [r for r in rows if last not in (r.a, r.b)] if drop else rows
        false_alarms += any(r.significant for r in null_rows)
        detected += any(r.significant and r.a == "v0" and r.b == last and r.difference < 0 for r in rows)
    return false_alarms / trials, detected / trials


def test_simulation_reference_comparisons_keep_false_alarms_at_or_below_5_percent() -> None:
    """Measured (k=5 variants, 60 cases, 200 null trials): family-wise false alarms 3.0%."""
    rate, _ = _simulate(k=5, n=60, drop=0.0, trials=200, seed=1)
    print(f"\nfamily-wise false alarm rate, 4 reference comparisons: {rate:.1%}")
    assert rate <= 0.05


def test_simulation_reference_comparisons_power_on_a_real_drop() -> None:
    """Measured (k=5, 60 cases, one variant 30 points worse, 120 trials, seeds fixed): power 88%
    against the reference vs 82% with all pairs; false alarms among unchanged variants 1.7%."""
    fa, power = _simulate(k=5, n=60, drop=0.3, trials=120, seed=2)
    _, power_all = _simulate(k=5, n=60, drop=0.3, trials=120, seed=2, mode="all-pairs")
    print(f"\npower on a 30-point drop with 60 cases: reference {power:.0%}, all pairs {power_all:.0%}; "
          f"false alarms {fa:.1%}")
    assert power >= 0.7 and power > power_all
    assert fa <= 0.05
    per_case = {f"v{v}": {f"c{i}": float((i + v) % 3 != 0) for i in range(60)} for v in range(5)}
    mde = detectable_effect(per_case, metric=PASS_RATE, tests=4)
    assert mde is not None and 0.1 < mde < 0.6
