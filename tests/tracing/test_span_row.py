"""A stored span is a span record (issue 19 move 3): one definition of a span's fields.

``SpanRow`` derives from ``SpanRecord``; its stored and JSON form stays flat (the trace attributes
beside the span's fields), so the store, ``traces show --json`` and the viewer's API read as before.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import Any

import pytest

from llmops.config import Settings
from llmops.errors import StoreError
from llmops.tracing.model import SpanRecord, TraceAttributes, new_span_id, new_trace_id
from llmops.tracing.store import SPAN_ROW, SpanRow, TraceDetail, TraceStore

# The flat keys every stored span has had (store format 1); the JSON users read must keep them.
STORED_KEYS = {
    "trace_id", "span_id", "parent_id", "name", "kind", "start_time", "end_time", "status", "error", "error_type",
    "status_code", "input", "output", "metadata", "model", "resolved_model", "params", "prompt_tokens",
    "completion_tokens", "cost_usd", "cached", "prompt_name", "prompt_version", "prompt_hash", "user_id",
    "session_id", "tags", "environment", "release", "trace_name", "trace_metadata",
}


def _full_span() -> SpanRecord:
    """A span with a value other than the default in every field, its trace attributes included."""
    values: dict[str, Any] = dict(
        trace_id=new_trace_id(), span_id=new_span_id(), parent_id=new_span_id(), name="answer@3",
        kind="generation", start_time=100.0, end_time=101.5, status="error", error="rate limited",
        error_type="RateLimitError", status_code=429, input=[{"role": "user", "content": "hi"}], output="hello",
        metadata={"run_id": "r1", "case_id": "c1"}, model="smart", resolved_model="openai/gpt-4o-mini",
        params={"temperature": 0.2}, prompt_tokens=12, completion_tokens=3, cost_usd=0.0004, cached=True,
        prompt_name="answer", prompt_version=3, prompt_hash="ab" * 32,
        attributes=TraceAttributes(user_id="u-1", session_id="s-1", tags=("beta", "eu"), environment="staging",
                                   release="1.2.3", trace_name="support", metadata={"tenant": "acme"}))
    defaults = {f.name for f in dataclasses.fields(SpanRecord)} - set(values)
    assert defaults == set(), f"give the new field(s) {defaults} a value here"
    return SpanRecord(**values)


def test_a_stored_span_reads_back_as_the_record_that_was_traced(settings: Settings, make_tracer: Any) -> None:
    tracer = make_tracer(settings)
    span = _full_span()
    tracer.emit(span)
    assert tracer.flush(5)
    (row,) = tracer.store.spans()
    assert isinstance(row, SpanRow) and isinstance(row, SpanRecord)
    # Every field of the record, trace attributes included, survives the store (none is listed
    # by hand, so a field added to SpanRecord or TraceAttributes is stored without another edit).
    for f in dataclasses.fields(SpanRecord):
        assert getattr(row, f.name) == getattr(span, f.name), f.name
    # The flat names the viewer, the CLI and monitors read.
    assert (row.user_id, row.session_id, row.tags, row.environment, row.release, row.trace_name) == (
        "u-1", "s-1", ["beta", "eu"], "staging", "1.2.3", "support")
    assert row.trace_metadata == {"tenant": "acme"} and row.prompt_ref == "answer@3"


def test_the_json_users_read_stays_flat(settings: Settings, make_tracer: Any) -> None:
    tracer = make_tracer(settings)
    tracer.emit(_full_span())
    assert tracer.flush(5)
    detail = tracer.store.trace("latest")
    shown = json.loads(detail.model_dump_json())  # what `llmops traces show --json` prints
    (span,) = shown["spans"]
    assert set(span) == STORED_KEYS
    assert span["user_id"] == "u-1" and span["tags"] == ["beta", "eu"] and span["trace_metadata"] == {"tenant": "acme"}
    # What the store holds is the same flat form.
    con = sqlite3.connect(tracer.store.path)
    try:
        (data,) = con.execute("SELECT data FROM spans").fetchone()
    finally:
        con.close()
    assert json.loads(data) == span
    # And it validates back into the same trace.
    assert TraceDetail.model_validate_json(detail.model_dump_json()) == detail


def test_a_span_stored_by_an_earlier_version_still_reads() -> None:
    old = ('{"trace_id":"' + "a" * 32 + '","span_id":"' + "b" * 16 + '","parent_id":null,"name":"pipeline",'
           '"kind":"span","start_time":1.0,"end_time":2.0,"status":"ok","error":null,"error_type":null,'
           '"status_code":null,"input":{"x":1},"output":2,"metadata":{},"model":null,"resolved_model":null,'
           '"params":{},"prompt_tokens":null,"completion_tokens":null,"cost_usd":null,"cached":false,'
           '"prompt_name":null,"prompt_version":null,"prompt_hash":null,"user_id":"u","session_id":null,'
           '"tags":["t"],"environment":"production","release":null,"trace_name":null,"trace_metadata":{"k":"v"},'
           '"a_key_from_the_future":1}')
    row = SPAN_ROW.validate_json(old)
    assert row.attributes == TraceAttributes(user_id="u", tags=("t",), environment="production", metadata={"k": "v"})
    assert row.input == {"x": 1} and row.output == 2 and row.duration_s == 1.0


def test_a_corrupted_stored_span_is_a_store_error(settings: Settings) -> None:
    store = TraceStore(settings.path(settings.trace_path))
    store.add([SpanRow(trace_id="c" * 32, span_id="d" * 16, parent_id=None, name="x", kind="span",
                       start_time=1.0, end_time=2.0)])
    con = sqlite3.connect(store.path)
    con.execute("UPDATE spans SET data = json_set(data, '$.start_time', 'soon')")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="corrupted span row"):
        store.spans()

