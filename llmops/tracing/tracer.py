"""The tracer: takes finished spans off the request path and delivers them in the background.

On the request path a span costs a clock read, two random ids and an append to a bounded
in-memory queue (well under a millisecond). A single background thread wakes at most every
``batch_interval_s``, redacts the batch, writes it to the local trace store and hands it to the
exporter (Langfuse), whose own batch processor sends it over HTTP. Nothing on the request path
waits for the disk or the network, so a slow, refusing or hanging Langfuse never slows or breaks
the traced call; spans that cannot be delivered are counted and stay in the local store.

Batching is also what keeps the *median* added latency flat: the background work runs in short
bursts, so most calls never share the interpreter with it.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from llmops.credentials import scrub
from llmops.errors import ProviderError, StoreError
from llmops.tracing.exporter import Exporter, ExportStats
from llmops.tracing.model import ScoreRecord, SpanRecord, TraceAttributes, evolve, new_span_id, new_trace_id
from llmops.tracing.observe import ActiveSpan, current_attributes, current_span, span
from llmops.tracing.redaction import RedactHook, Redactor
from llmops.tracing.store import (
    SPAN_ROW,
    Delivery,
    ScoreRow,
    SpanRow,
    TraceStore,
    score_columns,
    score_json,
    span_columns,
    span_json,
)

if TYPE_CHECKING:
    from llmops.config import Settings
    from llmops.llm.client import CallRecord, LLMClient

log = logging.getLogger("llmops.tracing")

# Metadata keys of a call that are trace attributes rather than span metadata.
_TRACE_KEYS = ("user_id", "session_id", "tags", "environment", "release", "trace_name")
_PROMPT_KEYS = ("prompt", "prompt_name", "prompt_version", "prompt_hash")


@dataclass(frozen=True)
class TracingStats:
    """What happened to the spans a tracer was given.

    Attributes:
        recorded: Spans accepted on the request path.
        dropped: Spans dropped because the in-memory queue was full.
        stored: Spans written to the local trace store.
        store_errors: Batches the local store failed to write.
        redaction_failures: Values replaced because the user's redaction hook failed.
        export_skipped: Spans not exported because the exporter could not start.
        export: The exporter's delivery counters (None without a running exporter).
    """

    recorded: int = 0
    dropped: int = 0
    stored: int = 0
    store_errors: int = 0
    redaction_failures: int = 0
    export_skipped: int = 0
    export: ExportStats | None = None

    @property
    def undelivered(self) -> int:
        """Spans that did not reach the exporter's server (dropped and skipped ones included)."""
        return self.dropped + self.export_skipped + (self.export.undelivered if self.export else 0)


