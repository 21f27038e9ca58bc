"""Replays (``--cache read-only``) call no provider: under ``tracing = "auto"`` they record no traces."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.cli import main
from llmops.config import load_settings
from llmops.runner.engine import run_tracer
from llmops.tracing.store import TraceStore
from llmops.tracing.tracer import get_tracer

SUITE = "prompt: rag_answer@2\nmodels: [fake/echo]\ncases:\n  - {id: a, inputs: {question: q1}}\n" \
        "  - {id: b, inputs: {question: q2}}\n"


def _traces(project: Path) -> int:
    settings = load_settings(project)
    get_tracer(settings).flush(5)
    return TraceStore(settings.path(settings.trace_path)).count()[0]


def test_run_tracer_skips_replays_only_under_auto(project: Path) -> None:
    assert run_tracer(load_settings(project, overrides={"cache": "read-only"})) is None
    assert run_tracer(load_settings(project, overrides={"cache": "read-write"})) is not None
    assert run_tracer(load_settings(project, overrides={"cache": "read-only", "tracing": "local"})) is not None


def test_cli_replay_records_no_traces_unless_asked(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "evalsets" / "r.yaml").write_text(SUITE)
    assert main(["run", "evalsets/r.yaml", "--no-progress"]) == 0
    recorded = _traces(project)
    assert recorded == 2  # one eval trace per unit when the provider was called
    assert main(["run", "evalsets/r.yaml", "--no-progress", "--cache", "read-only"]) == 0
    assert _traces(project) == recorded  # the replay added none
    monkeypatch.setenv("LLMOPS_TRACING", "local")
    assert main(["run", "evalsets/r.yaml", "--no-progress", "--cache", "read-only"]) == 0
    assert _traces(project) == recorded + 2  # asked for: replays are traced too
