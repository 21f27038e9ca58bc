"""Spans for the user's own functions, and the context that nests everything inside them.

The current span and the trace attributes live in :mod:`contextvars`, so nesting follows the
code: an asyncio task inherits the context of the code that created it, a generation made by
``llmops.acomplete`` inside ``@observe``'d functions becomes their child, and concurrent tasks
never see each other's spans.

Everything here is on the request path: it reads the clock, draws ids and snapshots values, and
hands the finished span to the tracer's queue. Redaction, storage and export happen later, in
the tracer's background thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from llmops.tracing.model import (
    EMPTY_ATTRIBUTES,
    SpanKind,
    SpanRecord,
    TraceAttributes,
    new_span_id,
    new_trace_id,
)

if TYPE_CHECKING:
    from llmops.tracing.tracer import Tracer

F = TypeVar("F", bound=Callable[..., Any])

_CURRENT: ContextVar[ActiveSpan | None] = ContextVar("llmops_current_span", default=None)
_ATTRIBUTES: ContextVar[TraceAttributes] = ContextVar("llmops_trace_attributes", default=EMPTY_ATTRIBUTES)
# Snapshots keep traces small and make them safe to hand to another thread.
MAX_TEXT = 20_000
MAX_ITEMS = 200
_SCALARS = (bool, int, float)


class ActiveSpan:
    """A span that has started and not yet ended (what ``with span(...)`` yields).

    Attributes:
        trace_id: The trace it belongs to.
        span_id: Its id.
        parent_id: The enclosing span's id (None for a root).
        name: Its name.
        tracer: Where it goes when it ends (the enclosing span's, else the process-wide tracer).
    """

    __slots__ = ("_ended", "attributes", "error", "error_type", "input", "kind", "metadata", "name",
                 "output", "parent", "parent_id", "span_id", "start_time", "status", "trace_id", "tracer")

    trace_id: str
    span_id: str
    parent_id: str | None
    parent: ActiveSpan | None
    tracer: Tracer

    def __init__(self, name: str, *, kind: SpanKind = "span", parent: ActiveSpan | None,
                 attributes: TraceAttributes, tracer: Tracer | None, input: Any = None,
                 metadata: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.kind: SpanKind = kind
        self.trace_id = parent.trace_id if parent is not None else new_trace_id()
        self.span_id = new_span_id()
        self.parent_id = parent.span_id if parent is not None else None
        self.parent = parent
        if tracer is None and parent is not None:
            tracer = parent.tracer
        if tracer is None:
            # Resolved at the start, not the end: the tracer's worker (and exporter) warms up while
            # the traced code runs, so even a short-lived process delivers its spans.
            from llmops.tracing.tracer import get_tracer

            tracer = get_tracer()
        self.tracer: Tracer = tracer
        self.attributes = attributes
        self.input = input
        self.output: Any = None
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.status = "ok"
        self.error: str | None = None
        self.error_type: str | None = None
        self.start_time = time.time()
        self._ended = False

    def update(self, *, output: Any = None, input: Any = None, metadata: Mapping[str, Any] | None = None,
               **attributes: Any) -> None:
        """Set the output, replace the input, add metadata, or set trace attributes.

        Keyword arguments other than ``output``/``input``/``metadata`` are trace attributes
        (``user_id``, ``session_id``, ``tags``, ``environment``, ``release``, ``trace_name``).
        """
        if output is not None:
            self.output = snapshot(output)
        if input is not None:
            self.input = snapshot(input)
        if metadata:
            self.metadata.update(snapshot(dict(metadata)))
        if attributes:
            self.apply_attributes(_attributes_from(**attributes))

    def apply_attributes(self, attrs: TraceAttributes) -> None:
        """Merge trace attributes into this span and every enclosing span that is still open.

        Trace attributes describe the whole trace, so setting the user or session deep inside a
        pipeline must also reach the root (Langfuse reads a trace's user from its root).
        """
        node: ActiveSpan | None = self
        while node is not None:
            if not node._ended:
                node.attributes = node.attributes.merged(attrs)
            node = node.parent

    def fail(self, error: BaseException | str) -> None:
        """Mark the span as failed (done automatically when its block raises)."""
        self.status = "error"
        if isinstance(error, BaseException):
            self.error = str(getattr(error, "message", None) or error) or type(error).__name__
            self.error_type = type(error).__name__
        else:
            self.error = error

    def end(self) -> None:
        """Finish the span and hand it to the tracer (idempotent)."""
        if self._ended:
            return
        self._ended = True
        self.tracer.emit(SpanRecord(
            trace_id=self.trace_id, span_id=self.span_id, parent_id=self.parent_id, name=self.name,
            kind=self.kind, start_time=self.start_time, end_time=time.time(),
            status="error" if self.status == "error" else "ok", error=self.error,
            error_type=self.error_type, input=self.input, output=self.output, metadata=self.metadata,
            attributes=self.attributes))


def current_span() -> ActiveSpan | None:
    """The innermost active span of the current context, if any."""
    return _CURRENT.get()


def current_attributes() -> TraceAttributes:
    """Trace attributes in effect in the current context."""
    return _ATTRIBUTES.get()


def _attributes_from(*, user_id: str | None = None, session_id: str | None = None,
                     tags: Sequence[str] | None = None, environment: str | None = None,
                     release: str | None = None, trace_name: str | None = None,
                     metadata: Mapping[str, Any] | None = None) -> TraceAttributes:
    return TraceAttributes(user_id=user_id, session_id=session_id, tags=tuple(tags or ()),
                           environment=environment, release=release, trace_name=trace_name,
                           metadata=snapshot(dict(metadata or {})))


@contextmanager
def trace_attributes(*, user_id: str | None = None, session_id: str | None = None,
                     tags: Sequence[str] | None = None, environment: str | None = None,
                     release: str | None = None, trace_name: str | None = None,
                     metadata: Mapping[str, Any] | None = None) -> Iterator[TraceAttributes]:
    """Set trace-level attributes for every span and LLM call made inside the block.

    Example::

        with llmops.trace_attributes(user_id="u-42", session_id="chat-7", tags=["beta"]):
            answer = llmops.complete("rag_answer@production", {"question": q})

    Args:
        user_id: The end user.
        session_id: The conversation or session.
        tags: Tags added to the trace.
        environment: Overrides ``settings.environment`` (e.g. ``production``).
        release: Overrides ``settings.release``.
        trace_name: The trace's name.
        metadata: Small key/value pairs for every span of the trace.
    """
    added = _attributes_from(user_id=user_id, session_id=session_id, tags=tags, environment=environment,
                             release=release, trace_name=trace_name, metadata=metadata)
    merged = _ATTRIBUTES.get().merged(added)
    active = _CURRENT.get()
    if active is not None:
        active.apply_attributes(added)
    token = _ATTRIBUTES.set(merged)
    try:
        yield merged
    finally:
        _reset(_ATTRIBUTES, token, None)


def _reset(var: ContextVar[Any], token: Any, fallback: Any) -> None:
    try:
        var.reset(token)
    except ValueError:  # ended in another context (e.g. a generator resumed elsewhere)
        var.set(fallback)


@contextmanager
def span(name: str, *, input: Any = None, metadata: Mapping[str, Any] | None = None,
         tracer: Tracer | None = None, kind: SpanKind = "span", new_trace: bool = False,
         trace_metadata: Mapping[str, Any] | None = None, **attributes: Any) -> Iterator[ActiveSpan]:
    """Trace a block of code as a span (child of the current span, if any).

    Example::

        with llmops.tracing.span("retrieve", input={"query": q}) as s:
            docs = search(q)
            s.update(output=[d.id for d in docs])

    Args:
        name: The span's name.
        input: What went in (snapshotted now).
        metadata: Span metadata.
        tracer: Where the span goes (default: the enclosing span's tracer, else the process-wide one).
        kind: ``span`` (default), ``generation`` or ``tool`` (a tool's run: arguments in, result out).
        new_trace: Start a new trace even inside another span (eval units are their own traces).
        trace_metadata: Small key/value pairs for every span of the trace.
        **attributes: Trace attributes (user_id, session_id, tags, environment, release, trace_name).
    """
    parent = None if new_trace else _CURRENT.get()
    attrs = _ATTRIBUTES.get()
    attr_token = None
    if attributes or trace_metadata:
        added = _attributes_from(metadata=trace_metadata, **attributes)
        attrs = attrs.merged(added)
        attr_token = _ATTRIBUTES.set(attrs)
        if parent is not None:
            parent.apply_attributes(added)
    active = ActiveSpan(name, kind=kind, parent=parent, attributes=attrs, tracer=tracer,
                        input=snapshot(input) if input is not None else None, metadata=metadata)
    token = _CURRENT.set(active)
    try:
        yield active
    except BaseException as exc:
        active.fail(exc)
        raise
    finally:
        _reset(_CURRENT, token, parent)
        if attr_token is not None:
            _reset(_ATTRIBUTES, attr_token, attrs)
        with suppress(Exception):  # tracing never breaks the traced code
            active.end()


@overload
def observe(func: F, /) -> F: ...


@overload
def observe(*, name: str | None = None, capture_input: bool = True, capture_output: bool = True,
            tracer: Tracer | None = None, kind: Literal["span", "tool"] = "span",
            **attributes: Any) -> Callable[[F], F]: ...


def observe(func: Callable[..., Any] | None = None, /, *, name: str | None = None, capture_input: bool = True,
            capture_output: bool = True, tracer: Tracer | None = None, kind: Literal["span", "tool"] = "span",
            **attributes: Any) -> Any:
    """Decorator: trace each call of a sync or async function (or generator) as a span.

    A generator's span lasts until it is exhausted; its output is the joined text of the chunks
    it yielded; a consumer that stops early ends it as cancelled (``StreamCancelledError``).

    LLM calls and other observed functions called inside become its children, also across
    asyncio tasks created inside it. Exceptions are recorded and re-raised unchanged.

    Example::

        @llmops.observe
        async def answer(question: str) -> str:
            docs = await retrieve(question)          # an @observe'd function: a child span
            return (await llmops.acomplete("rag_answer@production",
                                           {"question": question, "contexts": docs})).text

        @llmops.observe(name="pipeline", user_id="u-1", tags=["batch"])
        def run(): ...

        @llmops.observe(kind="tool")                 # a Langfuse tool observation: arguments in, result out
        def lookup_order(order_id: str) -> dict: ...

    Args:
        func: The function (when used without parentheses).
        name: Span name (default: the function's qualified name).
        capture_input: Record the call's arguments as the span input.
        capture_output: Record the return value as the span output.
        tracer: Where the spans go (default: the process-wide tracer).
        kind: ``span`` (default), or ``tool`` for a function the application runs when the model
            calls a tool (exported as a Langfuse tool observation).
        **attributes: Trace attributes (user_id, session_id, tags, environment, release, trace_name).
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        span_name = str(name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "span"))
        try:
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None

        def inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if not capture_input:
                return None
            try:
                if signature is None:
                    return snapshot({"args": list(args), "kwargs": kwargs})
                bound = signature.bind_partial(*args, **kwargs)
                return snapshot({k: v for k, v in bound.arguments.items() if k not in ("self", "cls")})
            except Exception:  # an odd signature must not break the call
                return None

        if inspect.isasyncgenfunction(fn):
            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                # The span lasts the whole iteration (not just the call that creates the generator).
                scope = span(span_name, input=inputs(args, kwargs), tracer=tracer, kind=kind, **attributes)
                active = scope.__enter__()
                items: list[Any] = []
                try:
                    async for item in fn(*args, **kwargs):
                        items.append(item)
                        yield item
                except (GeneratorExit, asyncio.CancelledError) as exc:
                    _cancelled(scope, active, items, capture_output)
                    raise exc from None
                except BaseException as exc:
                    scope.__exit__(type(exc), exc, exc.__traceback__)
                    raise
                if capture_output:
                    active.output = _items_output(items)
                scope.__exit__(None, None, None)

            return agen_wrapper

        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                scope = span(span_name, input=inputs(args, kwargs), tracer=tracer, kind=kind, **attributes)
                active = scope.__enter__()
                items: list[Any] = []
                try:
                    for item in fn(*args, **kwargs):
                        items.append(item)
                        yield item
                except GeneratorExit:
                    _cancelled(scope, active, items, capture_output)
                    raise
                except BaseException as exc:
                    scope.__exit__(type(exc), exc, exc.__traceback__)
                    raise
                if capture_output:
                    active.output = _items_output(items)
                scope.__exit__(None, None, None)

            return gen_wrapper

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with span(span_name, input=inputs(args, kwargs), tracer=tracer, kind=kind, **attributes) as active:
                    result = await fn(*args, **kwargs)
                    if capture_output:
                        active.output = snapshot(result)
                    return result

            return async_wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            with span(span_name, input=inputs(args, kwargs), tracer=tracer, kind=kind, **attributes) as active:
                result = fn(*args, **kwargs)
                if capture_output:
                    active.output = snapshot(result)
                return result

        return sync_wrapper

    if func is not None:
        return decorate(func)
    return decorate


def _items_output(items: list[Any]) -> Any:
    """A generator span's output: the joined text of string items (stream chunks), else the items."""
    if all(isinstance(i, str) for i in items):
        return "".join(items)
    texts = [getattr(i, "text", None) for i in items]
    if items and all(isinstance(t, str) for t in texts):
        return "".join(t for t in texts if t)
    return snapshot(items)


def _cancelled(scope: Any, active: ActiveSpan, items: list[Any], capture_output: bool) -> None:
    """End a generator's span that its consumer stopped early: recorded as cancelled, with what it got."""
    from llmops.errors import StreamCancelledError

    if capture_output:
        active.output = _items_output(items)
    active.metadata["cancelled_after_items"] = len(items)
    active.fail(StreamCancelledError(f"cancelled by the consumer after {len(items)} item(s)", chunks=len(items)))
    scope.__exit__(None, None, None)


def snapshot(value: Any, _depth: int = 0) -> Any:
    """A bounded, JSON-safe copy of ``value`` taken now (the caller may mutate the original later).

    Long strings and big collections are truncated; unknown objects become ``to_dict()``,
    ``model_dump()`` or ``repr`` (cut at a few hundred characters).
    """
    # Exact types first, without isinstance: every eval unit snapshots its inputs and metadata
    # (mostly short strings in small dicts) on the request path.
    kind = type(value)
    if kind is str:
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…[truncated]"
    if value is None or kind in _SCALARS:
        return value
    if kind is dict and len(value) <= MAX_ITEMS and _depth <= 8:
        return {k if type(k) is str else str(k): snapshot(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, _SCALARS):  # subclasses (IntEnum, ...)
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…[truncated]"
    if _depth > 8:
        return "[nested too deep]"
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {str(k): snapshot(v, _depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["…"] = f"{len(items) - MAX_ITEMS} more"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        out_list = [snapshot(v, _depth + 1) for v in seq[:MAX_ITEMS]]
        if len(seq) > MAX_ITEMS:
            out_list.append(f"… {len(seq) - MAX_ITEMS} more")
        return out_list
    for method in ("to_dict", "model_dump"):
        fn = getattr(value, method, None)
        if callable(fn):
            try:
                return snapshot(fn(), _depth + 1)
            except Exception:
                break
    text = repr(value)
    return text if len(text) <= 500 else text[:500] + "…"
