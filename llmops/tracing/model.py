"""In-memory tracing events: finished spans, scores and the trace-level attributes they carry.

These are frozen dataclasses built on the request path, so they hold references (the call's
frozen message tuple, already JSON-safe snapshots) and do no serialisation; the background
worker redacts them and turns them into the pydantic rows of :mod:`llmops.tracing.store`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

# "tool": a tool's execution (its arguments in, its result out), a Langfuse tool observation.
SpanKind = Literal["span", "generation", "tool"]
SpanStatus = Literal["ok", "error"]

# random.getrandbits is much cheaper than secrets/os.urandom and ids need uniqueness, not secrecy.
_rng = random.Random()


def new_trace_id() -> str:
    """A W3C/OpenTelemetry trace id: 32 lowercase hex digits (also a valid Langfuse trace id)."""
    value = 0
    while value == 0:  # an all-zero id is invalid in OpenTelemetry
        value = _rng.getrandbits(128)
    return f"{value:032x}"


def new_span_id() -> str:
    """An OpenTelemetry span id: 16 lowercase hex digits (the Langfuse observation id)."""
    value = 0
    while value == 0:
        value = _rng.getrandbits(64)
    return f"{value:016x}"


_T = TypeVar("_T")


def evolve(record: _T, **changes: Any) -> _T:
    """``dataclasses.replace`` for these frozen records without running ``__init__`` again.

    The records have no ``__post_init__`` and every change comes from an instance of the same
    type (already validated): a dict copy is much cheaper, and the tracer's worker makes several
    per span.
    """
    new = object.__new__(type(record))
    new.__dict__.update(record.__dict__)
    new.__dict__.update(changes)
    return new


@dataclass(frozen=True)
class TraceAttributes:
    """Attributes of a whole trace (Langfuse propagates them to every observation).

    Attributes:
        user_id: The end user the trace belongs to.
        session_id: Groups traces of one conversation or session.
        tags: Free-form tags (suite and run id for eval traces).
        environment: ``production``, ``staging``, ... (default: ``settings.environment``).
        release: The application release (default: ``settings.release``).
        trace_name: The trace's name (default: the root span's name).
        metadata: Small key/value pairs shared by every span of the trace.
    """

    user_id: str | None = None
    session_id: str | None = None
    tags: tuple[str, ...] = ()
    environment: str | None = None
    release: str | None = None
    trace_name: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def merged(self, other: TraceAttributes) -> TraceAttributes:
        """``other``'s values over these ones (tags and metadata are combined)."""
        tags = self.tags + tuple(t for t in other.tags if t not in self.tags)
        return TraceAttributes(
            user_id=other.user_id or self.user_id,
            session_id=other.session_id or self.session_id,
            tags=tags,
            environment=other.environment or self.environment,
            release=other.release or self.release,
            trace_name=other.trace_name or self.trace_name,
            metadata={**self.metadata, **other.metadata},
        )


EMPTY_ATTRIBUTES = TraceAttributes()


@dataclass(frozen=True)
class SpanRecord:
    """One finished span: a traced function (``span``), an LLM call (``generation``) or a tool's run (``tool``).

    Attributes:
        trace_id: 32-hex trace id.
        span_id: 16-hex span id.
        parent_id: The parent span's id, None for a trace's root.
        name: Display name (function name, ``prompt@version``, ``judge``, ...).
        kind: ``span``, ``generation`` or ``tool``.
        start_time: Unix time the span started.
        end_time: Unix time the span ended.
        status: ``ok`` or ``error``.
        error: The error message, for a failed span.
        error_type: The exception class name.
        status_code: The provider's HTTP status code, when it sent one.
        input: What went in (messages for a generation), JSON-safe or a message tuple.
        output: What came out (the completion text for a generation).
        metadata: Free-form span metadata (run id, case id, purpose, ...).
        model: The model as requested (alias or LiteLLM string).
        resolved_model: The LiteLLM model string actually called.
        params: Call parameters, credentials already removed by the client.
        prompt_tokens: Input tokens.
        completion_tokens: Output tokens.
        cost_usd: What the call cost (0 for a cache hit: nothing was spent).
        cached: Whether the response cache answered.
        prompt_name: The prompt that produced the call.
        prompt_version: Its version number.
        prompt_hash: Its content hash (sha256 of the file).
        attributes: Trace-level attributes in effect when the span started.
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: SpanKind
    start_time: float
    end_time: float
    status: SpanStatus = "ok"
    error: str | None = None
    error_type: str | None = None
    status_code: int | None = None
    input: Any = None
    output: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    resolved_model: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    cached: bool = False
    prompt_name: str | None = None
    prompt_version: int | None = None
    prompt_hash: str | None = None
    attributes: TraceAttributes = EMPTY_ATTRIBUTES

    @property
    def duration_s(self) -> float:
        """Wall time of the span in seconds."""
        return max(0.0, self.end_time - self.start_time)


@dataclass(frozen=True)
class ScoreRecord:
    """An evaluator's verdict attached to a trace (and optionally one span of it).

    Attributes:
        trace_id: The scored trace.
        name: The score name (the evaluator instance name).
        value: Value in [0, 1], None when the evaluator could not measure.
        span_id: The scored span (observation), if the score is about one span.
        status: ``pass``, ``fail``, ``unmeasured`` or ``error`` (our evaluator outcome).
        comment: The evaluator's reason.
        source: Who wrote it (``eval-run``, ``traces-score``, ``api``).
        metadata: Extras (threshold, evaluator kind and version).
        score_id: Unique id (Langfuse accepts it, so a retry never duplicates a score).
        created_at: Unix time.
    """

    trace_id: str
    name: str
    value: float | None
    span_id: str | None = None
    status: str = "pass"
    comment: str | None = None
    source: str = "api"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    score_id: str = field(default_factory=lambda: new_trace_id())
    created_at: float = field(default_factory=time.time)
