"""judge_run: absolute gates, paired regression rule, flaky cases, pairing, reporting fields."""

from __future__ import annotations

import pytest
from regression_factories import MODEL, PROMPT, binary_run, cases, make_run, score, unit

from llmops.evalsets.models import Gate
from llmops.regression import Verdict, baseline_from_run, judge_run, mcnemar_exact, repeat_stats
from llmops.runner.results import summarize


def _flip(n_cases: int, worse: int, better: int = 0, prefix: str = "c") -> tuple[dict, dict]:  # type: ignore[type-arg]
    """Baseline/current outcomes: ``worse`` cases go pass->fail, ``better`` go fail->pass."""
    base, cur = {}, {}
    for i in range(n_cases):
        cid = f"{prefix}{i:04d}"
        if i < worse:
            base[cid], cur[cid] = [True], [False]
        elif i < worse + better:
            base[cid], cur[cid] = [False], [True]
        else:
            base[cid] = cur[cid] = [i % 3 != 0]
    return base, cur


# ---- absolute gates --------------------------------------------------------------------------

def test_min_pass_rate() -> None:
    run = binary_run({**cases("p", 7, [True]), **cases("f", 3, [False])})
    assert judge_run(run, Gate(min_pass_rate=0.7)).passed
    verdict = judge_run(run, Gate(min_pass_rate=0.75))
    assert (verdict.passed, verdict.exit_code) == (False, 1)
    assert verdict.reasons == [f"{PROMPT} × {MODEL}: pass rate 70.0% (7/10) is below min_pass_rate 75.0%"]
    v = verdict.variants[0]
    assert (v.passed, v.failed, v.gated_pass_rate) == (7, 3, 0.7)
    assert v.pass_rate_low == pytest.approx(0.3968, abs=1e-3)


def test_min_pass_rate_with_nothing_measured_fails() -> None:
    verdict = judge_run(binary_run(cases("u", 4, [None])), Gate(min_pass_rate=0.5))
    assert not verdict.passed
    assert "no measured results" in verdict.reasons[0]
    assert verdict.variants[0].unmeasured == 4
    assert any("4 of 4 units unmeasured" in n for n in verdict.notes)


def test_min_mean_per_evaluator() -> None:
    results = [unit(f"c{i}", True, extra=[score("sim", v, 0.1)]) for i, v in enumerate([0.4, 0.6, 0.5])]
    run = make_run(results)
    assert judge_run(run, Gate(min_mean={"sim": 0.5})).passed
    failed = judge_run(run, Gate(min_mean={"sim": 0.55}))
    assert failed.reasons == [f"{PROMPT} × {MODEL}: mean sim 0.500 is below min_mean 0.55"]
    typo = judge_run(run, Gate(min_mean={"simm": 0.1}))
    assert not typo.passed and "simm has no measured scores" in typo.reasons[0]


@pytest.mark.parametrize(("max_errors", "n_errors", "passed"), [
    (0, 0, True), (0, 1, False), (2, 2, True), (2, 3, False), (1, 1, True),
    (0.1, 2, True), (0.1, 3, False), (None, 19, True),
])
def test_max_errors_count_or_fraction(max_errors: float | None, n_errors: int, passed: bool) -> None:
    outcomes = {**cases("ok", 20 - n_errors, [True]), **cases("err", n_errors, ["error"])}
    verdict = judge_run(binary_run(outcomes), Gate(max_errors=max_errors))
    assert verdict.passed is passed
    assert verdict.errors == n_errors
    if not passed:
        assert f"{n_errors} errored units" in verdict.reasons[0]


def test_every_unit_errored_without_a_limit_is_not_a_pass() -> None:
    verdict = judge_run(binary_run(cases("err", 5, ["error"])), Gate(max_errors=None))
    assert (verdict.passed, verdict.outcome, verdict.exit_code) == (False, "unmeasured", 5)
    assert "5 units: 5 errored" in verdict.reasons[0]


def test_no_baseline_note_and_empty_run() -> None:
    verdict = judge_run(binary_run(cases("c", 3, [True])), Gate())
    assert verdict.passed and verdict.baseline is None
    assert any("no baseline" in n for n in verdict.notes)
    assert not judge_run(make_run([]), Gate()).passed


# ---- the regression rule ---------------------------------------------------------------------