class Tracer:
    """Records spans and LLM calls; an :class:`~llmops.llm.client.LLMClient` observer.

    Pass it to a client (``LLMClient(observers=[tracer])``) to record every call as a
    generation, nested under the current ``@observe`` span. Most code uses :func:`get_tracer`.

    Args:
        store: The local trace store (None: spans are not kept locally).
        exporter: Where spans are delivered besides the store (Langfuse), or None.
        redactor: Secret redaction applied before anything is stored or exported.
        environment: Default trace environment (``settings.environment``).
        release: Default release (``settings.release``).
        enabled: False makes every method a cheap no-op (``tracing = "off"``).
        max_queue: Spans held in memory before new ones are dropped (and counted).
        batch_interval_s: How long the worker gathers spans before processing a batch.
        idle_exit_s: The worker thread exits after this long without spans (restarts on demand).
    """

    def __init__(self, *, store: TraceStore | None = None, exporter: Exporter | None = None,
                 redactor: Redactor | None = None, environment: str | None = None,
                 release: str | None = None, enabled: bool = True, max_queue: int = 10_000,
                 batch_interval_s: float = 0.25, idle_exit_s: float = 30.0) -> None:
        self.store = store
        self.exporter = exporter
        self.redactor = redactor or Redactor()
        self.environment = environment
        self.release = release
        self.enabled = enabled
        self.max_queue = max_queue
        self.batch_interval_s = batch_interval_s
        self.idle_exit_s = idle_exit_s
        # deque.append/popleft are atomic in CPython: the request path takes no lock.
        self._queue: collections.deque[SpanRecord | ScoreRecord] = collections.deque()
        self._lock = threading.Lock()
        # Counters are bumped from any application thread; `+=` on an attribute is not atomic.
        self._count_lock = threading.Lock()
        self._wake = threading.Event()
        self._hurry = threading.Event()
        self._done = threading.Condition()
        self._running = False
        self._closed = False
        self._exporter_started = False
        self._exporter_wanted = exporter is not None
        self._exporter_name = str(getattr(exporter, "name", type(exporter).__name__)) if exporter else ""
        self._export_skipped = 0
        self._start_error: str | None = None
        self._recorded = 0
        self._dropped = 0
        self._enqueued = 0
        self._processed = 0
        self._stored = 0
        self._store_errors = 0
        self._warned: set[str] = set()
        _LIVE.add(self)

    # ---- request path ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background worker now (it also starts the exporter, importing its SDK).

        Called when a tracer is set up, so that the exporter is ready before the first span ends:
        a short script that exits right after its only call still delivers it.
        """
        if self.enabled and not self._closed and not self._running:
            self._ensure_worker()

    def emit(self, item: SpanRecord | ScoreRecord) -> None:
        """Queue a finished span or a score. Never blocks, never raises."""
        if not self.enabled:
            return
        with self._count_lock:
            if self._closed:  # after shutdown: lost, but counted (stats().dropped says so)
                self._dropped += 1
                return
            if len(self._queue) >= self.max_queue:
                self._dropped += 1
                return
            self._queue.append(item)
            self._enqueued += 1
            if isinstance(item, SpanRecord):
                self._recorded += 1
        if not self._running:
            self._ensure_worker()
        if not self._wake.is_set():
            self._wake.set()

    def __call__(self, record: CallRecord) -> None:
        """Observer of :class:`~llmops.llm.client.LLMClient`: record one call as a generation."""
        if not self.enabled:
            return
        try:
            self.emit(self._generation(record))
        except Exception:  # tracing must never break the traced call
            with self._count_lock:
                self._dropped += 1

    def _generation(self, record: CallRecord) -> SpanRecord:
        meta = record.metadata
        parent = current_span()
        attrs = current_attributes()
        if any(k in meta for k in _TRACE_KEYS):
            tags = meta.get("tags") or ()
            attrs = attrs.merged(TraceAttributes(
                user_id=meta.get("user_id"), session_id=meta.get("session_id"),
                tags=(tags,) if isinstance(tags, str) else tuple(str(t) for t in tags),
                environment=meta.get("environment"), release=meta.get("release"),
                trace_name=meta.get("trace_name")))
        extra = {k: v for k, v in meta.items() if k not in _TRACE_KEYS and k not in _PROMPT_KEYS}
        ref = meta.get("prompt")
        purpose = meta.get("purpose")
        if purpose == "judge":
            name = "judge"
        elif purpose == "regenerate":
            name = f"regenerate {ref}" if ref else "regenerate"
        else:
            name = str(ref) if ref else "completion"
        completion, error = record.completion, record.error
        if isinstance(error, ProviderError):  # a failed call: how many attempts it paid for
            extra["attempts"] = error.attempts
        if completion is not None:
            extra["finish_reason"] = completion.finish_reason
            extra["attempts"] = completion.attempts
            extra["provider_latency_s"] = completion.latency_s
            if completion.cached:  # a replay costs nothing now; keep what it cost when it was recorded
                extra["cached_cost_usd"] = completion.recorded_cost_usd
            if completion.tool_calls:  # what the model asked for: shown as the generation's tool calls
                extra["tool_calls"] = [call.record() for call in completion.tool_calls]
            if completion.ttft_s is not None:
                extra["ttft_s"] = completion.ttft_s
                # Langfuse's completion_start_time: the first token's wall time (a replay keeps the original's).
                extra["completion_start_time"] = record.started_at + completion.ttft_s
        version = meta.get("prompt_version")
        return SpanRecord(
            trace_id=parent.trace_id if parent is not None else new_trace_id(),
            span_id=new_span_id(),
            parent_id=parent.span_id if parent is not None else None,
            name=name, kind="generation", start_time=record.started_at, end_time=record.ended_at,
            status="error" if error is not None else "ok",
            error=error.message if error is not None else None,
            error_type=type(error).__name__ if error is not None else None,
            status_code=getattr(error, "status_code", None),
            input=record.messages, output=completion.text if completion is not None else None,
            metadata=extra, model=record.model, resolved_model=record.resolved_model,
            params=record.params,
            prompt_tokens=completion.usage.prompt_tokens if completion is not None else None,
            completion_tokens=completion.usage.completion_tokens if completion is not None else None,
            # A cache hit spent nothing; the original cost stays in metadata.
            cost_usd=(0.0 if completion.cached else completion.cost_usd) if completion is not None else None,
            cached=bool(completion is not None and completion.cached),
            prompt_name=meta.get("prompt_name"),
            prompt_version=version if isinstance(version, int) else None,
            prompt_hash=meta.get("prompt_hash"), attributes=attrs)

    def score(self, trace_id: str, name: str, value: float | None, *, span_id: str | None = None,
              status: str | None = None, comment: str | None = None, source: str = "api",
              metadata: Mapping[str, Any] | None = None) -> None:
        """Attach a score to a trace (and optionally one of its spans). Never blocks."""
        if status is None:
            status = "unmeasured" if value is None else "pass"
        self.emit(ScoreRecord(trace_id=trace_id, name=name, value=value, span_id=span_id, status=status,
                              comment=comment, source=source, metadata=dict(metadata or {})))

    # ---- worker ------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        ensure_exit_hooks()
        with self._lock:
            if self._running or self._closed:
                return
            self._running = True
            threading.Thread(target=self._work, name="llmops-tracer", daemon=True).start()

    def _work(self) -> None:
        try:
            if not self._exporter_started and self.exporter is not None:
                self._exporter_started = True
                try:
                    self.exporter.start()
                except Exception as exc:  # e.g. langfuse missing, or the process already exiting
                    self._start_error = _start_cause(exc)
                    self._warn_once("exporter-start", f"tracing exporter failed to start: {self._start_error}; "
                                                      "spans are kept in the local trace store "
                                                      "(`llmops traces push` sends them later)")
                    self.exporter = None
            while True:
                if self._closed and not self._queue:
                    with self._lock:
                        self._running = False
                    return
                if not self._wake.wait(self.idle_exit_s):
                    with self._lock:
                        if self._queue:
                            continue
                        self._running = False
                    if self.store is not None:
                        self.store.close()
                    return
                self._wake.clear()
                # Gather a batch: short bursts of work keep the median call undisturbed.
                self._hurry.wait(self.batch_interval_s)
                self._drain()
        except Exception as exc:  # never let the worker die silently with spans queued
            self._warn_once("worker", f"tracing worker stopped: {exc!r}")
            with self._lock:
                self._running = False

    def _drain(self) -> None:
        while self._queue:
            batch: list[SpanRecord | ScoreRecord] = []
            while self._queue and len(batch) < 1000:
                batch.append(self._queue.popleft())
            self._process(batch)
            with self._done:
                self._processed += len(batch)
                self._done.notify_all()

    def _process(self, batch: list[SpanRecord | ScoreRecord]) -> None:
        spans: list[SpanRecord] = []
        scores: list[ScoreRecord] = []
        span_rows: list[tuple[Any, ...]] = []
        score_rows: list[tuple[Any, ...]] = []
        redactor = self.redactor
        # Each record is serialized once, in C, and the JSON is both what is stored and what the
        # redactor checks: a record whose JSON cannot hold a secret is stored and exported as is.
        # Only the others are walked value by value (and validated through the pydantic rows).
        for item in batch:
            try:
                if isinstance(item, SpanRecord):
                    span, row = _stored_form(self._with_defaults(item), span_json, redactor.span, _span_row_json,
                                             span_columns, redactor)
                    spans.append(span)
                    span_rows.append(row)
                else:
                    score, row = _stored_form(item, score_json, redactor.score, _score_row_json, score_columns,
                                              redactor)
                    scores.append(score)
                    score_rows.append(row)
            except Exception:  # an unredactable item is dropped, never exported as is
                with self._count_lock:
                    self._dropped += 1
        if self.store is not None:
            try:
                self.store.add_rows(span_rows, score_rows, outbox=self._exporter_wanted)
                self._stored += len(spans)
            except Exception as exc:
                self._store_errors += 1
                self._warn_once("store", f"could not write traces to {self.store.path}: {exc}")
        if self.exporter is None and self._exporter_wanted:
            self._export_skipped += len(spans)
        if self.exporter is not None:
            try:
                if spans:
                    self.exporter.export(spans)
                if scores:
                    self.exporter.score(scores)
            except Exception as exc:
                self._warn_once("export", f"tracing export failed: {exc!r}")
        self._settle()

    def _settle(self) -> None:
        """Take the spans the exporter's server acknowledged out of the store's outbox."""
        take = getattr(self.exporter, "take_delivered", None)
        if take is None or self.store is None:
            return
        try:
            ids = take()
            if ids:
                self.store.mark_delivered(ids)
        except Exception as exc:  # the spans stay in the outbox: at worst re-sent, never lost
            self._warn_once("outbox", f"could not update the trace store's outbox: {exc}")

    def _with_defaults(self, span: SpanRecord) -> SpanRecord:
        a = span.attributes
        if (a.environment or not self.environment) and (a.release or not self.release):
            return span
        return evolve(span, attributes=evolve(
            a, environment=a.environment or self.environment, release=a.release or self.release))

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("llmops: %s", scrub(message))  # may quote an exporter error with a URL

    # ---- control (never on the request path) -------------------------------------------------
    def flush(self, timeout_s: float = 10.0) -> bool:
        """Store and hand over everything queued so far, then flush the exporter.

        Returns:
            True if everything was processed (and the exporter flushed) within ``timeout_s``.
        """
        if not self.enabled:
            return True
        deadline = time.monotonic() + timeout_s
        target = self._enqueued
        if self._queue and not self._running:
            self._ensure_worker()
        self._hurry.set()
        self._wake.set()
        try:
            with self._done:
                while self._processed < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or (not self._running and not self._queue):
                        break
                    self._done.wait(min(remaining, 0.05))
        finally:
            self._hurry.clear()
        ok = self._processed >= target
        if self.exporter is not None and self._exporter_started:
            ok = self.exporter.flush(max(0.0, deadline - time.monotonic())) and ok
            self._settle()
        return ok

    def shutdown(self, timeout_s: float = 5.0) -> TracingStats:
        """Flush (bounded by ``timeout_s``), stop the worker and report undelivered spans.

        Returns:
            The final :class:`TracingStats`.
        """
        if self._closed:
            return self.stats()
        deadline = time.monotonic() + timeout_s
        self.flush(timeout_s)
        self._closed = True
        if self.exporter is not None and self._exporter_started:
            try:
                self.exporter.shutdown(max(0.0, deadline - time.monotonic()))
            except Exception as exc:
                self._warn_once("export-shutdown", f"tracing exporter shutdown failed: {exc!r}")
            self._settle()
        self._wake.set()
        stats = self.stats()
        cause = self.undelivered_cause(stats)
        if self.store is not None:
            if self._exporter_wanted:
                self._record_delivery(stats, cause)
            self.store.close()
        if stats.undelivered and self._exporter_wanted:
            where = (f"; they are kept in the local trace store {self.store.path} "
                     "(`llmops traces push` re-sends them)") if self.store else ""
            log.warning("llmops: %d span(s) could not be delivered to the trace exporter (%s)%s",
                        stats.undelivered, cause, where)
        _LIVE.discard(self)
        return stats

    def undelivered_cause(self, stats: TracingStats | None = None) -> str | None:
        """Why spans did not reach the exporter's server, in words (None when all of them did)."""
        stats = stats or self.stats()
        if not stats.undelivered:
            return None
        causes: list[str] = []
        if self._start_error is not None:
            causes.append(f"the exporter did not start: {self._start_error}")
        if stats.dropped:
            causes.append(f"{stats.dropped} dropped: the in-memory queue was full")
        export = stats.export
        if export is not None and export.undelivered:
            in_flight = export.sent - export.delivered - export.failed
            if export.cause:
                causes.append(export.cause)
            if in_flight > 0:
                causes.append(f"{in_flight} not acknowledged before the tracer stopped "
                              f"(exit bound {EXIT_BUDGET_S:g} s)")
        if stats.export_skipped and self._start_error is None:
            causes.append("the exporter was not running")
        return "; ".join(causes) or "unknown"

    def _record_delivery(self, stats: TracingStats, cause: str | None) -> None:
        """Keep what the exporter delivered in the local store (``llmops traces status`` shows it)."""
        assert self.store is not None
        delivered = stats.export.delivered if stats.export else 0
        spans = delivered + stats.undelivered  # as the exit warning counts them
        if not spans:
            return
        try:
            self.store.record_delivery(Delivery(ended=time.time(), exporter=self._exporter_name, spans=spans,
                                                delivered=delivered, cause=cause))
        except (StoreError, OSError) as exc:  # an unusable store: the exit warning still gives the count
            self._warn_once("delivery", f"could not record the exporter's delivery: {exc}")

    def stats(self) -> TracingStats:
        """Current counters."""
        return TracingStats(recorded=self._recorded, dropped=self._dropped, stored=self._stored,
                            store_errors=self._store_errors, redaction_failures=self.redactor.failures,
                            export_skipped=self._export_skipped,
                            export=self.exporter.stats() if self.exporter is not None else None)

    def attach(self, client: LLMClient) -> LLMClient:
        """Make ``client`` report its calls to this tracer (idempotent). Returns the client."""
        if self.enabled and not any(o is self for o in client.observers):
            client.observers.append(self)
            self.start()
        return client

    # ---- eval runs ---------------------------------------------------------------------------
    @contextmanager
    def eval_unit(self, *, run_id: str, suite: str, case_id: str, prompt: str, model: str, repeat: int = 0,
                  inputs: Mapping[str, Any] | None = None, manifest: Mapping[str, Any] | None = None,
                  experiment: Mapping[str, Any] | None = None) -> Iterator[EvalUnitTrace]:
        """One trace for one unit of an eval run; generations and judge calls inside nest under it.

        Args:
            run_id: The run.
            suite: The suite name.
            case_id: The case.
            prompt: Prompt reference of the unit.
            model: Model of the unit.
            repeat: Repeat index.
            inputs: The case's template inputs (the trace input).
            manifest: The run manifest (stored as the root span's metadata).
            experiment: The Langfuse experiment run and item of this unit
                (:meth:`llmops.tracing.experiments.ExperimentPlan.for_unit`), or None.
        """
        meta: dict[str, Any] = {"run_id": run_id, "suite": suite, "case_id": case_id, "prompt": prompt,
                                "model": model, "repeat": repeat}
        if manifest is not None:
            meta["manifest"] = dict(manifest)
        if experiment is not None:
            from llmops.tracing.experiments import EXPERIMENT_KEY

            meta[EXPERIMENT_KEY] = dict(experiment)
        with span(f"eval {suite}/{case_id}", input=dict(inputs or {}), metadata=meta, tracer=self,
                  new_trace=True, tags=[f"suite:{suite}", f"run:{run_id}"],
                  trace_name=f"eval {suite}/{case_id}",
                  trace_metadata={"run_id": run_id, "suite": suite, "case_id": case_id}) as active:
            yield EvalUnitTrace(self, active)


