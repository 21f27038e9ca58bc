"""A run's results are read back from the run store, not held: behaviour and memory."""

from __future__ import annotations

import math
import pickle
import statistics
import tracemalloc
from pathlib import Path

from test_runner import answer_by_question, make_suite

from llmops.evalsets.models import Gate
from llmops.llm import fake
from llmops.regression import baseline_from_run, judge_run
from llmops.runner.engine import run_suite
from llmops.runner.results import ExactSum, RunResult, UnitResult, percentile, summarize
from llmops.runner.store import RunStore, StoredResults


def test_run_results_are_read_from_the_store_and_behave_like_a_list(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/m", responder=answer_by_question)
    run = run_suite(make_suite(project, n=6), settings=settings, client=client, progress=False)
    results = run.results
    assert isinstance(results, StoredResults)
    stored = RunStore(settings.path(settings.store_path)).results(run.run_id)
    assert len(results) == 6 and bool(results)
    assert list(results) == stored and list(results) == list(results)  # re-iterable
    assert results == stored
    assert results[0] == stored[0] and results[-1] == stored[-1] and results[1:3] == stored[1:3]
    assert pickle.loads(pickle.dumps(results)) == stored  # pickles as a plain list
    assert run.model_dump(mode="json")["results"] == [r.model_dump(mode="json") for r in stored]
    assert RunResult.model_validate_json(run.model_dump_json()).results == stored


def test_manifest_totals_match_the_results(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/m", responder=answer_by_question)
    run = run_suite(make_suite(project, n=7), settings=settings, client=client, progress=False, repeat=2)
    results = list(run.results)
    m = run.manifest
    latencies = [r.latency_s for r in results if r.latency_s is not None]
    assert m.units == len(results) == 14
    assert m.prompt_tokens == sum(r.prompt_tokens for r in results)
    assert m.completion_tokens == sum(r.completion_tokens for r in results)
    assert m.cost_usd == sum(r.cost_usd for r in results)
    assert m.cache_hits == sum(r.cached for r in results)
    assert m.latency_p50_s == percentile(latencies, 0.5) and m.latency_p95_s == percentile(latencies, 0.95)


def test_verdict_and_summary_of_a_stored_run_equal_those_of_its_list(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/m", responder=answer_by_question)
    path = make_suite(project, n=9)
    base = run_suite(path, settings=settings, client=client, progress=False, repeat=3, cache="off")
    run = run_suite(path, settings=settings, client=client, progress=False, repeat=3, cache="off")
    eager = RunResult(manifest=run.manifest, results=list(run.results))
    assert not isinstance(eager.results, StoredResults)
    baseline = baseline_from_run(base)
    for gate in (Gate(min_pass_rate=0.4), Gate(min_pass_rate=0.9, quarantine_flaky=True)):
        assert judge_run(run, gate, baseline) == judge_run(eager, gate, baseline)
        assert judge_run(run, gate) == judge_run(eager, gate)
    assert run.summary() == eager.summary()


def test_skipped_units_follow_the_stored_ones(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/m", responder=answer_by_question)
    run = run_suite(make_suite(project, n=3), settings=settings, client=client, progress=False)
    store = RunStore(settings.path(settings.store_path))
    skipped = UnitResult(case_id="c1", prompt="rag_answer@2", model="fake/m", repeat=1, status="skipped")
    results = StoredResults(store, run.run_id, [skipped])
    assert len(results) == 4 and results[3] == skipped and results[-1] == skipped
    assert list(results)[-1] == skipped
    # Grouped by case: the skipped repeat of c1 sits next to the stored one.
    assert [(r.case_id, r.repeat) for r in results.by_unit()] == [("c0", 0), ("c1", 0), ("c1", 1), ("c2", 0)]
    assert results.variant_keys() == {("rag_answer@2", "fake/m")}


def test_summary_means_are_exact_sums() -> None:
    values = [0.1] * 10 + [1e16, 1.0, -1e16]
    total = ExactSum()
    for v in values:
        total.add(v)
    assert total.value() == math.fsum(values) == statistics.fmean(values) * len(values)
    assert summarize([]) == []


def _judging_peak(project: Path, settings, client, n: int) -> int:  # type: ignore[no-untyped-def]
    run = run_suite(make_suite(project, n=n), settings=settings, client=client, progress=False, cache="off")
    tracemalloc.start(1)
    try:
        judge_run(run, Gate(min_pass_rate=0.1))
        run.summary()
        run.counts()
        assert len(run.results) == n
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_judging_a_run_does_not_hold_its_results(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    # The verdict, the summary and the counts stream over the stored results: their peak must
    # not grow with the run (a result object is ~3 KB; a list of them grew ~3 KB per unit).
    # Both sizes are above the store's read batch (1,000 rows), the one thing held at a time.
    fake.script("fake/m", responder=answer_by_question)
    _judging_peak(project, settings, client, 50)  # warm-up: imports and caches
    small = _judging_peak(project, settings, client, 1100)
    big = _judging_peak(project, settings, client, 3300)
    per_unit = (big - small) / 2200
    # Measured ~350 bytes per unit (SQLite row buffers and parser state); holding the results
    # and a case record per case, as judging did before, is several KB per unit.
    assert per_unit < 1000, f"{per_unit:.0f} bytes per unit"
