"""`llmops datasets push/pull` through the Langfuse SDK against the receiver (issue 22, point 3)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from llmops.cli import main
from llmops.config import Settings
from llmops.evalsets.loader import load_suite
from llmops.testing.langfuse_receiver import LangfuseReceiver, closed_port
from llmops.tracing.datasets import item_id

REPO = Path(__file__).resolve().parents[2]
SUITE = """\
name: qa
prompt: rag_answer@2
models: [fake/echo]
evaluators: [contains]
cases:
  - {id: paris, inputs: {question: 'Capital of France?'}, expected: Paris, contexts: [Paris is in France.],
     tags: [geo], metadata: {owner: ana}}
  - {id: tokyo, inputs: {question: 'Capital of Japan?'}, expected: Tokyo}
"""


def test_push_upserts_items_and_pull_writes_the_same_cases(lf_settings: Settings, receiver: LangfuseReceiver,
                                                            project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = project / "evalsets" / "qa.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    assert main(["datasets", "push", str(suite)]) == 0
    assert "created Langfuse dataset qa: 2 item(s) upserted" in capsys.readouterr().out
    items = {i["id"]: i for i in receiver.items_of("qa")}
    assert set(items) == {item_id("qa", "paris"), item_id("qa", "tokyo")}
    paris = items[item_id("qa", "paris")]
    assert paris["input"] == {"question": "Capital of France?"} and paris["expectedOutput"] == "Paris"
    assert paris["metadata"]["owner"] == "ana" and paris["metadata"]["llmops_case_id"] == "paris"
    before_edit = datetime.now(UTC).isoformat()
    time.sleep(0.01)  # the edit gets a later timestamp than the pin
    # Pushing an edited suite updates the items in place: ids are stable, nothing is duplicated.
    suite.write_text(SUITE.replace("expected: Tokyo", "expected: Tōkyō"), encoding="utf-8")
    assert main(["datasets", "push", str(suite)]) == 0
    assert "updated Langfuse dataset qa: 2 item(s) upserted" in capsys.readouterr().out
    items = {i["id"]: i for i in receiver.items_of("qa")}
    assert len(items) == 2 and items[item_id("qa", "tokyo")]["expectedOutput"] == "Tōkyō"

    # Pull into a cases file a suite can reference: same ids, inputs, expected, contexts, tags.
    assert main(["datasets", "pull", "qa", "--to", str(project / "evalsets" / "qa.jsonl")]) == 0
    assert "wrote 2 case(s) of qa" in capsys.readouterr().out
    pulled = project / "evalsets" / "pulled.yaml"
    pulled.write_text("name: pulled\nprompt: rag_answer@2\nevaluators: [contains]\ncases_file: qa.jsonl\n",
                      encoding="utf-8")
    original = {c.id: c for c in load_suite(suite).cases}
    cases = {c.id: c for c in load_suite(pulled).cases}
    assert set(cases) == set(original)
    for cid, case in cases.items():
        assert (case.inputs, case.expected, case.contexts, case.tags) == (
            original[cid].inputs, original[cid].expected, original[cid].contexts, original[cid].tags)
    assert cases["paris"].metadata["langfuse_item_id"] == item_id("qa", "paris")
    assert cases["paris"].metadata["owner"] == "ana"
    # --version pins the dataset as it was: the edit is not in it.
    old = project / "evalsets" / "qa_before.jsonl"
    assert main(["datasets", "pull", "qa", "--to", str(old), "--version", before_edit]) == 0
    assert '"expected": "Tokyo"' in old.read_text(encoding="utf-8")
    assert '"expected": "Tōkyō"' in (project / "evalsets" / "qa.jsonl").read_text(encoding="utf-8")


def test_datasets_without_a_reachable_langfuse(project: Path) -> None:
    (project / "evalsets" / "qa.yaml").write_text(SUITE, encoding="utf-8")
    base = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}

    def llmops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "llmops", *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=120)

    out = llmops(base, "datasets", "push", "evalsets/qa.yaml")
    assert out.returncode == 2 and "LANGFUSE" in out.stderr, out.stderr  # not configured: misconfiguration
    down = {**base, "LANGFUSE_PUBLIC_KEY": "pk-lf-x", "LANGFUSE_SECRET_KEY": "sk-lf-x",
            "LANGFUSE_HOST": f"http://127.0.0.1:{closed_port()}"}
    for args in (("push", "evalsets/qa.yaml"), ("pull", "qa", "--to", "evalsets/qa.jsonl")):
        out = llmops(down, "datasets", *args)
        assert out.returncode == 4, out.stdout + out.stderr  # unreachable: not a regression
    assert not (project / "evalsets" / "qa.jsonl").exists()


def test_traces_export_adds_production_calls_to_a_dataset_linked_to_their_traces(
        lf_settings: Settings, receiver: LangfuseReceiver, make_tracer: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tracing_helpers import PROMPT_META, record

    from llmops.tracing import TraceStore, span

    tracer = make_tracer(lf_settings.model_copy(update={"tracing": "local"}))
    ids = []
    for i in range(2):
        with span("handler", tracer=tracer) as root:
            tracer(record(text=f"answer {i}", metadata={**PROMPT_META, "prompt_inputs": {"question": f"q{i}"}}))
        ids.append(root.trace_id)
    assert tracer.flush(5)
    for _ in range(2):  # a second export updates the same items
        assert main(["traces", "export", "--to-dataset", "prod-bad"]) == 0
    out = capsys.readouterr().out
    assert "created Langfuse dataset prod-bad: 2 item(s) linked" in out and "updated Langfuse dataset" in out
    items = receiver.items_of("prod-bad")
    store = TraceStore(lf_settings.path(lf_settings.trace_path))
    gens = {t: store.trace(t).generations[0].span_id for t in ids}
    assert sorted((i["sourceTraceId"], i["sourceObservationId"]) for i in items) == sorted(gens.items())
    assert sorted(i["input"]["question"] for i in items) == ["q0", "q1"]
    assert all(i["metadata"]["production_output"].startswith("answer") for i in items)