def test_significant_large_drop_is_a_regression() -> None:
    base, cur = _flip(60, worse=12, better=1)
    verdict = judge_run(binary_run(cur), Gate(), baseline_from_run(binary_run(base)))
    assert not verdict.passed and verdict.exit_code == 1 and verdict.regressed
    rate = verdict.variants[0].comparisons[0]
    assert (rate.metric, rate.test, rate.pairs, rate.worse, rate.better) == ("pass_rate", "mcnemar-exact",
                                                                           60, 12, 1)
    assert rate.p_worse == pytest.approx(mcnemar_exact(12, 1, "greater"))
    assert rate.difference == pytest.approx(-11 / 60)
    assert rate.ci_low is not None and rate.ci_high is not None and rate.difference is not None
    assert rate.ci_low < rate.difference < rate.ci_high < 0
    assert rate.confidence == pytest.approx(0.9)
    assert rate.regressed and not rate.improved
    assert [c.case_id for c in verdict.variants[0].regressed_cases] == [f"c{i:04d}" for i in range(12)]
    assert [c.case_id for c in verdict.variants[0].improved_cases] == ["c0012"]
    assert any("pass rate regressed" in r and "mcnemar-exact" in r for r in verdict.reasons)


def test_large_but_not_significant_drop_passes_with_small_suite_note() -> None:
    # 3 of 4 cases break: a 75-point drop, but p = 1/8 with 4 cases.
    base, cur = _flip(4, worse=3)
    verdict = judge_run(binary_run(cur), Gate(), baseline_from_run(binary_run(base)))
    rate = verdict.variants[0].comparisons[0]
    assert rate.difference == -0.75 and rate.p_worse == 1 / 8
    assert not rate.regressed and verdict.passed
    assert rate.underpowered and rate.mde is None
    assert any("can reliably (80% power) detect no pass-rate drop" in n for n in verdict.notes)


def test_significant_but_smaller_than_tolerance_passes() -> None:
    # 40 of 1000 cases break and none improve: p ~ 1e-12, but the drop is 4 points.
    base, cur = _flip(1000, worse=40)
    baseline = baseline_from_run(binary_run(base))
    verdict = judge_run(binary_run(cur), Gate(tolerance=0.05), baseline, n_resamples=200)
    rate = verdict.variants[0].comparisons[0]
    assert rate.p_worse is not None and rate.p_worse < 1e-10
    assert not rate.regressed and verdict.passed
    assert not rate.underpowered
    stricter = judge_run(binary_run(cur), Gate(tolerance=0.03), baseline, n_resamples=200)
    assert not stricter.passed and stricter.variants[0].comparisons[0].regressed


def test_significant_improvement_is_reported_not_failed() -> None:
    base, cur = _flip(50, worse=0, better=15)
    verdict = judge_run(binary_run(cur), Gate(), baseline_from_run(binary_run(base)))
    assert verdict.passed
    assert verdict.variants[0].comparisons[0].improved
    assert any("improved significantly" in n for n in verdict.notes)


def test_evaluator_mean_regression_without_pass_rate_change() -> None:
    def run(shift: float):  # type: ignore[no-untyped-def]
        return make_run([unit(f"c{i:02d}", True, extra=[score("sim", 0.8 - shift + (i % 5) / 50, 0.1)])
                         for i in range(30)])

    verdict = judge_run(run(0.2), Gate(), baseline_from_run(run(0.0)))
    comparisons = {c.metric: c for c in verdict.variants[0].comparisons}
    assert not comparisons["pass_rate"].regressed and comparisons["pass_rate"].difference == 0
    sim = comparisons["sim"]
    assert sim.kind == "mean" and sim.regressed and sim.test == "sign-flip-exact"
    assert sim.difference == pytest.approx(-0.2)
    assert sim.p_worse == pytest.approx(2**-30)
    assert not verdict.passed and "mean sim regressed" in verdict.reasons[0]
    small = judge_run(run(0.03), Gate(), baseline_from_run(run(0.0)))
    assert small.passed  # significant, but 0.03 < tolerance 0.05


def test_continuous_scores_use_monte_carlo_and_are_deterministic() -> None:
    import math

    def run(shift: float, phase: float):  # type: ignore[no-untyped-def]
        # Irrational per-run jitter: the differences lie on no rational grid.
        return make_run([unit(f"c{i:02d}", True, extra=[score(
            "sim", 0.5 + 0.02 * math.sin(i * 1.7 + phase) - shift * (i % 2), 0.0)]) for i in range(40)])

    baseline = baseline_from_run(run(0.0, 0.0))
    first = judge_run(run(0.25, 1.0), Gate(), baseline, permutation_resamples=3000)
    sim = next(c for c in first.variants[0].comparisons if c.metric == "sim")
    assert sim.test == "sign-flip-monte-carlo"
    assert sim.regressed  # 20 of 40 cases drop by 0.25: mean about -0.125
    assert sim.p_worse == pytest.approx(1 / 3001, abs=2e-3)
    assert first == judge_run(run(0.25, 1.0), Gate(), baseline, permutation_resamples=3000)
    assert judge_run(run(0.0, 1.0), Gate(), baseline, permutation_resamples=3000).passed


# ---- repeats, flaky cases, quarantine --------------------------------------------------------

