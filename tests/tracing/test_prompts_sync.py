"""`llmops prompts push/pull` against the receiver, and `name@production` resolved from Langfuse."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest

from llmops.api import load_prompt
from llmops.cli import main
from llmops.config import Settings, load_settings
from llmops.prompts.registry import PromptRegistry
from llmops.testing.langfuse_receiver import LangfuseReceiver, closed_port
from llmops.tracing import langfuse_api


def test_push_then_pull_round_trip(lf_settings: Settings, receiver: LangfuseReceiver, project: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "push"]) == 0
    out = capsys.readouterr().out
    assert "created rag_answer@2 in Langfuse" in out and "label rag_answer@production -> v2" in out
    rag = receiver.prompts["rag_answer"]
    local = PromptRegistry(lf_settings.prompts_path)
    assert [p["version"] for p in rag] == [1, 2]
    v2 = local.get("rag_answer@2")
    assert rag[1]["prompt"] == v2.source  # the Jinja file, intact
    assert rag[1]["config"]["llmops_version"] == 2 and rag[1]["config"]["llmops_hash"] == v2.content_hash
    assert {"production", "staging", "latest"} <= set(rag[1]["labels"])
    assert json.loads((project / "prompts" / "langfuse.json").read_text())["versions"]["rag_answer"] == {
        "1": 1, "2": 2}
    # Pushing again changes nothing.
    assert main(["prompts", "push"]) == 0
    assert "in sync" in capsys.readouterr().out
    assert [p["version"] for p in receiver.prompts["rag_answer"]] == [1, 2]

    # Someone moves production back to v1 in Langfuse and adds a v3 in the UI.
    receiver.handle("PATCH", "/api/public/v2/prompts/rag_answer/versions/1", {},
                    {"authorization": _auth(receiver)}, b'{"newLabels": ["production"]}')
    receiver.prompts["rag_answer"].append({"name": "rag_answer", "version": 3, "type": "text",
                                           "prompt": "Answer: {{ question }}", "config": {}, "labels": ["latest"],
                                           "tags": [], "commitMessage": None})
    # A fresh checkout without the prompt files pulls everything back.
    shutil.rmtree(project / "prompts" / "rag_answer")
    assert main(["prompts", "pull", "rag_answer"]) == 0
    out = capsys.readouterr().out
    assert "created rag_answer@3 locally" in out and "label rag_answer@production -> v1" in out
    local = PromptRegistry(lf_settings.prompts_path)
    assert local.versions("rag_answer") == [1, 2, 3]
    assert local.get("rag_answer@2").content_hash == v2.content_hash
    assert local.labels("rag_answer") == {"production": 1, "staging": 2}
    assert local.get("rag_answer@3").render({"question": "q"})[0].content == "Answer: q"


def _auth(receiver: LangfuseReceiver) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{receiver.public_key}:{receiver.secret_key}".encode()).decode()


def test_pull_never_overwrites_a_different_local_file(lf_settings: Settings, receiver: LangfuseReceiver,
                                                      project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    receiver.prompts["summarize"] = [{"name": "summarize", "version": 1, "type": "text", "prompt": "other text",
                                      # Pushed by llmops as v1 (the config's hash is this text's).
                                      "config": {"llmops_version": 1,
                                                 "llmops_hash": hashlib.sha256(b"other text").hexdigest()},
                                      "labels": ["latest"], "tags": []}]
    before = (project / "prompts" / "summarize" / "v1.jinja").read_bytes()
    assert main(["prompts", "pull", "summarize"]) == 1
    assert "conflict: summarize@1" in capsys.readouterr().out
    assert (project / "prompts" / "summarize" / "v1.jinja").read_bytes() == before


def test_production_label_resolves_from_langfuse_with_local_fallback(
        project: Path, receiver: LangfuseReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in receiver.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LLMOPS_PROMPT_SOURCE", "langfuse")
    settings = load_settings(project)
    langfuse_api.push_prompts(settings, PromptRegistry(settings.prompts_path))
    # Local labels say production -> v2; Langfuse is told production -> v1.
    receiver.handle("PATCH", "/api/public/v2/prompts/rag_answer/versions/1", {},
                    {"authorization": _auth(receiver)}, b'{"newLabels": ["production"]}')
    assert load_prompt("rag_answer@production", settings).version == 1
    assert load_prompt("rag_answer@2", settings).version == 2  # explicit versions never ask Langfuse

    # A version that exists only in Langfuse is materialised and used.
    source = "---\ndescription: from the UI\n---\nQ: {{ question }}"
    receiver.prompts["summarize"] = [{"name": "summarize", "version": 1, "type": "text", "prompt": source,
                                      "config": {"llmops_version": 7,
                                                 "llmops_hash": hashlib.sha256(source.encode()).hexdigest()},
                                      "labels": ["production", "latest"], "tags": []}]
    pv = load_prompt("summarize@production", settings)
    assert pv.version == 7 and pv.render({"question": "x"})[0].content == "Q: x"
    assert ".llmops/langfuse_prompts/summarize/v7.jinja" in str(pv.path)

    # Langfuse unreachable: the local label decides, quickly, and keeps deciding during the back-off.
    monkeypatch.setenv("LANGFUSE_HOST", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-other-project")
    down = load_settings(project)
    started = time.monotonic()
    for _ in range(20):
        assert load_prompt("rag_answer@production", down).version == 2
    assert time.monotonic() - started < 3.0
