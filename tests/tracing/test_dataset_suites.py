"""Suites whose cases are a Langfuse dataset (`cases_from:`): fetched through the SDK, pinned in a
snapshot file and the run manifest, replayed offline from the snapshot (issue 22, point 1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmops.cli import main
from llmops.config import Settings
from llmops.runner.store import RunStore
from llmops.testing.langfuse_receiver import LangfuseReceiver, closed_port
from llmops.tracing.datasets import item_id

LOCAL = """\
name: golden
prompt: rag_answer@2
models: [fake/echo]
evaluators: [contains]
cases:
  - {id: paris, inputs: {question: 'Where is Paris?'}, expected: Paris}
  - {id: tokyo, inputs: {question: 'Where is Tokyo?'}, expected: Tokyo}
  - {id: rome, inputs: {question: 'Where is Rome?'}, expected: Rome, metadata: {owner: ana}}
"""
FROM_DATASET = """\
name: qa
prompt: rag_answer@2
models: [fake/echo]
evaluators: [contains]
cases_from: {langfuse_dataset: golden}
"""


def _latest(settings: Settings):  # type: ignore[no-untyped-def]
    store = RunStore(settings.path(settings.store_path))
    try:
        return store.manifest(store.resolve_id("latest"))
    finally:
        store.close()


def test_cases_from_a_dataset_are_pinned_and_edits_are_not_regressions(
        lf_settings: Settings, receiver: LangfuseReceiver, project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    local = project / "evalsets" / "golden.yaml"
    local.write_text(LOCAL, encoding="utf-8")
    assert main(["datasets", "push", str(local)]) == 0
    suite = project / "evalsets" / "qa.yaml"
    suite.write_text(FROM_DATASET, encoding="utf-8")
    capsys.readouterr()

    assert main(["run", str(suite), "--no-progress", "--update-baseline"]) == 0
    out = capsys.readouterr().out
    assert "cases: Langfuse dataset golden (version latest, 3 items" in out and "fetched from Langfuse" in out
    snapshot = project / "evalsets" / "qa.dataset.json"
    data = json.loads(snapshot.read_text(encoding="utf-8"))
    assert data["dataset"] == "golden" and [i["case"]["id"] for i in data["items"]] == ["paris", "rome", "tokyo"]
    pin = _latest(lf_settings).dataset
    # Items map to cases: item id -> case id kept, input -> inputs, metadata kept.
    assert pin is not None and pin.source == "langfuse"
    assert pin.items == {c: item_id("golden", c) for c in ("paris", "tokyo", "rome")}
    assert set(pin.case_hashes) == {"paris", "tokyo", "rome"} and pin.content_hash
    baseline = json.loads((project / "evalsets" / "baselines" / "qa.json").read_text(encoding="utf-8"))
    assert baseline["source"]["dataset"] == "golden" and baseline["source"]["case_hashes"] == pin.case_hashes
    mtime = snapshot.stat().st_mtime_ns

    # Unchanged dataset: the snapshot is not rewritten (no churn in git), same content hash.
    assert main(["run", str(suite), "--no-progress"]) == 0
    assert snapshot.stat().st_mtime_ns == mtime and _latest(lf_settings).dataset.content_hash == pin.content_hash

    # Someone edits an item in Langfuse: the run fetches it, the fingerprint changes, the snapshot
    # records the new content, and the edited case is not compared with its old result.
    local.write_text(LOCAL.replace("expected: Tokyo", "expected: Kyoto"), encoding="utf-8")
    assert main(["datasets", "push", str(local)]) == 0
    capsys.readouterr()
    code = main(["run", str(suite), "--no-progress", "--json"])
    verdict = json.loads(capsys.readouterr().out)["verdict"]
    edited = _latest(lf_settings).dataset
    assert edited.content_hash != pin.content_hash and edited.case_hashes["tokyo"] != pin.case_hashes["tokyo"]
    assert edited.case_hashes["paris"] == pin.case_hashes["paris"]
    assert '"expected": "Kyoto"' in snapshot.read_text(encoding="utf-8")
    assert any("1 case(s) of Langfuse dataset golden were edited since the baseline" in n and "tokyo" in n
               for n in verdict["notes"]), verdict["notes"]
    (variant,) = verdict["variants"]
    assert variant["new_cases"] == ["tokyo"] and variant["regressed_cases"] == []
    assert code == 0  # the edit is not a regression (the failing unit passes no absolute gate: none set)

    # Offline: Langfuse unreachable -> the snapshot's cases, with a note; the same content.
    # (a new public key: the SDK keeps one client per key in the process, with its first host)
    monkeypatch.setenv("LANGFUSE_HOST", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-elsewhere")
    capsys.readouterr()
    main(["run", str(suite), "--no-progress"])
    captured = capsys.readouterr()
    assert "from the snapshot" in captured.out and "not fetched" in captured.err
    assert _latest(lf_settings).dataset.content_hash == edited.content_hash


def test_dataset_suite_without_langfuse_or_snapshot(project: Path) -> None:
    import subprocess
    import sys

    (project / "evalsets" / "qa.yaml").write_text(FROM_DATASET, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANGFUSE_")}
    env["COLUMNS"] = "80"

    def llmops(extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "llmops", *args], cwd=project, env={**env, **extra},
                              capture_output=True, text=True, timeout=120)

    out = llmops({}, "run", "evalsets/qa.yaml")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "LANGFUSE_PUBLIC_KEY" in out.stderr and "qa.dataset.json" in out.stderr
    out = llmops({}, "datasets", "snapshot", "evalsets/qa.yaml")
    assert out.returncode == 2 and "LANGFUSE_PUBLIC_KEY" in out.stderr, out.stderr
    down = {"LANGFUSE_PUBLIC_KEY": "pk-lf-x", "LANGFUSE_SECRET_KEY": "sk-lf-x",
            "LANGFUSE_HOST": f"http://127.0.0.1:{closed_port()}"}
    out = llmops(down, "run", "evalsets/qa.yaml")
    assert out.returncode == 4 and "no snapshot" in out.stderr, out.stdout + out.stderr
    out = llmops(down, "datasets", "snapshot", "evalsets/qa.yaml")
    assert out.returncode == 4, out.stdout + out.stderr
    (project / "evalsets" / "plain.yaml").write_text("prompt: rag_answer@2\ncases: [{id: a}]\n", encoding="utf-8")
    out = llmops(down, "datasets", "snapshot", "evalsets/plain.yaml")
    assert out.returncode == 2 and "has no cases_from" in out.stderr, out.stderr
    out = llmops({"LLMOPS_DATASET_SOURCE": "snapshot"}, "run", "evalsets/qa.yaml")
    assert out.returncode == 2 and "no snapshot of Langfuse dataset 'golden'" in out.stderr, out.stderr
    # A snapshot for another dataset (or version) is refused, not run silently.
    (project / "evalsets" / "qa.dataset.json").write_text(json.dumps(
        {"format_version": 1, "dataset": "other", "version": "latest", "items": []}), encoding="utf-8")
    out = llmops({}, "run", "evalsets/qa.yaml")
    assert out.returncode == 2 and "holds dataset 'other'" in out.stderr, out.stderr
