"""Eval runs as Langfuse experiment runs, played as a user from a fresh folder (issue 22, "done means").

Push a suite as a dataset, run a suite built on that dataset with two prompt versions, and check
in the receiver two experiment runs, every item linked to the trace of its unit, and the scores
equal to the run store's; then replay the same suite offline, Langfuse unreachable, and get the
same verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from llmops.config import load_settings
from llmops.runner.store import RunStore
from llmops.testing.langfuse_receiver import LangfuseReceiver, closed_port
from llmops.tracing import TraceStore
from llmops.tracing.datasets import item_id

GOLDEN = """\
name: golden
prompt: rag_answer@2
evaluators: [contains]
cases:
  - {id: paris, inputs: {question: 'Where is Paris?'}, expected: Paris}
  - {id: tokyo, inputs: {question: 'Where is Tokyo?'}, expected: Tokyo}
  - {id: rome, inputs: {question: 'Where is Rome?'}, expected: Milan, metadata: {owner: ana}}
"""
QA = """\
name: qa
description: answers from the golden dataset
prompts: [rag_answer@1, rag_answer@2]
models: [fake/echo]
evaluators: [contains]
gate: {min_pass_rate: 0.5}
cases_from: {langfuse_dataset: golden, version: latest}
"""


def _llmops(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmops", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=180)


def test_push_run_two_versions_as_experiments_then_replay_offline(project: Path, receiver: LangfuseReceiver) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "LLMOPS_"))}
    base["COLUMNS"] = "80"
    online = {**base, **receiver.env()}
    (project / "evalsets" / "golden.yaml").write_text(GOLDEN, encoding="utf-8")
    (project / "evalsets" / "qa.yaml").write_text(QA, encoding="utf-8")

    out = _llmops(project, online, "datasets", "push", "evalsets/golden.yaml")
    assert out.returncode == 0 and "created Langfuse dataset golden: 3 item(s)" in out.stdout, out.stderr
    out = _llmops(project, online, "datasets", "snapshot", "evalsets/qa.yaml")
    assert out.returncode == 0 and "3 item(s) of Langfuse dataset golden" in out.stdout, out.stderr
    assert (project / "evalsets" / "qa.dataset.json").is_file()

    out = _llmops(project, online, "run", "evalsets/qa.yaml", "--json")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr
    online_run = json.loads(out.stdout)
    run_id = online_run["run"]["manifest"]["run_id"]
    report = online_run["langfuse_experiments"]
    assert report["error"] is None and report["scores_sent"] == 6
    names = {f"{run_id} rag_answer@1 fake/echo", f"{run_id} rag_answer@2 fake/echo"}
    assert {r["name"] for r in report["runs"]} == names

    # Two experiment runs in Langfuse, read back through the SDK's experiments API.
    settings = load_settings(project, env=online)
    from llmops.tracing.langfuse_api import client

    lf = client(settings)
    from datetime import UTC, datetime, timedelta

    since = datetime.now(UTC) - timedelta(hours=1)
    assert receiver.wait_for(lambda: len(receiver.experiment_items()) == 6, timeout=15)
    experiments = lf.api.experiments.list(from_start_time=since).data
    assert sorted(e.name for e in experiments) == sorted(names)
    dataset_id = receiver.datasets["golden"]["id"]
    assert all(e.item_count == 3 and e.dataset_id == dataset_id for e in experiments)

    # Every item is the trace of its unit: the same trace id as in the local trace store, the unit's
    # case and prompt, linked to the case's dataset item.
    store = RunStore(settings.path(settings.store_path))
    results = {(r.case_id, r.prompt): r for r in store.load(run_id).results}
    traces = TraceStore(settings.path(settings.trace_path))
    by_name = {e.name: e.id for e in experiments}
    seen = set()
    for item in receiver.experiment_items():
        root = traces.trace(item["traceId"]).spans[0]
        case_id, prompt = root.metadata["case_id"], root.metadata["prompt"]
        assert item["experimentId"] == by_name[f"{run_id} {prompt} fake/echo"]
        assert item["experimentItemId"] == item_id("golden", case_id)
        assert item["experimentDatasetId"] == dataset_id
        assert item["output"] == results[(case_id, prompt)].output
        # The item's scores are the run store's, same names and values.
        stored = {s.name: s.value for s in results[(case_id, prompt)].scores if s.value is not None}
        assert {s["name"]: s["value"] for s in item["scores"]} == stored and stored
        seen.add((case_id, prompt))
    assert seen == set(results)
    sdk_items = lf.api.experiments.list_items(from_start_time=since, experiment_id=by_name[f"{run_id} rag_answer@2 "
                                                                                             "fake/echo"]).data
    assert len(sdk_items) == 3 and {i.trace_id for i in sdk_items} <= {i["traceId"] for i in
                                                                        receiver.experiment_items()}
    # Run-level scores: pass rate per variant, errors, the gate verdict.
    for e in receiver.experiments():
        scores = {s["name"]: s["value"] for s in e["scores"]}
        assert scores == {"pass_rate": 2 / 3, "errors": 0.0, "gate_passed": 1.0}, scores
    store.close()

    # Replay offline: Langfuse unreachable, cases from the committed snapshot, the same verdict.
    offline = {**online, "LANGFUSE_HOST": f"http://127.0.0.1:{closed_port()}"}
    out = _llmops(project, offline, "run", "evalsets/qa.yaml", "--json")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr
    offline_run = json.loads(out.stdout)
    assert offline_run["verdict"]["outcome"] == "passed"
    assert offline_run["langfuse_experiments"]["error"].endswith("the run-level scores were not sent")
    out = _llmops(project, offline, "run", "evalsets/qa.yaml")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr
    assert "from the snapshot" in out.stdout and "not fetched" in out.stderr
    assert "cannot be reached: the run-level scores were not sent" in out.stderr
    assert "item(s) linked to their traces, 0 failed (not delivered)" in out.stdout
    out = _llmops(project, {**base, "LLMOPS_DATASET_SOURCE": "snapshot"}, "run", "evalsets/qa.yaml", "--json")
    replay = json.loads(out.stdout)
    assert out.returncode == 0 and "langfuse_experiments" not in replay
    assert replay["verdict"]["outcome"] == online_run["verdict"]["outcome"] == "passed"
    assert [(v["prompt"], v["pass_rate"]) for v in replay["verdict"]["variants"]] == [
        (v["prompt"], v["pass_rate"]) for v in online_run["verdict"]["variants"]]
    assert replay["run"]["manifest"]["dataset"]["content_hash"] == online_run["run"]["manifest"]["dataset"][
        "content_hash"]

    # Back online, `traces push` sends the offline runs' unit traces into their experiment runs.
    out = _llmops(project, online, "traces", "push")
    assert out.returncode == 0, out.stdout + out.stderr
    offline_id = offline_run["run"]["manifest"]["run_id"]
    assert receiver.wait_for(lambda: any(e["name"] == f"{offline_id} rag_answer@1 fake/echo" and e["itemCount"] == 3
                                         for e in receiver.experiments()), timeout=15), receiver.experiments()


def test_local_suite_as_an_experiment_counts_failed_units(lf_settings, receiver: LangfuseReceiver,  # type: ignore[no-untyped-def]
                                                          make_tracer, project: Path) -> None:
    from llmops.gate import run_and_gate
    from llmops.llm import fake

    suite = project / "evalsets" / "local.yaml"
    suite.write_text("name: local\nprompt: rag_answer@2\nmodels: [fake/m]\nevaluators: [contains]\ncases:\n"
                     "  - {id: a, inputs: {question: q}, expected: Paris}\n"
                     "  - {id: b, inputs: {question: q}, expected: Paris}\n", encoding="utf-8")
    settings = lf_settings.model_copy(update={"langfuse_experiments": "on", "cache": "off"})
    tracer = make_tracer(settings)
    fake.script("fake/m", "Paris", fake.FakeError(400, "bad request"))
    try:
        outcome = run_and_gate(suite, settings=settings, tracer=tracer, concurrency=1, progress=False)
    finally:
        fake.reset()
    assert tracer.flush(10)
    report = outcome.experiments
    assert report is not None and report.error is None
    (run,) = report.runs
    assert (run.name, run.items, run.failed) == (outcome.run.run_id, 2, 1)  # one variant: the run id
    assert receiver.wait_for(lambda: len(receiver.experiment_items()) == 2, timeout=15)
    items = receiver.experiment_items()
    assert {i["experimentDatasetId"] for i in items} == {None}  # local data: no dataset
    assert sorted(i["level"] for i in items) == ["DEFAULT", "ERROR"]
    assert all(i["experimentId"] == run.id and i["experimentName"] == run.name for i in items)
    assert receiver.wait_for(lambda: len(receiver.experiments()[0]["scores"]) == 3, timeout=10)
    scores = {s["name"]: s["value"] for s in receiver.experiments()[0]["scores"]}
    assert scores["errors"] == 1.0 and scores["pass_rate"] == 1.0 and scores["gate_passed"] == 0.0


def test_compare_of_two_versions_is_two_experiment_runs(receiver: LangfuseReceiver, project: Path,  # type: ignore[no-untyped-def]
                                                         monkeypatch, capsys) -> None:
    from llmops.cli import main
    from llmops.tracing import get_tracer

    for key, value in {**receiver.env(), "LLMOPS_LANGFUSE_EXPERIMENTS": "on"}.items():
        monkeypatch.setenv(key, value)
    (project / "evalsets" / "golden.yaml").write_text(GOLDEN, encoding="utf-8")
    code = main(["compare", "evalsets/golden.yaml", "--prompts", "rag_answer@1,rag_answer@2", "--no-progress"])
    assert code in (0, 1)  # the comparison's verdict; what matters here is what Langfuse received
    assert get_tracer(load_settings(project)).flush(10)
    assert receiver.wait_for(lambda: len(receiver.experiment_items()) == 6, timeout=15)
    experiments = receiver.experiments()
    assert sorted(e["name"].split(" ", 1)[1] for e in experiments) == ["rag_answer@1 fake/echo",
                                                                       "rag_answer@2 fake/echo"]
    assert all(e["itemCount"] == 3 and e["datasetId"] is None for e in experiments)
    capsys.readouterr()
