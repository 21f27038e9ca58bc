"""A local HTTP double of the Langfuse endpoints the SDK v5 uses, which decodes what arrives.

A Langfuse server cannot run on the test machines (it needs ClickHouse), so tests point the
real SDK at this receiver instead. It implements:

- ``POST /api/public/otel/v1/traces``: OTLP/HTTP protobuf (gzip or plain), decoded into
  :class:`ReceivedSpan` objects with their attributes, resource and instrumentation scope;
- ``POST /api/public/scores`` (batch) and ``GET /api/public/v3/scores``;
- prompts: ``GET/POST /api/public/v2/prompts``, ``GET /api/public/v2/prompts/{name}``,
  ``PATCH /api/public/v2/prompts/{name}/versions/{version}`` (labels move between versions);
- ``GET /api/public/v2/observations``: the received spans as Langfuse observations;
- datasets: ``POST /api/public/v2/datasets``, ``GET /api/public/v2/datasets/{name}``,
  ``POST /api/public/dataset-items`` (an upsert by id) and ``GET /api/public/dataset-items``
  (by ``datasetName``, paged, and ``version``: the items as they were at that time);
- experiments: ``GET /api/public/experiments`` and ``GET /api/public/experiment-items``, made up
  from the received spans that carry the SDK's experiment attributes (``langfuse.experiment.*``),
  the way Langfuse groups experiment traces; :meth:`LangfuseReceiver.experiments` and
  :meth:`LangfuseReceiver.experiment_items` give the same to tests, with their scores;
- ``GET /api/public/health``.

Basic auth is checked on every request. ``mode`` simulates an outage: ``"503"`` answers every
request with 503, ``"hang"`` accepts the connection and never answers, ``"401"`` refuses the
keys. For "connection refused", point the client at :func:`closed_port`.

Example:
    >>> with LangfuseReceiver() as lf:                                  # doctest: +SKIP
    ...     # LANGFUSE_HOST=lf.url LANGFUSE_PUBLIC_KEY=lf.public_key ...
    ...     lf.wait_for(lambda: len(lf.spans) >= 1)
    ...     print(lf.spans[0].name, lf.spans[0].attributes["langfuse.observation.type"])
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlparse

ReceiverMode = Literal["ok", "503", "hang", "401"]


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived over OTLP, decoded.

    Attributes:
        trace_id: 32-hex trace id.
        span_id: 16-hex span id.
        parent_span_id: 16-hex parent id, or None.
        name: Span name.
        start_ns: Start time (ns since the epoch).
        end_ns: End time (ns since the epoch).
        attributes: Span attributes, decoded to Python values.
        resource: Resource attributes.
        scope_name: Instrumentation scope name (``langfuse-sdk`` for SDK spans).
        scope_attributes: Instrumentation scope attributes (the SDK puts the public key there).
        status_code: OTel status code (0 unset, 1 ok, 2 error).
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    scope_attributes: dict[str, Any]
    status_code: int = 0

    def json_attr(self, key: str) -> Any:
        """An attribute the SDK JSON-encodes (input, output, usage, cost, metadata values)."""
        raw = self.attributes.get(key)
        if not isinstance(raw, str):
            return raw
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    @property
    def observation_type(self) -> str | None:
        """``generation``, ``span``, ..."""
        value = self.attributes.get("langfuse.observation.type")
        return str(value) if value is not None else None

    @property
    def metadata(self) -> dict[str, Any]:
        """Observation metadata (``langfuse.observation.metadata.*``), decoded."""
        prefix = "langfuse.observation.metadata."
        return {k[len(prefix):]: self.json_attr(k) for k in self.attributes if k.startswith(prefix)}


@dataclass
class ReceivedRequest:
    """One request as the receiver saw it (after decompression)."""

    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False, default=b"")


def closed_port() -> int:
    """A local port with nothing listening (connecting to it is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _any_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in kvs}


