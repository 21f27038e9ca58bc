"""Prompt sync keeps one truth (issue 23 §4): push refuses what `check` rejects, both sides compare
hashes of the text, one `prompt_source` rule for complete/run/render, removed labels, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmops.cli import main
from llmops.config import Settings
from llmops.prompts.registry import PromptRegistry
from llmops.runner.store import RunStore
from llmops.testing.langfuse_receiver import LangfuseReceiver, closed_port

REPO = Path(__file__).resolve().parents[2]
INPUTS = ["-i", "question=Capital of France?", "-i", 'contexts=["Paris is the capital of France."]']


def _versions(receiver: LangfuseReceiver, name: str) -> list[tuple[int, list[str]]]:
    return [(p["version"], sorted(p["labels"])) for p in receiver.prompts.get(name, [])]


def _ui_edit(receiver: LangfuseReceiver, name: str, text: str, *, label: str = "production") -> int:
    """What the Langfuse UI does on "new version from this one": new text, the old config copied."""
    versions = receiver.prompts[name]
    base = versions[-1]
    for v in versions:
        v["labels"] = [lb for lb in v["labels"] if lb not in (label, "latest")]
    number = len(versions) + 1
    versions.append({**base, "version": number, "prompt": text, "config": dict(base["config"]),
                     "labels": [label, "latest"]})
    return number


def test_push_refuses_a_version_edited_in_place(lf_settings: Settings, receiver: LangfuseReceiver, project: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "lock"]) == 0
    assert main(["prompts", "push"]) == 0
    before = _versions(receiver, "rag_answer")
    v2 = project / "prompts" / "rag_answer" / "v2.jinja"
    v2.write_text(v2.read_text(encoding="utf-8") + "\nAlways answer in French.\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["prompts", "check"]) == 1
    assert main(["prompts", "push"]) == 1
    out = capsys.readouterr().out
    assert "conflict: rag_answer@2: edited in place" in out, out
    # Nothing reached Langfuse: no second "llmops v2", production did not move.
    assert _versions(receiver, "rag_answer") == before


def test_pull_and_label_lookup_compare_hashes_of_the_text(lf_settings: Settings, receiver: LangfuseReceiver,
                                                          project: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "push"]) == 0
    old = PromptRegistry(lf_settings.prompts_path).get("rag_answer@2")
    edited = old.source.replace("Answer", "Reply", 1) + "\nBe brief.\n"
    assert edited != old.source
    number = _ui_edit(receiver, "rag_answer", edited)
    # At run time, `answer@production` serves the text Langfuse has, not the old local v2.
    monkeypatch.setenv("LLMOPS_PROMPT_SOURCE", "langfuse")
    capsys.readouterr()
    assert main(["prompts", "show", "rag_answer@production"]) == 0
    shown = capsys.readouterr().out
    assert "Be brief." in shown, shown
    # A pull writes it as a new local version instead of matching it to v2.
    assert main(["prompts", "pull", "rag_answer"]) == 0
    out = capsys.readouterr().out
    assert "created rag_answer@3 locally" in out and "label rag_answer@production -> v3" in out, out
    local = PromptRegistry(lf_settings.prompts_path)
    assert local.get("rag_answer@3").source == edited and number == 3
    assert local.get("rag_answer@2").content_hash == old.content_hash


def test_prompt_source_is_one_rule_for_complete_run_and_render(lf_settings: Settings, receiver: LangfuseReceiver,
                                                               project: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "push"]) == 0
    # Langfuse serves production -> v1; the local labels say v2.
    receiver.prompts["rag_answer"][0]["labels"] = ["production"]
    receiver.prompts["rag_answer"][1]["labels"] = [lb for lb in receiver.prompts["rag_answer"][1]["labels"]
                                                   if lb != "production"]
    monkeypatch.setenv("LLMOPS_PROMPT_SOURCE", "langfuse")
    registry = PromptRegistry(lf_settings.prompts_path)
    v1, v2 = registry.get("rag_answer@1"), registry.get("rag_answer@2")
    capsys.readouterr()
    assert main(["prompts", "render", "rag_answer@production", "--json", *INPUTS]) == 0
    assert json.loads(capsys.readouterr().out) == [m.to_dict() for m in v1.render(
        {"question": "Capital of France?", "contexts": ["Paris is the capital of France."]})]
    assert main(["prompts", "render", "rag_answer@production", "--source", "local", "--json", *INPUTS]) == 0
    assert json.loads(capsys.readouterr().out)[0] == v2.render(
        {"question": "Capital of France?", "contexts": ["Paris is the capital of France."]})[0].to_dict()
    assert main(["complete", "rag_answer@production", "-m", "fake/echo", "--json", *INPUTS]) == 0
    capsys.readouterr()
    suite = project / "evalsets" / "prod.yaml"
    suite.write_text("name: prod\nprompt: rag_answer@production\nmodels: [fake/echo]\nevaluators: [contains]\n"
                     "cases:\n  - {id: c1, inputs: {question: 'Capital of France?', contexts: ['Paris']}, "
                     "expected: Paris}\n", encoding="utf-8")
    main(["run", str(suite), "--no-progress"])
    store = RunStore(project / ".llmops" / "runs.sqlite")
    manifest = store.runs(limit=1)[0]
    assert manifest.prompts == {"rag_answer@production": v1.content_hash}
    assert manifest.prompt_source == "langfuse"


def test_a_label_removed_locally_is_not_silently_kept(lf_settings: Settings, receiver: LangfuseReceiver,
                                                       project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "push"]) == 0
    (project / "prompts" / "rag_answer" / "labels.yaml").write_text("production: 2\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["prompts", "push"]) == 1
    out = capsys.readouterr().out
    assert "conflict: rag_answer@staging: removed locally" in out, out


def test_langfuse_unreachable_is_not_the_regression_code(project: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LANGFUSE_PUBLIC_KEY": "pk-lf-x", "LANGFUSE_SECRET_KEY": "sk-lf-x",
           "LANGFUSE_HOST": f"http://127.0.0.1:{closed_port()}", "LLMOPS_PROMPT_SOURCE": "langfuse", "COLUMNS": "80"}

    def llmops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "llmops", *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=120)

    for action in ("push", "pull"):
        out = llmops("prompts", action)
        assert out.returncode == 4, out.stdout + out.stderr
        assert "--source local" in out.stderr
    # The option the hint names exists, and answers without asking Langfuse.
    out = llmops("prompts", "render", "rag_answer@production", "--source", "local", *INPUTS)
    assert out.returncode == 0, out.stderr
