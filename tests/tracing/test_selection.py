"""Trace selection and the production-scoring write-back rule as a library (issue 19 move 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tracing_helpers import PROMPT_META, record

from llmops.config import Settings, load_settings
from llmops.errors import UserError
from llmops.testing.langfuse_receiver import LangfuseReceiver
from llmops.tracing import ScoreRow, TraceStore, span
from llmops.tracing.selection import call_pool, select_traces, write_back


def _calls(tracer: Any, n: int) -> list[str]:
    ids = []
    for i in range(n):
        with span("handler", tracer=tracer) as root:
            tracer(record(text=f"answer {i}", metadata={**PROMPT_META, "prompt_inputs": {"question": f"q{i}"}}))
        ids.append(root.trace_id)
    assert tracer.flush(5)
    return ids


def test_select_traces_by_score_threshold_and_ids(settings: Settings, make_tracer: Any) -> None:
    tracer = make_tracer(settings)
    ids = _calls(tracer, 3)
    tracer.score(ids[0], "faithfulness", 0.2)
    tracer.score(ids[1], "faithfulness", 0.9)
    assert tracer.flush(5)
    assert [t.trace_id for t in select_traces(settings, below=["faithfulness=0.5"])] == [ids[0]]
    assert [t.trace_id for t in select_traces(settings, ids=[ids[2][:10]])] == [ids[2]]
    assert len(call_pool(settings, prompt_name="rag_answer")) == 3
    with pytest.raises(UserError, match="--below expects NAME=VALUE"):
        select_traces(settings, below=["faithfulness"])
    with pytest.raises(UserError, match="local store"):
        select_traces(settings, source="langfuse", below=["faithfulness=0.5"])


def test_write_back_goes_to_the_source_and_to_langfuse_unless_tracing_is_local(
        project: Path, receiver: LangfuseReceiver, make_tracer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in receiver.env().items():
        monkeypatch.setenv(key, value)
    settings = load_settings(project)
    (tid,) = _calls(make_tracer(settings), 1)
    row = ScoreRow(score_id="a" * 32, trace_id=tid, name="length", value=1.0, status="pass", source="traces-score")
    assert write_back(settings, [row]) == [str(settings.path(settings.trace_path)), "Langfuse"]
    assert receiver.wait_for(lambda: any(s.get("traceId") == tid for s in receiver.scores))
    local_only = settings.model_copy(update={"tracing": "local"})
    row2 = row.model_copy(update={"score_id": "b" * 32})
    assert write_back(local_only, [row2]) == [str(settings.path(settings.trace_path))]
    assert {s.score_id for s in TraceStore(settings.path(settings.trace_path)).scores([tid])} >= {"a" * 32, "b" * 32}