def decode_otlp(body: bytes) -> list[ReceivedSpan]:
    """Decode an OTLP/HTTP protobuf ``ExportTraceServiceRequest`` into spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    out: list[ReceivedSpan] = []
    for rs in request.resource_spans:
        resource = _attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append(ReceivedSpan(
                    trace_id=sp.trace_id.hex(), span_id=sp.span_id.hex(),
                    parent_span_id=sp.parent_span_id.hex() or None, name=sp.name,
                    start_ns=sp.start_time_unix_nano, end_ns=sp.end_time_unix_nano,
                    attributes=_attrs(sp.attributes), resource=resource, scope_name=ss.scope.name,
                    scope_attributes=_attrs(ss.scope.attributes), status_code=sp.status.code))
    return out


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def _norm_iso(text: str) -> str:
    """A query timestamp in the receiver's own ISO form (so the strings compare in time order)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _iso(int(parsed.timestamp() * 1e9))


class LangfuseReceiver:
    """The receiver. Use as a context manager, or call :meth:`start` and :meth:`stop`.

    Args:
        public_key: Accepted public key.
        secret_key: Accepted secret key.
        mode: ``ok``, ``503``, ``hang`` or ``401`` (changeable while running).
    """

    def __init__(self, public_key: str = "pk-lf-test", secret_key: str = "sk-lf-test",
                 mode: ReceiverMode = "ok") -> None:
        self.public_key = public_key
        self.secret_key = secret_key
        self.mode: ReceiverMode = mode
        self.spans: list[ReceivedSpan] = []
        self.scores: list[dict[str, Any]] = []
        self.prompts: dict[str, list[dict[str, Any]]] = {}
        self.datasets: dict[str, dict[str, Any]] = {}
        # item id -> every state it had, oldest first (``version`` reads the state at a time).
        self.dataset_items: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:PORT``) for ``LANGFUSE_HOST``."""
        if self._server is None:
            raise RuntimeError("receiver not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LangfuseReceiver:
        """Start serving on an ephemeral port."""
        receiver = self

        class Handler(_Handler):
            owner = receiver

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="langfuse-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (hanging requests are released)."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LangfuseReceiver:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The environment variables that point Langfuse clients here."""
        return {"LANGFUSE_PUBLIC_KEY": self.public_key, "LANGFUSE_SECRET_KEY": self.secret_key,
                "LANGFUSE_HOST": self.url}

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Poll ``predicate`` until it holds or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def raw_bodies(self) -> list[bytes]:
        """Every request body received (decompressed), for searching for leaked secrets."""
        with self._lock:
            return [r.body for r in self.requests]

    # ---- behaviour ---------------------------------------------------------------------------
    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.public_key and password == self.secret_key

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               body: bytes) -> tuple[int, str, bytes]:
        """Route one request: (status, content type, body)."""
        if method == "GET" and path == "/api/public/health":
            return 200, "application/json", b'{"status":"OK"}'
        if not self._authorized(headers.get("authorization")) or self.mode == "401":
            return 401, "application/json", b'{"message":"Invalid credentials"}'
        if path == "/api/public/otel/v1/traces" and method == "POST":
            spans = decode_otlp(body)
            with self._lock:
                self.spans.extend(spans)
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

            return 200, "application/x-protobuf", ExportTraceServiceResponse().SerializeToString()
        if path == "/api/public/scores" and method == "POST":
            data = json.loads(body or b"[]")
            items = data if isinstance(data, list) else [data]
            with self._lock:
                self.scores.extend(items)
            return 202, "application/json", b'{"message":"Accepted"}'
        if path == "/api/public/v3/scores" and method == "GET":
            return self._json(200, self._scores_page(query))
        if path == "/api/public/v2/observations" and method == "GET":
            return self._json(200, self._observations(query))
        if path.startswith("/api/public/v2/prompts"):
            return self._prompts(method, path[len("/api/public/v2/prompts"):], query, body)
        if path.startswith("/api/public/v2/datasets") or path.startswith("/api/public/dataset-items"):
            return self._datasets(method, path, query, body)
        if path == "/api/public/experiments" and method == "GET":
            ids = query.get("id", [None])[0]
            rows = [{k: v for k, v in e.items() if k != "scores"} for e in self.experiments()
                    if ids is None or e["id"] in ids.split(",")]
            return self._json(200, {"data": rows, "meta": {}})
        if path == "/api/public/experiment-items" and method == "GET":
            wanted = query.get("experimentId", [None])[0]
            rows = [{k: v for k, v in i.items() if k != "scores"} for i in self.experiment_items()
                    if wanted in (None, i["experimentId"])]
            return self._json(200, {"data": rows, "meta": {}})
        return self._json(404, {"message": f"no route {method} {path}"})

    @staticmethod
    def _json(status: int, data: Any) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(data).encode()

    # ---- prompts -----------------------------------------------------------------------------
    def _prompts(self, method: str, rest: str, query: dict[str, list[str]],
                 body: bytes) -> tuple[int, str, bytes]:
        with self._lock:
            if rest == "" and method == "POST":
                req = json.loads(body)
                versions = self.prompts.setdefault(req["name"], [])
                labels = [lb for lb in req.get("labels") or [] if lb != "latest"]
                for old in versions:
                    old["labels"] = [lb for lb in old["labels"] if lb not in labels and lb != "latest"]
                prompt = {"name": req["name"], "version": len(versions) + 1, "type": req.get("type", "text"),
                          "prompt": req["prompt"], "config": req.get("config") or {},
                          "labels": [*labels, "latest"], "tags": req.get("tags") or [],
                          "commitMessage": req.get("commitMessage")}
                versions.append(prompt)
                return self._json(200, prompt)
            if rest == "" and method == "GET":
                name = query.get("name", [None])[0]
                data = [{"name": n, "type": vs[-1]["type"], "versions": [v["version"] for v in vs],
                         "labels": sorted({lb for v in vs for lb in v["labels"]}), "tags": vs[-1]["tags"],
                         "lastUpdatedAt": _iso(time.time_ns()), "lastConfig": vs[-1]["config"]}
                        for n, vs in sorted(self.prompts.items()) if name in (None, n)]
                return self._json(200, {"data": data, "meta": {"page": 1, "limit": max(1, len(data)),
                                                               "totalItems": len(data), "totalPages": 1}})
            parts = [unquote(p) for p in rest.strip("/").split("/")]
            name = parts[0]
            versions = self.prompts.get(name, [])
            if len(parts) == 3 and parts[1] == "versions" and method == "PATCH":
                number = int(parts[2])
                target = next((v for v in versions if v["version"] == number), None)
                if target is None:
                    return self._json(404, {"message": f"prompt {name} v{number} not found"})
                new = [lb for lb in json.loads(body).get("newLabels", []) if lb != "latest"]
                for v in versions:
                    if v is not target:
                        v["labels"] = [lb for lb in v["labels"] if lb not in new]
                target["labels"] = sorted(set(target["labels"]) | set(new))
                return self._json(200, target)
            if len(parts) == 1 and method == "GET":
                version = query.get("version", [None])[0]
                label = query.get("label", [None])[0]
                if version is not None:
                    found = next((v for v in versions if v["version"] == int(version)), None)
                else:
                    wanted = label or "production"
                    found = next((v for v in versions if wanted in v["labels"]), None)
                if found is None:
                    return self._json(404, {"message": f"prompt '{name}' not found"})
                return self._json(200, found)
        return self._json(404, {"message": "not found"})

    # ---- datasets ----------------------------------------------------------------------------
    def items_of(self, dataset: str) -> list[dict[str, Any]]:
        """The current state of every item of a dataset, in creation order."""
        with self._lock:
            return [states[-1] for states in self.dataset_items.values() if states[-1]["datasetName"] == dataset]

    def _datasets(self, method: str, path: str, query: dict[str, list[str]],
                  body: bytes) -> tuple[int, str, bytes]:
        now = _iso(time.time_ns())
        with self._lock:
            if path == "/api/public/v2/datasets" and method == "POST":
                req = json.loads(body)
                current = self.datasets.get(req["name"])
                dataset: dict[str, Any] = {
                           "id": current["id"] if current else f"ds-{len(self.datasets) + 1}", "name": req["name"],
                           "description": req.get("description"), "metadata": req.get("metadata"),
                           "projectId": "test-project", "createdAt": current["createdAt"] if current else now,
                           "updatedAt": now}
                self.datasets[req["name"]] = dataset
                return self._json(200, dataset)
            if path.startswith("/api/public/v2/datasets/") and method == "GET":
                name = unquote(path[len("/api/public/v2/datasets/"):])
                found = self.datasets.get(name)
                if found is None:
                    return self._json(404, {"message": f"Dataset {name} not found"})
                return self._json(200, found)
            if path == "/api/public/dataset-items" and method == "POST":
                req = json.loads(body)
                owner = self.datasets.get(req.get("datasetName", ""))
                if owner is None:
                    return self._json(404, {"message": f"Dataset {req.get('datasetName')} not found"})
                dataset = owner
                item_id = req.get("id") or f"item-{sum(len(v) for v in self.dataset_items.values()) + 1}"
                states = self.dataset_items.setdefault(item_id, [])
                if states and states[-1]["datasetName"] != dataset["name"]:
                    return self._json(400, {"message": f"item id {item_id} belongs to another dataset"})
                item = {"id": item_id, "status": req.get("status") or "ACTIVE", "input": req.get("input"),
                        "expectedOutput": req.get("expectedOutput"), "metadata": req.get("metadata"),
                        "sourceTraceId": req.get("sourceTraceId"),
                        "sourceObservationId": req.get("sourceObservationId"), "datasetId": dataset["id"],
                        "datasetName": dataset["name"], "createdAt": states[0]["createdAt"] if states else now,
                        "updatedAt": now, "mediaReferences": []}
                states.append(item)
                return self._json(200, item)
            if path == "/api/public/dataset-items" and method == "GET":
                name = query.get("datasetName", [""])[0]
                version = query.get("version", [None])[0]
                rows = []
                for states in self.dataset_items.values():
                    visible = [st for st in states if version is None or st["updatedAt"] <= _norm_iso(version)]
                    if visible and visible[-1]["datasetName"] == name:
                        rows.append(visible[-1])
                page, limit = int(query.get("page", ["1"])[0]), int(query.get("limit", ["50"])[0])
                pages = max(1, -(-len(rows) // limit))
                return self._json(200, {"data": rows[(page - 1) * limit: page * limit],
                                        "meta": {"page": page, "limit": limit, "totalItems": len(rows),
                                                 "totalPages": pages}})
        return self._json(404, {"message": f"no route {method} {path}"})

    # ---- experiments -------------------------------------------------------------------------
    def experiment_items(self) -> list[dict[str, Any]]:
        """One item per experiment item root span received (the API's shape, plus its trace scores)."""
        with self._lock:
            spans = list(self.spans)
            scores = list(self.scores)
        out = []
        for s in spans:
            a = s.attributes
            root = a.get("langfuse.experiment.item.root_observation_id")
            if not a.get("langfuse.experiment.id") or root != s.span_id:
                continue
            out.append({
                "id": s.span_id, "traceId": s.trace_id, "startTime": _iso(s.start_ns), "endTime": _iso(s.end_ns),
                "level": a.get("langfuse.observation.level", "DEFAULT"),
                "environment": a.get("langfuse.environment", "default"),
                "experimentId": a["langfuse.experiment.id"], "experimentName": a.get("langfuse.experiment.name"),
                "experimentItemId": a.get("langfuse.experiment.item.id"),
                "experimentDatasetId": a.get("langfuse.experiment.dataset.id"),
                "experimentItemVersion": a.get("langfuse.experiment.item.version"),
                "input": s.json_attr("langfuse.observation.input"),
                "output": s.json_attr("langfuse.observation.output"),
                "expectedOutput": s.json_attr("langfuse.experiment.item.expected_output"),
                "experimentItemMetadata": s.json_attr("langfuse.experiment.item.metadata"),
                "experimentMetadata": s.json_attr("langfuse.experiment.metadata"),
                "experimentDescription": a.get("langfuse.experiment.description"),
                "scores": [sc for sc in scores if sc.get("traceId") == s.trace_id]})
        return out

    def experiments(self) -> list[dict[str, Any]]:
        """Experiment runs grouped from the received item spans, with their run-level scores."""
        with self._lock:
            scores = list(self.scores)
        groups: dict[str, list[dict[str, Any]]] = {}
        for item in self.experiment_items():
            groups.setdefault(item["experimentId"], []).append(item)
        return [{"id": eid, "name": items[0]["experimentName"], "description": items[0]["experimentDescription"],
                 "startTime": min(i["startTime"] for i in items), "endTime": max(i["endTime"] for i in items),
                 "itemCount": len(items), "datasetId": items[0]["experimentDatasetId"],
                 "metadata": meta if isinstance(meta := items[0]["experimentMetadata"], dict) else None,
                 "scores": [sc for sc in scores if sc.get("datasetRunId") == eid]}
                for eid, items in groups.items()]

    # ---- reads -------------------------------------------------------------------------------
    def observation(self, s: ReceivedSpan) -> dict[str, Any]:
        """A received span in the shape of the v2 observations API."""
        a = s.attributes
        usage = s.json_attr("langfuse.observation.usage_details")
        cost = s.json_attr("langfuse.observation.cost_details")
        return {
            "id": s.span_id, "traceId": s.trace_id, "startTime": _iso(s.start_ns), "endTime": _iso(s.end_ns),
            "projectId": "test-project", "parentObservationId": s.parent_span_id,
            "type": str(a.get("langfuse.observation.type", "span")).upper(),
            "isRootObservation": s.parent_span_id is None, "name": s.name,
            "level": a.get("langfuse.observation.level", "DEFAULT"),
            "statusMessage": a.get("langfuse.observation.status_message"),
            "environment": a.get("langfuse.environment"), "userId": a.get("user.id"),
            "sessionId": a.get("session.id"),
            # The API returns input and output as raw strings.
            "input": a.get("langfuse.observation.input"), "output": a.get("langfuse.observation.output"),
            "metadata": s.metadata, "model": a.get("langfuse.observation.model.name"),
            "modelParameters": s.json_attr("langfuse.observation.model.parameters"),
            "usageDetails": usage, "costDetails": cost,
            "totalCost": cost.get("total") if isinstance(cost, dict) else None,
            "promptName": a.get("langfuse.observation.prompt.name"),
            "promptVersion": a.get("langfuse.observation.prompt.version"),
            "latency": (s.end_ns - s.start_ns) / 1e9, "tags": a.get("langfuse.trace.tags") or [],
            "traceName": a.get("langfuse.trace.name"), "release": a.get("langfuse.release"),
        }

    def _observations(self, query: dict[str, list[str]]) -> dict[str, Any]:
        def q(name: str) -> str | None:
            return query.get(name, [None])[0]

        with self._lock:
            spans = list(self.spans)
        rows = [self.observation(s) for s in spans]
        if q("traceId"):
            rows = [r for r in rows if r["traceId"] == q("traceId")]
        if q("type"):
            rows = [r for r in rows if r["type"] == str(q("type")).upper()]
        if q("name"):
            rows = [r for r in rows if r["name"] == q("name")]
        if q("fromStartTime"):
            rows = [r for r in rows if r["startTime"] >= str(q("fromStartTime")).replace("+00:00", "Z")]
        if q("toStartTime"):
            rows = [r for r in rows if r["startTime"] < str(q("toStartTime")).replace("+00:00", "Z")]
        if q("environment"):
            rows = [r for r in rows if r["environment"] in query["environment"]]
        rows.sort(key=lambda r: r["startTime"], reverse=True)
        offset = int(base64.b64decode(q("cursor") or "MA==").decode() or 0)
        limit = int(q("limit") or 50)
        page = rows[offset:offset + limit]
        cursor = base64.b64encode(str(offset + limit).encode()).decode() if offset + limit < len(rows) else None
        return {"data": page, "meta": {"cursor": cursor} if cursor else {}}

    def _scores_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        with self._lock:
            rows = list(self.scores)
        trace_id = query.get("traceId", [None])[0]
        if trace_id:
            rows = [r for r in rows if r.get("traceId") == trace_id]
        return {"data": rows, "meta": {}}


class _Handler(BaseHTTPRequestHandler):
    owner: LangfuseReceiver
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # keep test output quiet

    def _serve(self) -> None:
        owner = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        parsed = urlparse(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if owner.mode == "hang":
            # Never answer; release the connection only when the receiver stops.
            with owner._lock:
                owner.requests.append(ReceivedRequest(self.command, parsed.path, 0, headers, body))
            owner._stop.wait()
            self.close_connection = True
            return
        if owner.mode == "503":
            status, ctype, out = 503, "application/json", b'{"message":"Service Unavailable"}'
        else:
            try:
                status, ctype, out = owner.handle(self.command, parsed.path, parse_qs(parsed.query), headers, body)
            except Exception as exc:  # a receiver bug shows up as a 500 the test can see
                status, ctype, out = 500, "application/json", json.dumps({"message": repr(exc)}).encode()
        with owner._lock:
            owner.requests.append(ReceivedRequest(self.command, parsed.path, status, headers, body))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = _serve
    do_POST = _serve
    do_PATCH = _serve
    do_DELETE = _serve