def test_flaky_cases_and_quarantine() -> None:
    stable = cases("s", 10, [True, True, True])
    base = binary_run({**stable, **cases("f", 10, [True, True, True])})
    cur = binary_run({**stable, **cases("f", 10, [True, False, False])})  # flaky now, 2/3 lower
    baseline = baseline_from_run(base)

    verdict = judge_run(cur, Gate(), baseline)
    v = verdict.variants[0]
    assert v.flaky_cases == [f"f{i:03d}" for i in range(10)]
    rate = v.comparisons[0]
    assert rate.test == "sign-flip-exact"
    assert rate.p_worse == pytest.approx(2**-10)
    assert rate.difference == pytest.approx(-1 / 3)
    assert not verdict.passed
    assert all(c.flaky for c in v.regressed_cases)
    assert any("10 flaky case(s)" in n and "quarantine_flaky" in n for n in verdict.notes)

    # Stable in the baseline, flaky now: that is the regression; quarantine must not hide it.
    quarantined = judge_run(cur, Gate(quarantine_flaky=True), baseline)
    q = quarantined.variants[0]
    assert (quarantined.outcome, quarantined.exit_code) == ("failed", 1) and q.regressed
    assert q.quarantined_cases == [] and q.comparisons[0].pairs == 20
    assert any("10 case(s) stable in the baseline are flaky now" in n for n in quarantined.notes)
    assert (q.stable_pass, q.stable_fail, q.flaky, q.k) == (10, 0, 10, 3)
    assert q.pass_hat_k == pytest.approx(0.5) and q.pass_hat_k_cases == 20


def test_quarantine_leaves_out_only_cases_flaky_in_the_baseline() -> None:
    stable = cases("s", 10, [True, True, True])
    base = binary_run({**stable, **cases("f", 10, [True, False, True])})
    cur = binary_run({**stable, **cases("f", 10, [False, True, False])})
    quarantined = judge_run(cur, Gate(quarantine_flaky=True, min_pass_rate=1.0), baseline_from_run(base))
    q = quarantined.variants[0]
    assert quarantined.passed, quarantined.reasons
    assert q.quarantined_cases == [f"f{i:03d}" for i in range(10)]
    assert q.comparisons[0].pairs == 10 and q.comparisons[0].difference == 0
    assert q.gated_pass_rate == 1.0 and q.pass_rate == pytest.approx(40 / 60)
    # Every figure names the units it covers: the rate covers the 30 gated units, not all 60.
    assert quarantined.reasons[0].startswith(f"{PROMPT} × {MODEL}: pass rate 100.0% over 30 measured units")
    assert any("30 units excluded" in n for n in quarantined.notes)


def test_nothing_left_to_judge_after_quarantine_is_not_a_pass() -> None:
    base = binary_run(cases("f", 6, [True, False, True]))
    cur = binary_run(cases("f", 6, [True, True, False]))
    verdict = judge_run(cur, Gate(quarantine_flaky=True), baseline_from_run(base))
    assert (verdict.passed, verdict.outcome, verdict.exit_code) == (False, "unmeasured", 5)
    assert "nothing measured" in verdict.reasons[0] and "18 quarantined" in verdict.reasons[0]


def test_flaky_in_baseline_counts_too() -> None:
    base = binary_run({"a": [True, False], "b": [True, True]})
    cur = binary_run({"a": [True, True], "b": [True, True]})
    verdict = judge_run(cur, Gate(quarantine_flaky=True), baseline_from_run(base))
    assert verdict.variants[0].quarantined_cases == ["a"]


def test_unmeasured_pairs_are_left_out_of_the_test() -> None:
    base = binary_run({**cases("c", 10, [True]), "u1": [True], "u2": [None]})
    cur = binary_run({**cases("c", 10, [True]), "u1": [None], "u2": [False]})
    verdict = judge_run(cur, Gate(), baseline_from_run(base))
    v = verdict.variants[0]
    assert v.comparisons[0].pairs == 10
    assert v.unmeasured == 1 and v.unmeasured_by_evaluator == {"contains": 1}
    assert any("1 of 12 units unmeasured" in n for n in verdict.notes)


# ---- pairing ---------------------------------------------------------------------------------

def test_single_prompts_with_different_refs_pair_by_case_and_model() -> None:
    base, cur = _flip(40, worse=15)
    baseline = baseline_from_run(binary_run(base, prompt="classify_sentiment@1"))
    verdict = judge_run(binary_run(cur, prompt="classify_sentiment@2"), Gate(), baseline)
    v = verdict.variants[0]
    assert (v.baseline_prompt, v.baseline_model) == ("classify_sentiment@1", MODEL)
    assert v.comparisons[0].pairs == 40 and v.regressed
    assert any("compared with baseline prompt classify_sentiment@1" in n for n in verdict.notes)


