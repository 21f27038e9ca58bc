"""The worker's JSON fast path (serialize once, store as is when no secret can be inside) changes
nothing: what is stored is what the full redaction walk would have stored, secrets included."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_redaction_fast_path import FRAGMENTS

from llmops.llm.types import Message
from llmops.tracing import Tracer, TraceStore
from llmops.tracing.model import ScoreRecord, SpanRecord, TraceAttributes, new_span_id, new_trace_id
from llmops.tracing.redaction import BUILTIN_PATTERNS, REDACTED, SECRET_KEYS, Redactor
from llmops.tracing.store import SPAN_KEYS, SPAN_ROW, ScoreRow, SpanRow, score_json, span_json

KEYS = ["role", "content", "api_key", "Token", "note", "max_tokens", "cookie", "password", "x", "TOKEN"]


def _span(**changes: Any) -> SpanRecord:
    fields: dict[str, Any] = dict(trace_id=new_trace_id(), span_id=new_span_id(), parent_id=None, name="ask@1",
                                  kind="generation", start_time=1.0, end_time=2.0)
    fields.update(changes)
    return SpanRecord(**fields)


def _full_walk(span: SpanRecord) -> dict[str, Any]:
    """What the store held before the fast path: every value redacted, then a validated row."""
    return json.loads(SPAN_ROW.dump_json(SpanRow.from_record(Redactor().span(span), json_safe=True)))


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def test_the_json_has_every_field_of_the_stored_rows() -> None:
    span = span_json(_span(attributes=TraceAttributes(tags=("a",))))
    score = score_json(ScoreRecord(trace_id=new_trace_id(), name="s", value=0.5))
    assert span is not None and score is not None
    assert list(json.loads(span)) == list(SPAN_KEYS)
    assert set(json.loads(score)) == set(ScoreRow.model_fields)


def test_objects_that_are_not_plain_json_take_the_validating_path() -> None:
    assert span_json(_span(input=(Message("user", "hi"),))) is not None  # to_dict(): as the redactor sees it
    assert span_json(_span(input={"x": object()})) is None
    assert span_json(_span(output=float("nan"))) is None
    assert span_json(_span(metadata={("a", "b"): 1})) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.sampled_from(FRAGMENTS) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(json_values, json_values, st.sampled_from(FRAGMENTS) | st.text(max_size=10))
def test_a_record_judged_clean_is_exactly_what_the_full_walk_stores(inp: Any, meta: Any, name: str) -> None:
    span = _span(name=name, input=inp, metadata={"m": meta}, params={"api_base": "http://h:1/v1"})
    data = span_json(span)
    assert data is not None
    if Redactor().clean_json(data):
        assert json.loads(data) == _full_walk(span)


@pytest.mark.parametrize("secret", [f for f in FRAGMENTS if Redactor().text(f) != f])
@pytest.mark.parametrize("where", ["name", "input", "output", "metadata", "params", "user_id", "tags", "key"])
def test_a_planted_secret_never_passes_as_clean(secret: str, where: str) -> None:
    text = f"see {secret} here"
    changes: dict[str, Any] = {
        "name": {"name": text}, "input": {"input": [{"role": "user", "content": text}]}, "output": {"output": text},
        "metadata": {"metadata": {"deep": [{"x": text}]}}, "params": {"params": {"extra_headers": {"h": text}}},
        "user_id": {"attributes": TraceAttributes(user_id=text)},
        "tags": {"attributes": TraceAttributes(tags=("t", text))},
        "key": {"metadata": {"token": "opaque-value"}},
    }[where]
    data = span_json(_span(**changes))
    assert data is not None
    assert not Redactor().clean_json(data)


@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_values_under_secret_keys_are_never_clean(key: str) -> None:
    for spelled in (key, key.upper()):
        data = span_json(_span(params={spelled: "plain"}))
        assert data is not None and not Redactor().clean_json(data)


def test_a_hook_or_custom_patterns_always_take_the_full_walk() -> None:
    data = span_json(_span(output="nothing to hide"))
    assert data is not None
    assert Redactor().clean_json(data)
    assert not Redactor(lambda s: s).clean_json(data)
    assert not Redactor(patterns=list(BUILTIN_PATTERNS)).clean_json(data)


def test_the_tracer_stores_clean_records_as_is_and_redacts_the_others(tmp_path: Any) -> None:
    tracer = Tracer(store=TraceStore(tmp_path / "t.sqlite"), batch_interval_s=0.01)
    clean = _span(input=(Message("user", "What is 2 plus 2?"),), output="4", params={"api_base": "http://h:1/v1"})
    leaky = _span(output="key sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", params={"api_key": "abc"})
    tracer.emit(clean)
    tracer.emit(leaky)
    tracer.score(clean.trace_id, "s", 1.0, comment="password=hunter22")
    assert tracer.flush(5)
    store = tracer.store
    assert store is not None
    by_id = {s.span_id: s for s in store.spans()}
    assert by_id[clean.span_id].input == [{"role": "user", "content": "What is 2 plus 2?"}]
    assert by_id[clean.span_id].output == "4"
    assert "sk-proj" not in (by_id[leaky.span_id].output or "") and REDACTED in (by_id[leaky.span_id].output or "")
    assert by_id[leaky.span_id].params["api_key"] == REDACTED
    (score,) = store.scores([clean.trace_id])
    assert score.comment is not None and "hunter22" not in score.comment
    tracer.shutdown()
    raw = (tmp_path / "t.sqlite").read_bytes()
    assert not re.search(rb"sk-proj-AbCd|hunter22", raw)