class EvalUnitTrace:
    """Handle of an eval unit's trace: record the unit's result and its evaluator scores."""

    def __init__(self, tracer: Tracer, active: ActiveSpan) -> None:
        self.tracer = tracer
        self.span = active

    @property
    def trace_id(self) -> str:
        """The unit's trace id."""
        return self.span.trace_id

    def set_result(self, result: Any) -> None:
        """Record a :class:`~llmops.runner.results.UnitResult`: output, status, cost and scores."""
        self.span.update(output=result.output, metadata={
            "status": result.status, "cost_usd": result.cost_usd, "judge_cost_usd": result.judge_cost_usd,
            "latency_s": result.latency_s, "cached": result.cached})
        if result.status == "error":
            self.span.fail(result.error or "error")
        run_id = self.span.metadata.get("run_id")
        for s in result.scores:
            self.tracer.score(self.span.trace_id, s.name, s.value, status=s.status, comment=s.reason or None,
                              source="eval-run", metadata={"evaluator": s.evaluator, "version": s.version,
                                                           "threshold": s.threshold, "run_id": run_id})


# ---- process-wide tracers --------------------------------------------------------------------
_LIVE: weakref.WeakSet[Tracer] = weakref.WeakSet()
_TRACERS: collections.OrderedDict[tuple[Any, ...], Tracer] = collections.OrderedDict()
_TRACERS_LOCK = threading.Lock()
_MAX_TRACERS = 4
_default_hook: RedactHook | None = None
_NULL = Tracer(enabled=False)
# The tracer of `get_tracer()` without settings (what `@observe` uses): resolved once, because
# loading settings reads pyproject.toml and that must not happen on every span.
_default_tracer: Tracer | None = None


