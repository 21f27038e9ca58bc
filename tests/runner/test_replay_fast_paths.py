"""What makes a cached replay cheap keeps every guarantee: held commits, in-line evaluators, SQL filters."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from test_runner import answer_by_question, make_suite

from llmops.evalsets.models import Gate
from llmops.evaluators.base import EvalContext, Evaluator, Sample
from llmops.llm import fake
from llmops.llm.client import tally_provider_calls
from llmops.regression import aggregate_cases, judge_run
from llmops.runner.engine import _scores, run_suite
from llmops.runner.results import UnitResult, with_status
from llmops.runner.store import RunStore


def _result(i: int, status: str = "pass") -> UnitResult:
    return UnitResult(case_id=f"c{i}", prompt="p@1", model="m", status=status)  # type: ignore[arg-type]


def _rows_on_disk(path: Path) -> int:
    """Rows another process would see (a separate connection)."""
    if not path.exists():
        return 0
    with sqlite3.connect(path) as other:
        if not other.execute("SELECT 1 FROM sqlite_master WHERE name = 'results'").fetchone():
            return 0
        return int(other.execute("SELECT COUNT(*) FROM results").fetchone()[0])


# ---- the run store's held commits --------------------------------------------------------------
def test_held_results_wait_for_a_batch_and_every_read_sees_them(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    for i in range(3):
        store.add_result("r1", _result(i), hold=True)
    assert _rows_on_disk(store.path) == 0  # not committed yet ...
    assert store.count("r1") == 3  # ... but this store's own reads commit them first
    assert _rows_on_disk(store.path) == 3
    assert [r.case_id for r in store.iter_results("r1")] == ["c0", "c1", "c2"]  # completion order kept


def test_a_result_that_cost_a_call_commits_itself_and_the_held_ones_now(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    store.add_result("r1", _result(0), hold=True)
    store.add_result("r1", _result(1), hold=True)
    store.add_result("r1", _result(2))  # hold=False: committed at once, with those before it
    assert _rows_on_disk(store.path) == 3


def test_held_results_are_bounded_in_number_and_flushed_by_close(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    for i in range(RunStore.HOLD_MAX + 5):
        store.add_result("r1", _result(i), hold=True)
    assert _rows_on_disk(store.path) == RunStore.HOLD_MAX  # the batch went as soon as it was full
    store.close()
    assert _rows_on_disk(store.path) == RunStore.HOLD_MAX + 5


def test_held_results_are_bounded_in_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops.runner import store as store_module

    now = [100.0]
    monkeypatch.setattr(store_module.time, "monotonic", lambda: now[0])
    store = RunStore(tmp_path / "runs.sqlite")
    store.add_result("r1", _result(0), hold=True)
    now[0] += RunStore.HOLD_S + 0.01
    store.add_result("r1", _result(1), hold=True)  # the first one has waited long enough
    assert _rows_on_disk(store.path) == 2


def test_a_held_unit_is_still_never_duplicated(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    store.add_result("r1", _result(0, "pass"))
    store.add_result("r1", _result(0, "fail"), hold=True)
    store.flush()
    assert [r.status for r in store.iter_results("r1")] == ["pass"]


def test_a_failed_batch_commit_keeps_its_results_for_the_next_one(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    store.count("r1")  # the store exists before another process locks it
    store.add_result("r1", _result(0), hold=True)
    blocker = sqlite3.connect(store.path, timeout=0, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    store._db().execute("PRAGMA busy_timeout = 0")
    with pytest.raises(Exception, match="locked"):
        store.flush()
    blocker.execute("ROLLBACK")
    blocker.close()
    store.flush()
    assert _rows_on_disk(store.path) == 1


# ---- which results the runner lets wait ------------------------------------------------------
class _Recording(RunStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.holds: list[bool] = []

    def add_result(self, run_id: str, result: UnitResult, *, hold: bool = False) -> None:
        self.holds.append(hold)
        super().add_result(run_id, result, hold=hold)


def test_only_results_answered_by_the_cache_alone_may_wait(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/m", responder=answer_by_question)
    fake.script("fake/judge", responder=lambda m, p: '{"reason": "fine", "verdict": "pass"}')
    store = _Recording(settings.path(settings.store_path))
    plain = make_suite(project, n=4)
    run_suite(plain, settings=settings, client=client, store=store, progress=False)
    assert store.holds == [False] * 4  # every unit called the provider

    store.holds.clear()
    judged = make_suite(project, n=4)
    contains = "  - contains: {name: has_answer}"
    judged.write_text(judged.read_text().replace(contains, contains + "\n  - {kind: judge, criteria: 'is an answer'}"))
    run = run_suite(judged, settings=settings, client=client, store=store, progress=False)
    assert all(r.cached for r in run.results)  # the answers came from the cache ...
    assert store.holds == [False] * 4  # ... but each judge call went to the provider

    store.holds.clear()
    again = run_suite(judged, settings=settings, client=client, store=store, progress=False)
    assert store.holds == [True] * 4 and again.manifest.provider_calls == 0
    assert len(again.results) == 4 and store.count(again.run_id) == 4  # nothing is lost at the end


def test_the_call_tally_counts_calls_made_in_tasks_the_unit_starts(settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/t", responder=lambda m, p: "ok")

    async def unit() -> int:
        with tally_provider_calls() as calls:
            await asyncio.gather(*(client.acomplete([{"role": "user", "content": f"q{i}"}], "fake/t")
                                   for i in range(3)))
        return calls[0]

    async def outside() -> None:  # a call outside any tally counts nowhere
        await client.acomplete([{"role": "user", "content": "x"}], "fake/t")

    assert asyncio.run(unit()) == 3
    assert asyncio.run(unit()) == 0  # the same requests again: the cache answers them
    asyncio.run(outside())
    assert client.provider_calls == 4


# ---- evaluators: local ones in line, waiting ones concurrently, order kept --------------------------
class _Waiting(Evaluator):
    kind = "waiting"

    def __init__(self, name: str, log: list[str], delay: float) -> None:
        super().__init__(name=name)
        self.log, self.delay = log, delay

    async def score(self, sample: Sample, ctx: EvalContext) -> float:
        self.log.append(f"start {self.name}")
        await asyncio.sleep(self.delay)
        self.log.append(f"end {self.name}")
        return 1.0


class _Local(Evaluator):
    kind = "local-test"
    local = True

    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__(name=name)
        self.log = log

    async def score(self, sample: Sample, ctx: EvalContext) -> float:
        self.log.append(f"local {self.name}")
        return 0.0


def test_scores_keep_the_evaluators_order_and_waiting_ones_overlap() -> None:
    log: list[str] = []
    evaluators = [_Local("a", log), _Waiting("slow", log, 0.05), _Local("b", log), _Waiting("fast", log, 0.0)]
    scores = asyncio.run(_scores(evaluators, Sample(case_id="c", output="x"), EvalContext()))
    assert [s.name for s in scores] == ["a", "slow", "b", "fast"]
    assert [s.value for s in scores] == [0.0, 1.0, 0.0, 1.0]
    assert log.index("start fast") < log.index("end slow")  # the two waiting ones ran concurrently


def test_the_deterministic_evaluators_are_local_and_custom_code_is_not() -> None:
    from llmops.evaluators.base import create_evaluator

    assert create_evaluator("contains").local and create_evaluator("regex", pattern="x").local
    assert not create_evaluator("python", function="json:loads").local  # user code may wait
    assert not create_evaluator("judge", criteria="x").local


# ---- reading back: filtered in SQL, flakiness without a baseline --------------------------------------
def test_results_filtered_by_status_in_sql_equal_the_python_filter(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/m", responder=answer_by_question)
    run = run_suite(make_suite(project, n=9), settings=settings, client=client, progress=False, repeat=2)
    everything = list(run.results)
    for statuses in (("fail",), ("pass", "error"), ("unmeasured",), ()):
        expected = [r for r in everything if r.status in statuses]
        assert list(with_status(run.results, *statuses)) == expected
        assert list(with_status(everything, *statuses)) == expected


def test_flaky_cases_are_found_without_a_baseline(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    flip: dict[str, int] = {}

    def sometimes(messages: Any, params: Any) -> str:
        q = messages[-1]["content"].rsplit("Question: q", 1)[1].split()[0]
        flip[q] = flip.get(q, 0) + 1
        return f"the answer is a{q}" if int(q) % 3 == 0 or (int(q) % 3 == 1 and flip[q] % 2) else "no idea"

    fake.script("fake/m", responder=sometimes)
    run = run_suite(make_suite(project, n=9), settings=settings, client=client, progress=False, repeat=4,
                    cache="off")
    expected = sorted(c.case_id for c in aggregate_cases(run.results) if c.flakiness.status == "flaky")
    assert expected  # the scenario has flaky cases
    verdict = judge_run(run, Gate(min_pass_rate=0.0, quarantine_flaky=True))
    (variant,) = verdict.variants
    assert sorted(variant.flaky_cases) == expected
    assert variant.flaky == len(expected)
    # Quarantine leaves out only cases flaky in a baseline: without one, nothing is left out.
    assert variant.quarantined_cases == []
    assert any("without a baseline no case is quarantined" in n for n in verdict.notes)
