"""Delivery of spans and scores to Langfuse through its Python SDK v5 (OpenTelemetry).

LiteLLM's ``langfuse`` callback does not work with SDK v5, so generations are recorded by us:
the tracer's worker thread replays each finished :class:`SpanRecord` as a Langfuse observation
(``LangfuseGeneration`` / ``LangfuseSpan`` wrappers around OpenTelemetry spans) with its real
start and end times, usage, cost and prompt link, then the SDK's batch span processor ships them
as OTLP/HTTP protobuf to ``/api/public/otel/v1/traces``. Scores go through ``create_score``
(the SDK's background queue to ``/api/public/scores``).

Design points, each forced by a constraint:

- Ids: the Langfuse trace and observation ids are our own ids (a tiny OpenTelemetry id generator
  hands them to the SDK), so a trace in the local store and in Langfuse is the same trace, and
  ``llmops traces score`` can write scores back by id.
- Isolation: the SDK gets its own ``TracerProvider``; we never install a global one, so the
  user's own OpenTelemetry setup is untouched.
- Never blocking: ``export()`` only creates spans in memory; the SDK's processor sends them from
  its own thread. ``flush()``/``shutdown()`` (CLI end, process exit) wait at most their timeout.
- Counting: a thin wrapper around the OTLP exporter counts acknowledged and failed spans.
- Host down: replaying a span costs more CPU than the traced call's own bookkeeping, so while
  the host refuses connections (a TCP probe, off the request path) or its exports fail, spans
  are not replayed: no OpenTelemetry span is built, they are counted undelivered (the exit
  warning gives the count and points at the local store, which keeps every one of them) until a
  probe after a growing pause (30 s to 5 min) finds the host back; later spans flow again.
  Spans of the outage are not re-sent (``llmops traces list`` shows them from the local store).
  The SDK client (and OpenTelemetry, and their threads) is built only once a probe has found the
  host: a run whose Langfuse is down from the start never loads it (measured: the SDK's mere
  presence cost the run 8-14% more CPU while no span was replayed).
- Trees: a trace's spans are replayed parent-first once its root has finished (children finish
  first), so Langfuse sees a well-formed tree; late children attach to their remote parent.

This package is the only place that imports ``langfuse``, and only when a tracer starts.
"""

from __future__ import annotations

import atexit
import base64
import collections
import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.tracing.experiments import EXPERIMENT_KEY
from llmops.tracing.exporter import ExportStats
from llmops.tracing.model import ScoreRecord, SpanRecord

if TYPE_CHECKING:
    from llmops.config import LangfuseSettings

OTLP_PATH = "/api/public/otel/v1/traces"
SYNC_FILE = "langfuse.json"
# Langfuse validates propagated trace attributes: strings of at most 200 characters.
_MAX_ATTR = 200
# How long an incomplete trace (root not finished yet) waits before its spans go anyway.
MAX_HOLD_S = 30.0


def run_bounded(fn: Callable[[], Any], timeout_s: float) -> bool:
    """Run ``fn`` in a daemon thread and wait at most ``timeout_s``; True if it finished.

    Used for the SDK's flush/shutdown, which can block for a long time when the server hangs.
    """
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        except Exception:
            pass
        finally:
            done.set()

    threading.Thread(target=run, name="llmops-langfuse-flush", daemon=True).start()
    return done.wait(max(0.0, timeout_s))


def host_reachable(host: str, timeout_s: float = 1.0) -> bool:
    """Whether a Langfuse host accepts a TCP connection (refused or unreachable: False)."""
    import socket
    from urllib.parse import urlsplit

    try:
        url = urlsplit(host)
        port = url.port or (443 if url.scheme == "https" else 80)
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def forget_client(public_key: str) -> None:
    """Drop the SDK's per-key singleton once it is shut down, so a later client starts fresh.

    The SDK keeps one resource manager per public key for the whole process and hands it to
    every new ``Langfuse(...)``, even after ``shutdown()``; a client made after our exporter
    stopped would otherwise silently drop its scores.
    """
    try:
        from langfuse._client.resource_manager import LangfuseResourceManager
    except ImportError:  # pragma: no cover - private module moved
        return
    with LangfuseResourceManager._lock:
        manager = LangfuseResourceManager._instances.get(public_key)
        if manager is not None and getattr(manager, "_shutdown", False):
            del LangfuseResourceManager._instances[public_key]