def _key(settings: Settings) -> tuple[Any, ...]:
    lf = settings.langfuse
    return (str(settings.path(settings.trace_path)), settings.tracing, settings.environment, settings.release,
            lf.host if lf else None, lf.public_key if lf else None)


def create_tracer(settings: Settings, *, redact: RedactHook | None = None,
                  exporter: Exporter | None = None, **kwargs: Any) -> Tracer:
    """Build a tracer for ``settings`` (mode ``tracing``: auto, local, langfuse or off).

    ``auto`` exports to Langfuse when its keys are set and always keeps the local store;
    ``langfuse`` requires the keys; ``off`` records nothing.

    Args:
        settings: Configuration.
        redact: A user redaction hook (``str -> str``) run after the built-in patterns.
        exporter: Use this exporter instead of the one the settings imply.
        **kwargs: Passed to :class:`Tracer` (batch_interval_s, max_queue, ...).

    Raises:
        ConfigError: ``tracing = "langfuse"`` without Langfuse keys.
    """
    if settings.tracing == "off":
        return Tracer(enabled=False)
    if exporter is None and settings.tracing in ("auto", "langfuse"):
        if settings.langfuse is not None:
            from llmops.tracing.langfuse_exporter import LangfuseExporter

            exporter = LangfuseExporter(settings.langfuse, environment=settings.environment,
                                        release=settings.release, prompts_path=settings.prompts_path)
        elif settings.tracing == "langfuse":
            from llmops.errors import ConfigError

            raise ConfigError("tracing = 'langfuse' needs Langfuse credentials", key="tracing",
                              hint="set LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST "
                                   "(or LANGFUSE_BASE_URL), or use tracing = 'auto'")
    return Tracer(store=TraceStore(settings.path(settings.trace_path)), exporter=exporter,
                  redactor=Redactor(redact or _default_hook), environment=settings.environment,
                  release=settings.release, **kwargs)