def test_several_prompts_pair_only_by_exact_ref_and_model() -> None:
    base, cur = _flip(20, worse=10)
    baseline = baseline_from_run(make_run([*binary_run(base, prompt="p@1").results,
                                           *binary_run(base, prompt="p@2").results]))
    run = make_run([*binary_run(cur, prompt="p@1").results, *binary_run(base, prompt="p@3").results,
                    *binary_run(cur, model="fake/other", prompt="p@1").results])
    verdict = judge_run(run, Gate(), baseline)
    by_name = {v.name: v for v in verdict.variants}
    assert by_name[f"p@1 × {MODEL}"].regressed
    assert by_name[f"p@3 × {MODEL}"].comparisons == []
    assert by_name["p@1 × fake/other"].comparisons == []
    assert any(f"p@3 × {MODEL}: no baseline" in n for n in verdict.notes)
    assert any(f"baseline variant p@2 × {MODEL} is not in this run" in n for n in verdict.notes)


def test_new_and_missing_cases_and_provenance_notes() -> None:
    base = make_run(binary_run({"a": [True], "b": [True]}).results, dataset_hash="old")
    cur = make_run(binary_run({"a": [True], "c": [True]}).results,
                   evaluators=[{"name": "contains", "kind": "contains", "version": "2", "threshold": 1.0}])
    verdict = judge_run(cur, Gate(), baseline_from_run(base))
    v = verdict.variants[0]
    assert (v.new_cases, v.missing_cases) == (["c"], ["b"])
    joined = "\n".join(verdict.notes)
    assert "cases changed since the baseline" in joined
    assert "evaluator contains: version changed (1 → 2)" in joined


# ---- the Verdict model -----------------------------------------------------------------------

# The JSON keys users read (`llmops run --json`, reports); the classes share their declarations
# (StatusCounts, VariantKey, RepeatStats' figures) but the keys and their order stay these.
VARIANT_VERDICT_KEYS = [
    "prompt", "model", "units", "passed", "failed", "unmeasured", "errors", "skipped", "pass_rate",
    "baseline_prompt", "baseline_model", "gated_pass_rate", "pass_rate_low", "pass_rate_high", "means",
    "unmeasured_by_evaluator", "flaky_cases", "quarantined_cases", "gated_decided", "cases", "stable_pass",
    "stable_fail", "flaky", "unmeasured_cases", "k", "pass_hat_k", "pass_hat_k_cases", "comparisons",
    "regressed_cases", "improved_cases", "new_cases", "missing_cases", "failures", "undecided"]
VARIANT_SUMMARY_KEYS = [
    "prompt", "model", "units", "passed", "failed", "unmeasured", "errors", "skipped", "pass_rate", "means",
    "unmeasured_by_evaluator", "latency_p50_s", "latency_p95_s", "prompt_tokens", "completion_tokens", "cost_usd",
    "judge_cost_usd", "agent_units", "tool_calls", "steps_per_task", "ttft_p50_s", "ttft_p95_s"]


def test_the_json_keys_of_verdicts_and_summaries_stay_the_same() -> None:
    base, cur = _flip(30, worse=10)
    run = binary_run(cur)
    verdict = judge_run(run, Gate(), baseline_from_run(binary_run(base)))
    (v,) = verdict.model_dump(mode="json")["variants"]
    assert list(v) == VARIANT_VERDICT_KEYS
    (summary,) = [s.model_dump(mode="json") for s in summarize(run.results)]
    assert list(summary) == VARIANT_SUMMARY_KEYS
    # The repeat figures read back as the RepeatStats they were built from.
    variant = verdict.variants[0]
    assert variant.repeats == repeat_stats(run)[(variant.prompt, variant.model)]
    assert (v["cases"], v["unmeasured_cases"]) == (variant.repeats.cases, variant.repeats.unmeasured)


def test_verdict_serialises_and_is_consistent() -> None:
    base, cur = _flip(30, worse=10)
    verdict = judge_run(binary_run(cur), Gate(), baseline_from_run(binary_run(base)))
    data = verdict.model_dump(mode="json")
    assert data["exit_code"] == 1 and data["variants"][0]["comparisons"][0]["metric"] == "pass_rate"
    assert Verdict.model_validate(data) == verdict
    assert verdict.lines()[: len(verdict.reasons)] == verdict.reasons
    with pytest.raises(ValueError, match="contradicts"):
        Verdict(passed=True, exit_code=1)


def test_passing_verdict_explains_itself() -> None:
    base, cur = _flip(30, worse=1)
    verdict = judge_run(binary_run(cur), Gate(), baseline_from_run(binary_run(base)))
    assert verdict.passed and verdict.exit_code == 0
    assert "no regression beyond tolerance" in verdict.reasons[0]
