from __future__ import annotations

from pathlib import Path

import pytest
from runner_helpers import interrupt_after

from llmops.errors import UserError
from llmops.llm import fake
from llmops.runner.engine import dry_run, in_shard, parse_shard, resume_run, run_suite
from llmops.runner.store import RunStore

SUITE = """\
name: demo
prompt: rag_answer@2
models: [fake/m]
evaluators:
  - contains: {name: has_answer}
gate: {min_pass_rate: 0.5}
cases:
{cases}
"""


def make_suite(project: Path, n: int = 4, extra: str = "") -> Path:
    cases = "\n".join(f"  - {{id: c{i}, inputs: {{question: 'q{i}'}}, expected: 'a{i}'}}" for i in range(n))
    path = project / "evalsets" / "demo.yaml"
    path.write_text(SUITE.replace("{cases}", cases) + extra, encoding="utf-8")
    return path


def answer_by_question(messages, params):  # type: ignore[no-untyped-def]
    text = messages[-1]["content"]
    q = text.rsplit("Question: q", 1)[1].split()[0]
    return f"the answer is a{q}" if int(q) % 2 == 0 else "I do not know"


def test_run_stores_every_result_with_manifest(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/m", responder=answer_by_question)
    path = make_suite(project)
    run = run_suite(path, settings=settings, client=client, progress=False)
    assert run.counts() == {"pass": 2, "fail": 2, "unmeasured": 0, "error": 0, "skipped": 0}
    by_case = {r.case_id: r for r in run.results}
    assert by_case["c0"].status == "pass" and by_case["c1"].status == "fail"
    assert by_case["c1"].scores[0].reason.startswith("none of")
    m = run.manifest
    assert m.status == "completed" and m.units == 4 and m.cases == 4
    assert m.prompts["rag_answer@2"] and m.models == {"fake/m": "fake/m"}
    assert m.evaluators[0]["kind"] == "contains" and m.dataset_hash
    assert m.provider_calls == 4 and m.cache_hit_rate == 0.0
    assert m.prompt_tokens > 0 and m.latency_p50_s is not None
    stored = RunStore(settings.path(settings.store_path)).load(run.run_id)
    assert sorted(r.key for r in stored.results) == sorted(r.key for r in run.results)
    assert stored.manifest.status == "completed"
    # The second run is answered by the cache: no provider call.
    again = run_suite(path, settings=settings, client=client, progress=False)
    assert again.manifest.provider_calls == 0 and again.manifest.cache_hit_rate == 1.0
    assert len(fake.calls("fake/m")) == 4


def test_errors_are_data(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/m", fake.FakeError(400, "bad request"), responder=lambda m, p: "a1 a2 a3 a0")
    run = run_suite(make_suite(project), settings=settings, client=client, progress=False, concurrency=1)
    statuses = sorted(r.status for r in run.results)
    assert statuses == ["error", "pass", "pass", "pass"]
    err = next(r for r in run.results if r.status == "error")
    assert "400" in (err.error or "") and err.output is None


def test_repeats_are_independent_samples(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/m", responder=lambda m, p: "a0")
    run = run_suite(make_suite(project, n=2), settings=settings, client=client, progress=False, repeat=3)
    assert len(run.results) == 6 and len(fake.calls("fake/m")) == 6
    assert sorted({r.repeat for r in run.results}) == [0, 1, 2]


def test_missing_prompt_input_is_an_error_record(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    path = make_suite(project, n=1)
    path.write_text(path.read_text().replace("inputs: {question: 'q0'}", "inputs: {}"))
    # A case whose prompt cannot render is a misconfiguration found before any call (exit 2).
    with pytest.raises(UserError, match=r"case c0 \[rag_answer@2\]: .*missing required input 'question'"):
        run_suite(path, settings=settings, client=client, progress=False)
    assert fake.calls("fake/m") == []


def test_bad_prompt_reference_fails_before_any_call(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    path = make_suite(project)
    path.write_text(path.read_text().replace("rag_answer@2", "rag_answer@7"))
    with pytest.raises(UserError, match="no version 7"):
        run_suite(path, settings=settings, client=client, progress=False)


def test_shards_partition_cases_stably() -> None:
    ids = [f"case-{i}" for i in range(200)]
    shards = [parse_shard(f"{i}/3") for i in (1, 2, 3)]
    owners = [[s for s in shards if in_shard(c, s)] for c in ids]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(in_shard(c, s) for c in ids) for s in shards]
    assert min(sizes) > 40
    with pytest.raises(UserError):
        parse_shard("4/3")


def test_shard_runs_merge_into_the_full_run(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    from llmops.runner.merge import merge_runs

    fake.script("fake/m", responder=answer_by_question)
    path = make_suite(project, n=9)
    stores = []
    for i in (1, 2):
        store = RunStore(project / f"shard{i}.sqlite")
        run_suite(path, settings=settings, client=client, store=store, shard=f"{i}/2", progress=False)
        stores.append(store.path)
    merged = merge_runs([(p, "latest") for p in stores], RunStore(project / "merged.sqlite"))
    assert sorted(r.case_id for r in merged.results) == sorted(f"c{i}" for i in range(9))
    assert merged.manifest.units == 9 and len(merged.manifest.merged_from) == 2
    with pytest.raises(UserError, match="two shards"):
        merge_runs([(stores[0], "latest"), (stores[0], "latest")], RunStore(project / "m2.sqlite"))


def test_resume_after_interruption_does_only_missing_work(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/m", responder=answer_by_question)
    path = make_suite(project, n=6)
    stop_after_three, _ = interrupt_after(3)

    with pytest.raises(KeyboardInterrupt):
        run_suite(path, settings=settings, client=client, progress=False, concurrency=1,
                  on_result=stop_after_three)
    store = RunStore(settings.path(settings.store_path))
    run_id = store.runs()[0].run_id
    assert len(store.done_units(run_id)) == 3
    calls_before = len(fake.calls("fake/m"))
    resumed = resume_run(run_id, settings=settings, client=client, progress=False)
    assert len(resumed.results) == 6 and len({r.key for r in resumed.results}) == 6
    assert len(fake.calls("fake/m")) - calls_before == 3
    assert resumed.manifest.status == "completed"


def test_resume_refuses_changed_prompt(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/m", responder=answer_by_question)
    run = run_suite(make_suite(project, n=2), settings=settings, client=client, progress=False)
    (project / "prompts" / "rag_answer" / "v2.jinja").write_text("---\n---\nchanged {{ question }}")
    with pytest.raises(UserError, match="changed since run"):
        resume_run(run.run_id, settings=settings, client=client, progress=False)


def test_dry_run_counts_calls_without_calling(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    plan = dry_run(make_suite(project, n=5), settings=settings, client=client, repeat=2)
    assert plan.units == 10 and plan.calls == 10 and plan.cached == 0
    assert plan.estimated_completion_tokens == 10 * 48
    assert fake.calls("fake/m") == []


def test_budget_stops_scheduling_before_it_is_exceeded(project: Path) -> None:  # type: ignore[no-untyped-def]
    from llmops.config import load_settings
    from llmops.llm.client import LLMClient

    priced = {"priced": {"model": "fake/m", "params": {"input_cost_per_token": 0.001,
                                                      "output_cost_per_token": 0.001}}}
    settings = load_settings(project, overrides={"models": priced, "cache": "off"})
    client = LLMClient(settings, concurrency=1)
    fake.script("fake/m", responder=lambda m, p: "one two three four")  # 4 completion tokens
    path = make_suite(project, n=10)
    plan = dry_run(path, settings=settings, client=client, models=["priced"])
    assert plan.estimated_cost_usd > 0 and plan.by_model["priced"]["calls"] == 10
    bound = plan.bound_cost_usd / plan.calls  # what each call reserves before it is sent
    cap = bound + 0.05  # room for the first call's worst case and a little more
    run = run_suite(path, settings=settings, client=client, models=["priced"], progress=False, max_cost_usd=cap)
    spent = sum(r.cost_usd for r in run.results)
    assert 0 < spent <= cap
    assert spent + bound > cap  # it stopped only when one more call's worst case could exceed the budget
    skipped = [r for r in run.results if r.status == "skipped"]
    assert skipped and run.manifest.status == "budget_exhausted"
    assert len(fake.calls("fake/m")) == 10 - len(skipped)
    # Resuming with a larger budget finishes the skipped work.
    resumed = resume_run(run.run_id, settings=settings, client=client, progress=False, max_cost_usd=1.0)
    assert len([r for r in resumed.results if r.status != "skipped"]) == 10


def test_dry_run_knows_what_the_cache_already_answers(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    fake.script("fake/m", responder=answer_by_question)
    path = make_suite(project, n=3)
    run_suite(path, settings=settings, client=client, progress=False, repeat=2)
    plan = dry_run(path, settings=settings, client=client, repeat=3)
    assert plan.units == 9 and plan.cached == 6 and plan.calls == 3
