"""Process-wide tracers: one per configuration, and none lost to the cache's bound."""

from __future__ import annotations

from pathlib import Path

from llmops.config import Settings
from llmops.tracing.model import SpanRecord, new_span_id, new_trace_id


def test_a_tracer_pushed_out_of_the_cache_keeps_recording(settings: Settings) -> None:
    """Issue 19: after a fifth tracing configuration the oldest tracer was shut down while a
    client still held it, and its spans were dropped without a count."""
    from llmops.tracing.tracer import get_tracer, reset_tracing

    try:
        held = get_tracer(settings.model_copy(update={"tracing": "local"}))
        for i in range(5):  # more configurations than the cache keeps
            get_tracer(settings.model_copy(update={"tracing": "local", "trace_path": Path(f"t{i}.sqlite")}))
        span = SpanRecord(trace_id=new_trace_id(), span_id=new_span_id(), parent_id=None, name="late",
                          kind="span", start_time=1.0, end_time=2.0)
        held.emit(span)
        assert held.flush(5)
        assert [s.name for s in held.store.spans()] == ["late"]
        assert held.stats().dropped == 0
        # A span that reaches a tracer after its shutdown is lost, but counted.
        held.shutdown(timeout_s=2)
        held.emit(span)
        assert held.stats().dropped == 1
    finally:
        reset_tracing()