def get_tracer(settings: Settings | None = None) -> Tracer:
    """The process-wide tracer for ``settings`` (default: the current project's settings).

    Tracers are shared per configuration (store path, mode, Langfuse host and key), so every
    client and ``@observe`` of one project feed the same background worker.
    """
    global _default_tracer
    if settings is None:
        cached = _default_tracer
        if cached is not None and not cached._closed:
            return cached
        from llmops.config import load_settings

        try:
            settings = load_settings()
        except Exception:  # a broken config must not break the user's traced function
            _default_tracer = _NULL
            return _NULL
        _default_tracer = get_tracer(settings)
        return _default_tracer
    if settings.tracing == "off":
        return _NULL
    key = _key(settings)
    with _TRACERS_LOCK:
        tracer = _TRACERS.get(key)
        if tracer is not None and not tracer._closed:
            _TRACERS.move_to_end(key)
            return tracer
        tracer = create_tracer(settings)
        tracer.start()
        _TRACERS[key] = tracer
        # Beyond _MAX_TRACERS configurations the oldest leaves the cache but is not shut down:
        # a client or @observe may still hold it. Its worker exits when idle, it resumes if a span
        # comes, and the exit hooks deliver and close it with every live tracer.
        while len(_TRACERS) > _MAX_TRACERS:
            _TRACERS.popitem(last=False)
    return tracer