def read_version_map(prompts_path: Path | None) -> dict[str, dict[str, int]]:
    """``prompts/langfuse.json``: our version -> Langfuse version, per prompt (written by push)."""
    if prompts_path is None:
        return {}
    path = prompts_path / SYNC_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        versions = data.get("versions", {})
        return {str(n): {str(k): int(v) for k, v in m.items()} for n, m in versions.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _trim(value: str) -> str:
    return value if len(value) <= _MAX_ATTR else value[:_MAX_ATTR]


def _wire(value: Any) -> Any:
    """A generation's messages in their wire form (``to_dict()``), not every dataclass field."""
    if isinstance(value, tuple | list) and value and all(callable(getattr(v, "to_dict", None)) for v in value):
        return [v.to_dict() for v in value]
    return value


def _map_value(value: Any) -> Any:
    """Model parameters must be scalars or string lists for Langfuse: encode the rest as JSON."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return json.dumps(value, default=str)


class LangfuseExporter:
    """Sends redacted spans and scores to Langfuse. Runs on the tracer's worker thread.

    Args:
        credentials: Public key, secret key and host.
        environment: Langfuse environment of the spans.
        release: Release of the application.
        prompts_path: The prompts folder (for the version map written by ``prompts push``).
        flush_interval_s: How often the SDK's batch processor sends spans.
        export_timeout_s: Per-request timeout of OTLP exports and API calls.
    """

    name = "langfuse"

    def __init__(self, credentials: LangfuseSettings, *, environment: str | None = None,
                 release: str | None = None, prompts_path: Path | None = None,
                 flush_interval_s: float = 1.0, export_timeout_s: float = 5.0) -> None:
        self.credentials = credentials
        self.environment = environment
        self.release = release
        self.prompts_path = prompts_path
        self.flush_interval_s = flush_interval_s
        self.export_timeout_s = export_timeout_s
        self.client: Any = None
        self._provider: Any = None
        self._tracer: Any = None
        self._ids: Any = None
        self._counter: _Counts = _Counts()
        self._pending: dict[str, list[SpanRecord]] = {}
        self._pending_since: dict[str, float] = {}
        self._replayed: collections.OrderedDict[str, None] = collections.OrderedDict()
        # trace id -> (root span id, experiment attributes) of eval units recorded as experiment items
        self._experiments: collections.OrderedDict[str, tuple[str, dict[str, Any]]] = collections.OrderedDict()
        self._versions: dict[str, dict[str, int]] = {}
        self._scores_sent = 0
        self._breaker = _Breaker(self._reachable)
        self._owns_client = False
        self._build_error: Exception | None = None
        # export() runs on the tracer's worker, flush() on whoever flushes: both touch the buffers.
        self._lock = threading.RLock()

    # ---- setup -------------------------------------------------------------------------------
    def start(self) -> None:
        """Check that the SDK is installed and probe the host (on the worker thread, off the request path).

        The client itself is built when a probe first finds the host: while Langfuse is down,
        the SDK, OpenTelemetry and their background threads are never loaded, so a run whose
        host is down costs what the breaker costs and nothing more.

        Raises:
            ImportError: when the ``langfuse`` package is not installed.
        """
        import importlib.util

        if importlib.util.find_spec("langfuse") is None:
            raise ImportError("the langfuse package is not installed (pip install 'llmops[langfuse]')")
        # Probe now: a reachable host gets its client while the process is young (the SDK
        # registers exit hooks, which a process already exiting refuses).
        if self._breaker.allow():
            self._build()

    def _ensure_client(self) -> None:
        """Build the SDK client once, the first time the host is reachable (worker thread)."""
        if self.client is None:
            if self._build_error is not None:  # failed once: not again for every batch
                raise self._build_error
            try:
                self._build()
            except Exception as exc:
                self._build_error = exc
                raise

    def _build(self) -> None:
        """Import the SDK and build the client with its own TracerProvider."""
        from langfuse import Langfuse
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        try:
            from langfuse import __version__ as sdk_version
        except ImportError:  # pragma: no cover - every v5 release has it
            sdk_version = "5"
        creds = self.credentials
        host = creds.host.rstrip("/")
        secret = creds.secret_key.get_secret_value()
        auth = base64.b64encode(f"{creds.public_key}:{secret}".encode()).decode("ascii")
        # The same endpoint and headers the SDK would use; we build the exporter only to count
        # what is delivered (the SDK documents this `span_exporter` hook).
        otlp = OTLPSpanExporter(
            endpoint=host + OTLP_PATH, timeout=self.export_timeout_s, compression=Compression.Gzip,
            headers={"Authorization": f"Basic {auth}", "x-langfuse-sdk-name": "python",
                     "x-langfuse-sdk-version": sdk_version, "x-langfuse-public-key": creds.public_key,
                     "x-langfuse-ingestion-version": "4"})
        counting = _counting_exporter(otlp, self._counter, self._breaker)
        self._ids = _requested_ids()
        resource = Resource.create({k: v for k, v in {"service.name": "llmops",
                                                     "langfuse.environment": self.environment,
                                                     "langfuse.release": self.release}.items() if v})
        # Not shut down by OpenTelemetry's own exit hook (it waits up to 30 s for a hanging
        # export): our exit hook shuts it down within a bounded time.
        self._provider = TracerProvider(resource=resource, id_generator=self._ids, shutdown_on_exit=False)
        self.client = Langfuse(
            public_key=creds.public_key, secret_key=secret, base_url=host,
            timeout=max(1, int(self.export_timeout_s)), environment=self.environment, release=self.release,
            flush_interval=self.flush_interval_s, flush_at=256, tracer_provider=self._provider,
            span_exporter=counting)
        resources = getattr(self.client, "_resources", None)
        self._owns_client = resources is not None and getattr(resources, "tracer_provider", None) is self._provider
        if self._owns_client and resources is not None:
            # The SDK's own exit hook flushes without a time limit (seconds per retry when the
            # server hangs); our exit hook shuts this client down within a bounded time instead.
            atexit.unregister(resources.shutdown)
        if resources is not None and not self._owns_client:
            # Another Langfuse client with this public key already exists in the process (the
            # SDK keeps one per key) and ignored our provider: deliver through our own processor.
            self._provider.add_span_processor(BatchSpanProcessor(
                counting, schedule_delay_millis=self.flush_interval_s * 1000))
        try:
            from langfuse._client.constants import LANGFUSE_TRACER_NAME
        except ImportError:  # pragma: no cover - private module moved
            LANGFUSE_TRACER_NAME = "langfuse-sdk"
        # The SDK's span filter exports spans of its own instrumentation scope for this key.
        self._tracer = self._provider.get_tracer(LANGFUSE_TRACER_NAME, sdk_version,
                                                 attributes={"public_key": creds.public_key})
        self._versions = read_version_map(self.prompts_path)
        # The SDK, OpenTelemetry and their dependencies are ~30,000 long-lived objects imported
        # after LiteLLM froze the heap (when the process opted in, as the CLI does): freeze them
        # too, or every full collection during the run walks them again, traced calls or not.
        from llmops._runtime import after_heavy_import

        after_heavy_import()
        # Registered after the SDK's own exit hook, so it runs first (atexit is LIFO): our queue
        # is drained into the SDK before the SDK flushes and stops.
        from llmops.tracing.tracer import ensure_exit_hooks

        ensure_exit_hooks(after_sdk=True)

    # ---- spans -------------------------------------------------------------------------------
    def export(self, spans: Sequence[SpanRecord]) -> None:
        """Replay finished spans as Langfuse observations (in memory; the SDK sends them)."""
        with self._lock:
            self._export(spans)

    def _export(self, spans: Sequence[SpanRecord]) -> None:
        now = time.monotonic()
        ready: list[str] = []
        for s in spans:
            if s.trace_id in self._replayed:
                self._replay([s])  # a late child of an already sent trace
                continue
            self._pending.setdefault(s.trace_id, []).append(s)
            self._pending_since.setdefault(s.trace_id, now)
            if s.parent_id is None:
                ready.append(s.trace_id)
        ready += [t for t, since in self._pending_since.items() if now - since > MAX_HOLD_S and t not in ready]
        for trace_id in ready:
            self._send_trace(trace_id)

    def _send_trace(self, trace_id: str) -> None:
        spans = self._pending.pop(trace_id, [])
        self._pending_since.pop(trace_id, None)
        self._replayed[trace_id] = None
        while len(self._replayed) > 10_000:
            self._replayed.popitem(last=False)
        self._replay(spans)

    def _replay(self, spans: list[SpanRecord]) -> None:
        if not spans:
            return
        if not self._breaker.allow():  # the host is down: the local store keeps them
            self._counter.add_sent(len(spans))
            self._counter.add_failed(len(spans), f"Langfuse at {self.credentials.host} refused the connection")
            return
        try:
            self._ensure_client()
        except Exception as exc:
            self._counter.add_sent(len(spans))
            self._counter.add_failed(len(spans), f"the Langfuse SDK could not start: {exc}")
            raise
        ids = {s.span_id for s in spans}
        for s in spans:
            exp = s.metadata.get(EXPERIMENT_KEY) if s.parent_id is None else None
            if isinstance(exp, dict):
                self._experiments[s.trace_id] = (s.span_id, exp)
                while len(self._experiments) > 10_000:
                    self._experiments.popitem(last=False)
        children: dict[str | None, list[SpanRecord]] = {}
        for s in sorted(spans, key=lambda x: x.start_time):
            parent = s.parent_id if s.parent_id in ids else None
            children.setdefault(parent, []).append(s)

        def visit(s: SpanRecord) -> None:
            observation = self._start(s)
            for child in children.get(s.span_id, []):
                visit(child)
            observation.end(end_time=int(s.end_time * 1e9))
            self._counter.add_sent(1)

        for root in children.get(None, []):
            try:
                visit(root)
            except Exception:  # one malformed span must not lose the rest of the batch
                self._counter.add_failed(1)

    def _start(self, s: SpanRecord) -> Any:
        from langfuse import LangfuseGeneration, LangfuseOtelSpanAttributes, LangfuseSpan, LangfuseTool
        from opentelemetry import context as otel_context
        from opentelemetry import trace as otel_trace

        if s.parent_id is None:
            ctx = otel_context.Context()
        else:
            parent = otel_trace.SpanContext(trace_id=int(s.trace_id, 16), span_id=int(s.parent_id, 16),
                                            is_remote=True, trace_flags=otel_trace.TraceFlags(0x01))
            ctx = otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(parent), otel_context.Context())
        a = s.attributes
        attrs: dict[str, Any] = {}
        if a.user_id:
            attrs[LangfuseOtelSpanAttributes.TRACE_USER_ID] = _trim(a.user_id)
        if a.session_id:
            attrs[LangfuseOtelSpanAttributes.TRACE_SESSION_ID] = _trim(a.session_id)
        if a.tags:
            attrs[LangfuseOtelSpanAttributes.TRACE_TAGS] = [_trim(t) for t in a.tags]
        trace_name = a.trace_name or (s.name if s.parent_id is None else None)
        if trace_name:
            attrs[LangfuseOtelSpanAttributes.TRACE_NAME] = _trim(trace_name)
        for key, value in a.metadata.items():
            encoded = json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)
            if len(encoded) <= _MAX_ATTR:
                attrs[f"{LangfuseOtelSpanAttributes.TRACE_METADATA}.{key}"] = encoded
        self._ids.request(int(s.trace_id, 16), int(s.span_id, 16))
        try:
            otel_span = self._tracer.start_span(s.name, context=ctx, start_time=int(s.start_time * 1e9),
                                                attributes=attrs)
        finally:
            self._ids.clear()
        level = "ERROR" if s.status == "error" else None
        common: dict[str, Any] = {
            "otel_span": otel_span, "langfuse_client": self.client, "input": _wire(s.input), "output": s.output,
            "environment": a.environment, "release": a.release, "level": level, "status_message": s.error,
        }
        experiment = self._experiments.get(s.trace_id)
        if s.kind == "tool":  # a tool's run: Langfuse's tool observation type (SDK v5, ingestion v4)
            tool = LangfuseTool(metadata=dict(s.metadata) or None, **common)
            if experiment is not None:
                _set_experiment(otel_span, s.span_id, *experiment)
            return tool
        if s.kind != "generation":
            observation = LangfuseSpan(metadata={k: v for k, v in s.metadata.items() if k != EXPERIMENT_KEY} or None,
                                       **common)
            if experiment is not None:
                _set_experiment(otel_span, s.span_id, *experiment)
            return observation
        metadata = dict(s.metadata)
        metadata.update({k: v for k, v in {
            "prompt_hash": s.prompt_hash, "requested_model": s.model, "cached": s.cached,
            "error_type": s.error_type, "status_code": s.status_code}.items() if v is not None})
        usage = None
        if s.prompt_tokens is not None or s.completion_tokens is not None:
            pt, ct = s.prompt_tokens or 0, s.completion_tokens or 0
            usage = {"input": pt, "output": ct, "total": pt + ct}
        started = metadata.pop("completion_start_time", None)
        first_token = (datetime.fromtimestamp(started, UTC)
                       if isinstance(started, int | float) else None)
        generation = LangfuseGeneration(
            metadata=metadata, model=s.resolved_model or s.model, completion_start_time=first_token,
            model_parameters={k: _map_value(v) for k, v in s.params.items()} or None,
            usage_details=usage, cost_details={"total": s.cost_usd} if s.cost_usd is not None else None,
            **common)
        if s.prompt_name:
            version = self._versions.get(s.prompt_name, {}).get(str(s.prompt_version), s.prompt_version)
            otel_span.set_attribute(LangfuseOtelSpanAttributes.OBSERVATION_PROMPT_NAME, s.prompt_name)
            if version is not None:
                otel_span.set_attribute(LangfuseOtelSpanAttributes.OBSERVATION_PROMPT_VERSION, int(version))
        if experiment is not None:
            _set_experiment(otel_span, s.span_id, *experiment)
        return generation

    def _reachable(self) -> bool:
        """Whether the host accepts a TCP connection (refused or unreachable: False)."""
        return host_reachable(self.credentials.host, min(1.0, self.export_timeout_s))

    # ---- scores ------------------------------------------------------------------------------
    def score(self, scores: Sequence[ScoreRecord]) -> None:
        """Queue scores in the SDK (it posts them to ``/api/public/scores`` in the background)."""
        if not scores or not self._breaker.allow():  # the host is down: the local store keeps them
            return
        self._ensure_client()
        for sc in scores:
            if sc.value is None:
                # Langfuse has no "unmeasured" numeric value; the local store keeps the outcome.
                continue
            self.client.create_score(
                name=sc.name, value=float(sc.value), trace_id=sc.trace_id, observation_id=sc.span_id,
                score_id=sc.score_id, data_type="NUMERIC", comment=sc.comment,
                metadata={"status": sc.status, "source": sc.source, **dict(sc.metadata)},
                timestamp=datetime.fromtimestamp(sc.created_at, tz=UTC))
            self._scores_sent += 1

    # ---- control -----------------------------------------------------------------------------
    def flush(self, timeout_s: float) -> bool:
        """Send every pending trace now and wait (bounded) for the SDK to deliver."""
        with self._lock:
            for trace_id in list(self._pending):
                self._send_trace(trace_id)
        if self.client is None:
            return True
        return run_bounded(self.client.flush, timeout_s)

    def shutdown(self, timeout_s: float) -> None:
        """Flush, then stop the SDK's threads (bounded: a hanging server cannot hold the exit)."""
        deadline = time.monotonic() + timeout_s
        self.flush(timeout_s)
        if self.client is None:
            return
        client, provider, owned = self.client, self._provider, self._owns_client
        public_key = self.credentials.public_key

        def stop() -> None:
            if owned:  # a client the application made itself keeps running
                client.shutdown()
                forget_client(public_key)
            provider.shutdown()

        run_bounded(stop, max(0.0, deadline - time.monotonic()))

    def stats(self) -> ExportStats:
        """Delivery counters."""
        return ExportStats(sent=self._counter.sent, delivered=self._counter.delivered,
                           failed=self._counter.failed, scores_sent=self._scores_sent, cause=self._counter.cause)

    def take_delivered(self) -> list[str]:
        """Ids of the spans the server acknowledged since the last call (the tracer's outbox)."""
        return self._counter.take_acked()


def _set_experiment(otel_span: Any, span_id: str, root_id: str, exp: dict[str, Any]) -> None:
    """Mark a span of an eval unit's trace as part of its Langfuse experiment run and item.

    The attributes and their placement are the SDK's own ``run_experiment``: the experiment and
    item identity on every span of the item's trace, the item's expected output, version and
    description and the experiment environment on its root.
    """
    from langfuse import LangfuseOtelSpanAttributes as A

    try:
        from langfuse._client.constants import LANGFUSE_SDK_EXPERIMENT_ENVIRONMENT
    except ImportError:  # pragma: no cover - private module moved
        LANGFUSE_SDK_EXPERIMENT_ENVIRONMENT = "sdk-experiment"
    attrs: dict[str, Any] = {
        A.EXPERIMENT_ID: exp.get("id"), A.EXPERIMENT_NAME: exp.get("name"), A.EXPERIMENT_METADATA: exp.get("metadata"),
        A.EXPERIMENT_DATASET_ID: exp.get("dataset_id"), A.EXPERIMENT_ITEM_ID: exp.get("item_id"),
        A.EXPERIMENT_ITEM_METADATA: exp.get("item_metadata"), A.EXPERIMENT_ITEM_ROOT_OBSERVATION_ID: root_id}
    if span_id == root_id:
        attrs.update({A.EXPERIMENT_DESCRIPTION: exp.get("description"),
                      A.EXPERIMENT_ITEM_EXPECTED_OUTPUT: exp.get("expected_output"),
                      A.EXPERIMENT_ITEM_VERSION: exp.get("item_version"),
                      A.ENVIRONMENT: LANGFUSE_SDK_EXPERIMENT_ENVIRONMENT})
    for key, value in attrs.items():
        if isinstance(value, str) and value:
            otel_span.set_attribute(key, value)


class _Counts:
    """Thread-safe counters shared with the OTLP worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self.cause: str | None = None
        self._acked: list[str] = []

    def add_sent(self, n: int) -> None:
        with self._lock:
            self.sent += n

    def add_delivered(self, n: int, span_ids: Sequence[str] = ()) -> None:
        with self._lock:
            self.delivered += n
            self._acked.extend(span_ids)

    def add_failed(self, n: int, cause: str | None = None) -> None:
        with self._lock:
            self.failed += n
            if cause is not None:
                self.cause = cause

    def take_acked(self) -> list[str]:
        with self._lock:
            acked, self._acked = self._acked, []
            return acked


class _Breaker:
    """Stops replaying spans while the host is down; a probe after a growing pause lets them flow again."""

    def __init__(self, probe: Callable[[], bool], pause_s: float = 30.0, max_pause_s: float = 300.0) -> None:
        self._probe = probe
        self._first_pause = self._pause = pause_s
        self._max_pause = max_pause_s
        self._closed_until: float | None = None  # None: not probed yet
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Whether spans may be replayed now (probes the host when a pause is over; worker thread)."""
        with self._lock:
            now = time.monotonic()
            if self._closed_until is not None and now < self._closed_until:
                return False
            if self._closed_until is None or self._closed_until > 0:
                if not self._probe():
                    self._open(now)
                    return False
                self._closed_until = 0.0
            return True

    def _open(self, now: float) -> None:
        self._closed_until = now + self._pause
        self._pause = min(self._pause * 2, self._max_pause)

    def failure(self) -> None:
        """An export failed (refused, error status, timeout)."""
        with self._lock:
            self._open(time.monotonic())

    def success(self) -> None:
        """An export was acknowledged."""
        with self._lock:
            self._closed_until = 0.0
            self._pause = self._first_pause


def _counting_exporter(inner: Any, counts: _Counts, breaker: _Breaker | None = None) -> Any:
    """Wrap an OTel span exporter to count delivered and failed spans (and tell the breaker)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class CountingExporter(SpanExporter):
        def export(self, spans: Sequence[Any]) -> Any:
            try:
                result = inner.export(spans)
            except Exception:
                result = SpanExportResult.FAILURE
            if result == SpanExportResult.SUCCESS:
                counts.add_delivered(len(spans), [format(s.context.span_id, "016x") for s in spans])
                if breaker is not None:
                    breaker.success()
            else:
                counts.add_failed(len(spans), "Langfuse did not accept the export (error status, timeout "
                                              "or refused connection)")
                if breaker is not None:
                    breaker.failure()
            return result

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(inner.force_flush(timeout_millis))

    return CountingExporter()


def _requested_ids() -> Any:
    """An OTel id generator that returns the ids the replaying thread asked for, else random ones."""
    import random

    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class RequestedIds(IdGenerator):
        def __init__(self) -> None:
            self._local = threading.local()
            self._rng = random.Random()

        def request(self, trace_id: int, span_id: int) -> None:
            self._local.ids = (trace_id, span_id)

        def clear(self) -> None:
            self._local.ids = None

        def generate_span_id(self) -> int:
            ids = getattr(self._local, "ids", None)
            return ids[1] if ids else self._rng.getrandbits(64) or 1

        def generate_trace_id(self) -> int:
            ids = getattr(self._local, "ids", None)
            return ids[0] if ids else self._rng.getrandbits(128) or 1

    return RequestedIds()
