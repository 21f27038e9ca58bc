"""Worker processes (``run_suite(workers=N)``, ``llmops run --workers N``): functional, not timed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from runner_helpers import interrupt_after

from llmops.llm import fake
from llmops.runner.parallel import split
from llmops.runner.store import RunStore

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes fork (Linux)")

SUITE = """\
name: par
prompt: rag_answer@2
models: [{model}]
evaluators:
  - contains: {{name: has_answer}}
gate: {{min_pass_rate: 0.5}}
cases:
{cases}
"""


def make_suite(project: Path, n: int, model: str = "fake/m") -> Path:
    cases = "\n".join(f"  - {{id: c{i}, inputs: {{question: 'q{i}'}}, expected: 'a{i}'}}" for i in range(n))
    path = project / "evalsets" / "par.yaml"
    path.write_text(SUITE.format(model=model, cases=cases), encoding="utf-8")
    return path


def logging_responder(log: Path, die_in_child_at: str | None = None, parent: int = 0):  # type: ignore[no-untyped-def]
    def respond(messages, params):  # type: ignore[no-untyped-def]
        q = messages[-1]["content"].rsplit("Question: q", 1)[1].split()[0]
        if die_in_child_at is not None and os.getpid() != parent and q == die_in_child_at:
            os._exit(7)  # a worker dies mid-run
        with log.open("a") as f:
            f.write(f"{os.getpid()} q{q}\n")
        return f"the answer is a{q}"
    return respond


def pids_and_questions(log: Path) -> tuple[set[str], list[str]]:
    lines = [line.split() for line in log.read_text().splitlines()]
    return {pid for pid, _ in lines}, [q for _, q in lines]


def test_split_gives_every_process_a_share() -> None:
    assert split(64, 2) == [32, 32] and split(5, 2) == [3, 2] and split(3, 3) == [1, 1, 1]


def test_units_are_split_across_processes_and_stored_once(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    from llmops.runner.engine import run_suite

    log = project / "calls.log"
    fake.script("fake/m", responder=logging_responder(log))
    seen: list[str] = []
    run = run_suite(make_suite(project, 12), settings=settings, client=client, progress=False, workers=2,
                    on_result=lambda r: seen.append(r.key))
    pids, questions = pids_and_questions(log)
    assert len(pids) == 2 and os.getpid() != 0
    assert sorted(questions) == sorted(f"q{i}" for i in range(12))  # each unit called exactly once
    assert len(run.results) == 12 and {r.status for r in run.results} == {"pass"}
    assert sorted(seen) == sorted(r.key for r in run.results)  # on_result saw the children's units too
    m = run.manifest
    assert m.status == "completed" and m.provider_calls == 12 and m.units == 12
    stored = RunStore(settings.path(settings.store_path)).load(run.run_id)
    assert len({r.key for r in stored.results}) == 12
    # A second run is answered by the cache the workers wrote.
    again = run_suite(make_suite(project, 12), settings=settings, client=client, progress=False, workers=2)
    assert again.manifest.provider_calls == 0 and again.manifest.cache_hit_rate == 1.0


def test_a_dead_worker_leaves_its_units_to_the_parent(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    from llmops.runner.engine import run_suite

    log = project / "calls.log"
    # Unit k goes to process k % 2 + 1: q3 belongs to the child, which dies on it.
    fake.script("fake/m", responder=logging_responder(log, die_in_child_at="3", parent=os.getpid()))
    seen: list[str] = []
    run = run_suite(make_suite(project, 8), settings=settings, client=client, progress=False, workers=2,
                    concurrency=2, on_result=lambda r: seen.append(r.key))
    assert len(run.results) == 8 and {r.status for r in run.results} == {"pass"}
    assert sorted(seen) == sorted(r.key for r in run.results)  # each reported once
    assert run.manifest.status == "completed"
    lines = [line.split() for line in log.read_text().splitlines()]
    assert sorted({q for _, q in lines}) == sorted(f"q{i}" for i in range(8))
    assert [pid for pid, q in lines if q == "q3"] == [str(os.getpid())]  # the parent took over


def test_concurrency_is_shared_not_multiplied(project: Path) -> None:  # type: ignore[no-untyped-def]
    from llmops.config import load_settings
    from llmops.llm.client import LLMClient
    from llmops.runner.engine import run_suite
    from llmops.testing import ProviderServer

    with ProviderServer(api_key="sk-par", latency_s=0.05) as server:
        models = {"srv": {"model": "openai/gpt-4o-mini", "params": {"api_base": server.openai_base,
                                                                    "api_key": "sk-par"}}}
        settings = load_settings(project, overrides={"models": models, "cache": "off"})
        client = LLMClient(settings, concurrency=4)
        run = run_suite(make_suite(project, 24, model="srv"), settings=settings, client=client, progress=False,
                        workers=2)
        assert len(run.results) == 24 and run.manifest.provider_calls == 24
        assert server.count == 24
        assert server.max_in_flight <= 4  # 2 + 2: the limit is the run's, not each process's


def test_resume_with_workers_finishes_only_missing_units(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    from llmops.runner.engine import resume_run, run_suite

    log = project / "calls.log"
    fake.script("fake/m", responder=logging_responder(log))
    stop_after_three, _ = interrupt_after(3)

    with pytest.raises(KeyboardInterrupt):
        run_suite(make_suite(project, 10), settings=settings, client=client, progress=False, concurrency=1,
                  on_result=stop_after_three)
    run_id = RunStore(settings.path(settings.store_path)).runs()[0].run_id
    log.unlink()
    resumed = resume_run(run_id, settings=settings, client=client, progress=False, workers=2)
    assert len(resumed.results) == 10 and len({r.key for r in resumed.results}) == 10
    assert resumed.manifest.status == "completed"
    _, questions = pids_and_questions(log)
    assert len(questions) == 7 and len(set(questions)) == 7


def test_cli_workers(project: Path) -> None:
    from llmops.cli import main

    make_suite(project, 6, model="fake/echo")
    (project / "evalsets" / "par.yaml").write_text(
        (project / "evalsets" / "par.yaml").read_text().replace("has_answer}", "has_answer, value: q}"))
    assert main(["run", "par", "--workers", "2", "--no-progress", "--cache", "off"]) == 0
    store = RunStore(project / ".llmops" / "runs.sqlite")
    manifest = store.runs()[0]
    assert manifest.units == 6 and manifest.status == "completed" and manifest.provider_calls == 6
    assert main(["run", "par", "--workers", "-1"]) == 2