_R = TypeVar("_R", SpanRecord, ScoreRecord)


def _stored_form(record: _R, to_json: Callable[[_R], str | None], redact: Callable[[_R], _R],
                 row_json: Callable[[_R], str], columns: Callable[[_R, str], tuple[Any, ...]],
                 redactor: Redactor) -> tuple[_R, tuple[Any, ...]]:
    """A record as it is stored and exported: redacted only if its JSON may hold a secret."""
    data = to_json(record)
    if data is None or not redactor.clean_json(data):
        record = redact(record)
        data = row_json(record)
    return record, columns(record, data)


def _span_row_json(span: SpanRecord) -> str:
    return SPAN_ROW.dump_json(SpanRow.from_record(span, json_safe=True)).decode()


def _score_row_json(score: ScoreRecord) -> str:
    return ScoreRow.from_record(score, json_safe=True).model_dump_json()


def set_tracer(tracer: Tracer, settings: Settings | None = None) -> None:
    """Use ``tracer`` as the process-wide tracer for ``settings`` (default: the current project)."""
    global _default_tracer
    if settings is None:
        from llmops.config import load_settings

        settings = load_settings()
        _default_tracer = tracer
    with _TRACERS_LOCK:
        _TRACERS[_key(settings)] = tracer


def set_redact_hook(hook: RedactHook | None) -> None:
    """Install a redaction hook (``str -> str``) for every tracer, current and future."""
    global _default_hook
    _default_hook = hook
    for tracer in list(_LIVE):
        tracer.redactor.hook = hook


