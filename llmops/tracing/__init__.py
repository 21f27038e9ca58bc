"""Tracing: every LLM call as a generation, user functions as spans, scores, to Langfuse or SQLite.

- :func:`observe` / :func:`span` trace the user's own code; :func:`trace_attributes` sets the
  user, session, tags, environment and release of everything inside.
- :class:`Tracer` (usually :func:`get_tracer`) is an ``LLMClient`` observer: calls made with
  ``llmops.complete``/``acomplete`` through the default client are traced automatically.
- Spans always go to the local :class:`TraceStore` (``settings.trace_path``), and to Langfuse
  through its SDK v5 when ``LANGFUSE_PUBLIC_KEY``/``LANGFUSE_SECRET_KEY``/``LANGFUSE_HOST`` are set.
- :class:`Redactor` removes secrets before anything is stored or leaves the process.

Nothing here imports ``langfuse`` until a tracer with Langfuse credentials starts its worker.
"""

from llmops.tracing.exporter import Exporter, ExportStats
from llmops.tracing.model import ScoreRecord, SpanRecord, TraceAttributes
from llmops.tracing.observe import ActiveSpan, current_span, observe, span, trace_attributes
from llmops.tracing.redaction import Redactor
from llmops.tracing.store import ScoreRow, SpanRow, TraceDetail, TraceStore, TraceSummary
from llmops.tracing.tracer import (
    EvalUnitTrace,
    Tracer,
    TracingStats,
    create_tracer,
    get_tracer,
    reset_tracing,
    set_redact_hook,
    set_tracer,
)

__all__ = [
    "ActiveSpan",
    "EvalUnitTrace",
    "ExportStats",
    "Exporter",
    "Redactor",
    "ScoreRecord",
    "ScoreRow",
    "SpanRecord",
    "SpanRow",
    "TraceAttributes",
    "TraceDetail",
    "TraceStore",
    "TraceSummary",
    "Tracer",
    "TracingStats",
    "create_tracer",
    "current_span",
    "get_tracer",
    "observe",
    "reset_tracing",
    "set_redact_hook",
    "set_tracer",
    "span",
    "trace_attributes",
]