def reset_tracing(timeout_s: float = 2.0) -> None:
    """Shut down every process-wide tracer (tests; applications rely on the exit hook)."""
    global _default_tracer
    _default_tracer = None
    with _TRACERS_LOCK:
        tracers = list(_TRACERS.values())
        _TRACERS.clear()
    for tracer in tracers:
        tracer.shutdown(timeout_s=timeout_s)


# ---- process exit ----------------------------------------------------------------------------
# What exit may cost, all hooks together: delivery's last chance, bounded (docs/tracing.md).
EXIT_BUDGET_S = 3.0
_exit_deadline: float | None = None
_hooks_lock = threading.Lock()
_hooks_registered = False


def _exit_remaining() -> float:
    global _exit_deadline
    if _exit_deadline is None:
        _exit_deadline = time.monotonic() + EXIT_BUDGET_S
    return max(0.0, _exit_deadline - time.monotonic())


def _deliver_all() -> None:
    """First exit hook (threading's, before thread pools refuse work): let exporters deliver.

    A short process (a cached call, a script that calls once and exits) ends before its worker
    has imported and started the Langfuse SDK; once the interpreter shuts its thread pools down
    (right after this hook), the SDK can no longer start. Waiting here, within the exit budget,
    lets the exporter start and deliver; the tracer itself is shut down by the ``atexit`` hook,
    after threads the application still runs have finished.
    """
    for tracer in list(_LIVE):
        if tracer._exporter_wanted and not tracer._closed:
            with suppress(Exception):
                tracer.flush(timeout_s=_exit_remaining())


def _shutdown_all(timeout_s: float | None = None) -> None:
    """Exit hook: store what is queued and give exporters a bounded last chance to deliver."""
    remaining = _exit_remaining() if timeout_s is None else timeout_s
    deadline = time.monotonic() + remaining
    for tracer in list(_LIVE):
        with suppress(Exception):
            tracer.shutdown(timeout_s=max(0.2, deadline - time.monotonic()))


def ensure_exit_hooks(*, after_sdk: bool = False) -> None:
    """Register the tracers' exit hooks; the one place that does (idempotent).

    Two hooks share :data:`EXIT_BUDGET_S`: :func:`_deliver_all` runs when the interpreter starts
    shutting threads down (before ``concurrent.futures`` stops its pools, which is why that
    module is imported first: threading's exit hooks run last-registered first), and
    :func:`_shutdown_all` runs at ``atexit``.

    Args:
        after_sdk: Called right after an SDK registered its own ``atexit`` hook: move ours after
            it, so ours runs first (``atexit`` is last-in, first-out).
    """
    global _hooks_registered
    with _hooks_lock:
        if after_sdk:
            atexit.unregister(_shutdown_all)
            with suppress(RuntimeError):  # already exiting: the running exit hook covers us
                atexit.register(_shutdown_all)
        if _hooks_registered:
            return
        _hooks_registered = True
    import concurrent.futures.thread  # noqa: F401  (its exit hook must be registered before ours)

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        with suppress(RuntimeError):  # already shutting down: the atexit hook still runs
            register(_deliver_all)
    atexit.register(_shutdown_all)


def _start_cause(exc: BaseException) -> str:
    """Why an exporter could not start, naming interpreter shutdown when that is what it was."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, RuntimeError) and ("shutdown" in text or "finaliz" in text):
        return f"the process was exiting before the exporter was ready ({text})"
    return text
