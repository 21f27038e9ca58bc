"""A local HTTP double of the OpenAI and Anthropic chat APIs, with scriptable faults.

It answers ``POST /v1/chat/completions`` like OpenAI and ``POST /v1/messages`` like Anthropic
(response bodies with usage, the providers' own error bodies, ``Authorization: Bearer`` and
``x-api-key`` checks), so that the real LiteLLM/OpenAI-SDK path can be tested offline, and
benchmarks can measure our client without a provider's noise.

The server runs an aiohttp application on its own event loop in a daemon thread, bound to an
ephemeral port on 127.0.0.1, so sync and async code can use it alike:

Example:
    >>> from llmops.testing import Fault, ProviderServer
    >>> with ProviderServer(api_key="sk-test", latency_s=0.01) as server:   # doctest: +SKIP
    ...     server.script(Fault.rate_limited(retry_after=0.2), Fault.error(503))
    ...     # point a client at server.openai_base / server.anthropic_base with api_key="sk-test"
    ...     print(server.stats().requests, server.stats().max_in_flight)

Tool calls and streaming: a responder may return a :class:`Reply` with :class:`ToolUse` items,
sent in each provider's own wire form (OpenAI ``tool_calls`` with JSON-string arguments,
Anthropic ``tool_use`` blocks); a request with ``"stream": true`` is answered with server-sent
events as each provider streams them (OpenAI ``chat.completion.chunk`` lines ending in
``[DONE]``, Anthropic ``message_start`` ... ``message_stop`` events). :meth:`Fault.reset` on a
stream sends half the events and then resets the connection (a stream that breaks mid-way).
Tool results in the request reach the responder as OpenAI-style ``tool`` messages, and assistant
tool calls as ``tool_calls``, whichever wire format the client used.

Behaviour per request, in order: the next scripted :class:`Fault` if any (else a 429 when the
``rate_limit_rps`` token bucket is empty, else random ``error_rate`` / ``rate_limit_rate``
injection, else success); authentication is checked before any fault, so a wrong key always gets
the provider's real 401 body.

For benchmarks, run it in its own process so it does not compete with the client for the GIL::

    python -m llmops.testing --port 8765 --latency 0.05 [--rate-limit-rps 200]

It prints ``READY <port>`` when it listens; ``GET /_double/stats`` returns its counters as JSON
and ``POST /_double/reset`` resets them (these control paths are not counted as requests).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import socket
import struct
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

Provider = Literal["openai", "anthropic"]
FaultKind = Literal["ok", "status", "hang", "reset", "truncated_json", "invalid_json", "empty_choices"]
# What happened to a request (a fault kind, or a refusal before any fault applied).
Outcome = Literal["ok", "status", "hang", "reset", "truncated_json", "invalid_json", "empty_choices",
                  "auth", "bad_request", "not_found"]


@dataclass(frozen=True)
class ToolUse:
    """A tool call the double answers with.

    Attributes:
        name: The function name.
        arguments: A mapping (sent as JSON), or a raw string sent as is (e.g. malformed JSON on
            purpose; Anthropic's non-streamed ``input`` must be an object, so a string that does
            not parse is sent as ``{}`` there and only streams carry it verbatim).
        id: The call id (default: generated, ``call_...`` / ``toolu_...``).
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def raw(self) -> str:
        """The arguments as the JSON string OpenAI sends."""
        return self.arguments if isinstance(self.arguments, str) else json.dumps(dict(self.arguments))


@dataclass(frozen=True)
class Reply:
    """A responder's answer: text and/or tool calls."""

    text: str = ""
    tool_calls: tuple[ToolUse, ...] = ()


Responder = Callable[[Provider, list[dict[str, Any]]], "str | Reply"]

_REDACTED_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"})
_OPENAI_PATH = "/v1/chat/completions"
_ANTHROPIC_PATH = "/v1/messages"


@dataclass(frozen=True)
class Fault:
    """What the server does with one request, instead of (or before) answering normally.

    Build them with the class methods (``Fault.error(503)``, ``Fault.hang()``, ...) and queue
    them with :meth:`ProviderServer.script`; each request consumes one.

    Attributes:
        kind: ``ok`` (answer normally), ``status`` (an HTTP error with the provider's error
            body), ``hang`` (never answer; ends when the client disconnects or the server stops),
            ``reset`` (send the headers and half the body, then reset the TCP connection),
            ``truncated_json`` (a 200 whose JSON body is cut in half), ``invalid_json`` (a 200
            whose body is not JSON), ``empty_choices`` (a 200 with ``choices: []``, or
            ``content: []`` for Anthropic).
        status: The HTTP status for ``status`` faults.
        message: The error message for ``status`` faults (a provider-like default otherwise).
        retry_after: Sent as the ``retry-after`` header: seconds, or a raw string (HTTP-date).
        retry_after_ms: Sent as the ``retry-after-ms`` header (OpenAI sends it on 429s).
        delay_s: Overrides the server's latency for this request.
    """

    kind: FaultKind
    status: int = 200
    message: str | None = None
    retry_after: float | str | None = None
    retry_after_ms: float | None = None
    delay_s: float | None = None

    @classmethod
    def ok(cls, delay_s: float | None = None) -> Fault:
        """Answer normally (optionally with a different latency)."""
        return cls("ok", delay_s=delay_s)

    @classmethod
    def error(cls, status: int, message: str | None = None, *, retry_after: float | str | None = None,
              retry_after_ms: float | None = None, delay_s: float | None = None) -> Fault:
        """Answer with HTTP ``status`` and the provider's error body."""
        return cls("status", status=status, message=message, retry_after=retry_after,
                   retry_after_ms=retry_after_ms, delay_s=delay_s)

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = None, *,
                     retry_after_ms: float | None = None) -> Fault:
        """Answer 429, with a ``retry-after`` header only when ``retry_after`` is given."""
        return cls.error(429, retry_after=retry_after, retry_after_ms=retry_after_ms)

    @classmethod
    def hang(cls) -> Fault:
        """Never answer (until the client gives up or the server stops)."""
        return cls("hang")

    @classmethod
    def reset(cls) -> Fault:
        """Send a 200's headers and half its body, then reset the connection (TCP RST)."""
        return cls("reset")

    @classmethod
    def truncated_json(cls) -> Fault:
        """A complete HTTP 200 whose JSON body is cut in half."""
        return cls("truncated_json")

    @classmethod
    def invalid_json(cls) -> Fault:
        """A complete HTTP 200 whose body is not JSON at all."""
        return cls("invalid_json")

    @classmethod
    def empty_choices(cls) -> Fault:
        """A 200 with ``choices: []`` (OpenAI) or ``content: []`` (Anthropic)."""
        return cls("empty_choices")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it (recorded on arrival, before any latency).

    Attributes:
        index: 0-based arrival order.
        provider: Which API the path belongs to (None for unknown paths).
        method: HTTP method.
        path: Request path.
        headers: Request headers, lower-cased, with credentials replaced by ``<redacted>``.
        body: The parsed JSON body (None when absent or not JSON).
        model: The ``model`` field of the body, if any.
        auth_ok: Whether the credentials matched.
        outcome: What the server did (a fault kind, or ``auth`` / ``bad_request`` / ``not_found``).
        status: The HTTP status sent (None for ``hang`` and ``reset``).
        prompt_tokens: Input tokens reported in the answer's usage (0 when no usage was sent).
        completion_tokens: Output tokens reported in the answer's usage.
        received_at: ``time.monotonic()`` at arrival.
    """

    index: int
    provider: Provider | None
    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    model: str | None
    auth_ok: bool
    outcome: Outcome
    status: int | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    received_at: float = 0.0


@dataclass(frozen=True)
class ServerStats:
    """Counters since the server started (or since :meth:`ProviderServer.reset`).

    Attributes:
        requests: Requests received.
        in_flight: Requests being handled right now.
        max_in_flight: Most requests handled at the same time.
        by_status: Requests per HTTP status sent.
        by_outcome: Requests per outcome (``ok``, ``status``, ``hang``, ``auth``, ...).
        elapsed_s: Seconds since start or reset.
        first_ok_at: ``time.monotonic()`` of the first successful (200) answer, if any.
        last_ok_at: ``time.monotonic()`` of the last successful answer, if any.
        throttled: Requests refused by the ``rate_limit_rps`` token bucket.
    """

    requests: int
    in_flight: int
    max_in_flight: int
    by_status: dict[int, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    first_ok_at: float | None = None
    last_ok_at: float | None = None
    throttled: int = 0

    @property
    def ok_rate(self) -> float:
        """Successful answers per second between the first and the last one."""
        ok = self.by_status.get(200, 0)
        if ok < 2 or self.first_ok_at is None or self.last_ok_at is None or self.last_ok_at <= self.first_ok_at:
            return 0.0
        return (ok - 1) / (self.last_ok_at - self.first_ok_at)

    @property
    def throughput(self) -> float:
        """Requests per second over ``elapsed_s``."""
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0


def count_tokens(text: str) -> int:
    """The double's tokenizer: whitespace-separated words, at least 1 for non-empty text."""
    words = len(text.split())
    return max(1, words) if text else 0


def _text_of(content: Any) -> str:
    """Text of an OpenAI/Anthropic message content (a string or a list of parts/blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [str(p.get("text", "")) for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if p)
    return str(content)


def _echo(provider: Provider, messages: list[dict[str, Any]]) -> str:
    users = [m["content"] for m in messages if m["role"] == "user"]
    return f"echo: {users[-1]}" if users else "echo:"


def _input_object(call: ToolUse) -> dict[str, Any]:
    """Anthropic's ``input``: an object (a raw string that is not a JSON object becomes ``{}``)."""
    if not isinstance(call.arguments, str):
        return dict(call.arguments)
    try:
        value = json.loads(call.arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _normalized_messages(provider: Provider, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's messages as OpenAI-style dicts (text content; ``tool_calls``; ``tool`` results)."""
    out: list[dict[str, Any]] = []
    if provider == "anthropic" and body.get("system"):
        out.append({"role": "system", "content": _text_of(body["system"])})
    for m in body["messages"]:
        if not isinstance(m, dict):
            continue
        role = str(m.get("role", "user"))
        content = m.get("content")
        if provider == "openai":
            item: dict[str, Any] = {"role": role, "content": _text_of(content)}
            if m.get("tool_calls"):
                item["tool_calls"] = m["tool_calls"]
            if m.get("tool_call_id") is not None:
                item["tool_call_id"] = m["tool_call_id"]
            out.append(item)
            continue
        blocks = content if isinstance(content, list) else []
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        uses = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
        for block in results:
            out.append({"role": "tool", "tool_call_id": block.get("tool_use_id"),
                        "content": _text_of(block.get("content"))})
        text = _text_of([b for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
                        if isinstance(content, list) else content)
        if text or not (results or uses):
            out.append({"role": role, "content": text})
        if uses:
            calls = [{"id": b.get("id"), "type": "function",
                      "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})}}
                     for b in uses]
            if out and out[-1]["role"] == "assistant" and "tool_calls" not in out[-1]:
                out[-1]["tool_calls"] = calls
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": calls})
    return out


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def _pieces(text: str) -> list[str]:
    """The text cut into word chunks (each keeps its following space), as providers stream it."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]] if text else []


def _openai_events(model: str, text: str, calls: tuple[ToolUse, ...], truncated: bool, prompt_tokens: int,
                   completion_tokens: int, include_usage: bool) -> list[bytes]:
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:29]}", int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                     "system_fingerprint": "fp_provider_double",
                     "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in _pieces(text)]
    for index, call in enumerate(calls):
        raw = call.raw()
        half = len(raw) // 2
        events.append(chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                             "function": {"name": call.name, "arguments": ""}}]}))
        events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                   for part in (raw[:half], raw[half:]) if part]
    events.append(chunk({}, "length" if truncated else ("tool_calls" if calls else "stop")))
    if include_usage:
        events.append(_sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": [], "usage": {"prompt_tokens": prompt_tokens,
                                                     "completion_tokens": completion_tokens,
                                                     "total_tokens": prompt_tokens + completion_tokens}}))
    events.append(_sse("[DONE]"))
    return events


def _anthropic_events(model: str, text: str, calls: tuple[ToolUse, ...], truncated: bool, prompt_tokens: int,
                      completion_tokens: int) -> list[bytes]:
    events = [_sse({"type": "message_start", "message": {
        "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "content": [],
        "model": model, "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": prompt_tokens, "output_tokens": 1}}}, "message_start")]
    index = 0
    if text or not calls:
        events.append(_sse({"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}, "content_block_start"))
        events.append(_sse({"type": "ping"}, "ping"))
        events += [_sse({"type": "content_block_delta", "index": 0,
                         "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
                   for piece in _pieces(text)]
        events.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        index = 1
    for offset, call in enumerate(calls):
        at = index + offset
        raw = call.raw()
        half = len(raw) // 2
        events.append(_sse({"type": "content_block_start", "index": at, "content_block": {
            "type": "tool_use", "id": call.id, "name": call.name, "input": {}}}, "content_block_start"))
        events += [_sse({"type": "content_block_delta", "index": at,
                         "delta": {"type": "input_json_delta", "partial_json": part}}, "content_block_delta")
                   for part in (raw[:half], raw[half:]) if part]
        events.append(_sse({"type": "content_block_stop", "index": at}, "content_block_stop"))
    stop = "max_tokens" if truncated else ("tool_use" if calls else "end_turn")
    events.append(_sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": completion_tokens}}, "message_delta"))
    events.append(_sse({"type": "message_stop"}, "message_stop"))
    return events


_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    # status: (type, code, default message) as the OpenAI API sends them
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to sample from this model."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    408: ("timeout", None, "Request timed out."),
    409: ("conflict", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for requests. Please try again in 1s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
    504: ("server_error", None, "Gateway timeout."),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    408: ("timeout_error", "Request timed out."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    502: ("api_error", "Bad gateway"),
    503: ("api_error", "Service unavailable"),
    504: ("timeout_error", "Gateway timeout"),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(provider: Provider, status: int, message: str | None = None) -> dict[str, Any]:
    """The JSON error body ``provider`` sends with HTTP ``status``."""
    if provider == "anthropic":
        etype, default = _ANTHROPIC_ERRORS.get(status, ("api_error", f"HTTP {status}"))
        return {"type": "error", "error": {"type": etype, "message": message or default},
                "request_id": f"req_{uuid.uuid4().hex[:24]}"}
    otype, code, odefault = _OPENAI_ERRORS.get(status, ("server_error", None, f"HTTP {status}"))
    return {"error": {"message": message or odefault, "type": otype, "param": None, "code": code}}


class ProviderServer:
    """A threaded local double of the OpenAI and Anthropic HTTP APIs.

    Attributes may be changed while it runs (they are read per request).

    Args:
        api_key: The key clients must send (``Authorization: Bearer`` for OpenAI, ``x-api-key``
            for Anthropic); None accepts any request, even without credentials.
        latency_s: Time before each answer.
        jitter_s: Extra uniform random latency in ``[0, jitter_s]``.
        error_rate: Probability that an unscripted request fails with ``error_status``.
        error_status: The status of random failures.
        rate_limit_rate: Probability that an unscripted request gets a 429.
        rate_limit_retry_after: The ``retry-after`` of random 429s (None: no header).
        rate_limit_rps: The allowed request rate (a token bucket of ``rate_limit_burst`` tokens
            refilled at this rate per second, checked on arrival); a request that finds it empty
            gets a 429 with ``retry-after-ms`` / ``retry-after`` saying when the next token comes.
            None: no limit.
        rate_limit_burst: The bucket's size (default: 0.1 s worth of ``rate_limit_rps``, at
            least 1 token); the bucket starts full.
        record: Keep every :class:`RecordedRequest` (turn off for long benchmarks; counters stay).
        responder: Makes the reply text from (provider, messages as ``{"role", "content"}``
            dicts, system prompt included); echoes the last user message by default.
        seed: Seed of the latency jitter and the random fault injection.
        host: The address to bind (keep the loopback).
        port: The port; 0 picks a free one.
        backlog: The listen backlog (raise it for benchmarks with many connections).
        chunk_delay_s: Time between two events of a streamed answer (the first comes after
            ``latency_s``).
        echo_credentials: Make every error body quote the credentials the request carried
            (the ``Authorization`` / ``x-api-key`` values, Basic-auth passwords decoded, every
            ``x-*`` header value), as some real providers and gateways do on a 401: for testing
            that a client never stores or prints what a provider echoes.
    """

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        latency_s: float = 0.0,
        jitter_s: float = 0.0,
        error_rate: float = 0.0,
        error_status: int = 500,
        rate_limit_rate: float = 0.0,
        rate_limit_retry_after: float | None = None,
        rate_limit_rps: float | None = None,
        rate_limit_burst: float | None = None,
        record: bool = True,
        responder: Responder | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        backlog: int = 1024,
        chunk_delay_s: float = 0.0,
        echo_credentials: bool = False,
    ) -> None:
        self.chunk_delay_s = chunk_delay_s
        self.api_key = api_key
        self.echo_credentials = echo_credentials
        self.latency_s = latency_s
        self.jitter_s = jitter_s
        self.error_rate = error_rate
        self.error_status = error_status
        self.rate_limit_rate = rate_limit_rate
        self.rate_limit_retry_after = rate_limit_retry_after
        self.rate_limit_rps = rate_limit_rps
        self.rate_limit_burst = rate_limit_burst
        self.record = record
        self._tokens: float | None = None
        self._tokens_at = 0.0
        self._counts: Counter[tuple[str, int | None]] = Counter()
        self._total = 0
        self._first_ok: float | None = None
        self._last_ok: float | None = None
        self._throttled = 0
        self.responder: Responder = responder or _echo
        self.host = host
        self._requested_port = port
        self._backlog = backlog
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._script: deque[Fault] = deque()
        self._records: list[RecordedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._since = time.monotonic()
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the provider server is not running; call start() or use 'with'")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (the server root, without ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base(self) -> str:
        """The ``api_base`` an OpenAI client wants: ``<base_url>/v1``."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_base(self) -> str:
        """The ``api_base`` an Anthropic client wants: the server root."""
        return self.base_url

    def start(self) -> ProviderServer:
        """Bind the port and serve from a daemon thread; returns ``self``."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        thread = threading.Thread(target=serve, name=f"provider-server-{id(self):x}", daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._startup(), loop).result(timeout=10)
        except BaseException:
            self.stop()
            raise
        with self._lock:
            self._since = time.monotonic()
        return self

    async def _startup(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("GET", "/_double/stats", self._control_stats)
        app.router.add_route("POST", "/_double/reset", self._control_reset)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            sock.listen(self._backlog)
            sock.setblocking(False)
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(sock.getsockname()[1])

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stop(self) -> None:
        """Stop serving (hanging requests are released) and join the thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._loop = self._thread = None
            self._port = None

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- scripting and inspection ------------------------------------------------------------
    def script(self, *faults: Fault) -> None:
        """Queue faults; each of the next requests consumes one (in order), then normal service."""
        with self._lock:
            self._script.extend(faults)

    def pending(self) -> int:
        """Scripted faults not consumed yet."""
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget recorded requests, counters and the remaining script (settings are kept)."""
        with self._lock:
            self._script.clear()
            self._records.clear()
            self._counts.clear()
            self._total = 0
            self._first_ok = self._last_ok = None
            self._throttled = 0
            self._tokens = None
            self._max_in_flight = self._in_flight
            self._since = time.monotonic()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since start or reset, in arrival order."""
        with self._lock:
            return list(self._records)

    @property
    def count(self) -> int:
        """How many requests were received since start or reset."""
        with self._lock:
            return self._total

    @property
    def max_in_flight(self) -> int:
        """Most requests handled at the same time since start or reset."""
        with self._lock:
            return self._max_in_flight

    def stats(self) -> ServerStats:
        """A snapshot of the counters."""
        with self._lock:
            counts = dict(self._counts)
            total, in_flight, peak, since = self._total, self._in_flight, self._max_in_flight, self._since
            first_ok, last_ok, throttled = self._first_ok, self._last_ok, self._throttled
        statuses: Counter[int] = Counter()
        outcomes: Counter[str] = Counter()
        for (outcome, status), n in counts.items():
            outcomes[outcome] += n
            if status is not None:
                statuses[status] += n
        return ServerStats(requests=total, in_flight=in_flight, max_in_flight=peak,
                           by_status=dict(sorted(statuses.items())), by_outcome=dict(outcomes),
                           elapsed_s=time.monotonic() - since, first_ok_at=first_ok, last_ok_at=last_ok,
                           throttled=throttled)

    def report(self) -> str:
        """A short human-readable summary of the counters."""
        s = self.stats()
        statuses = ", ".join(f"{k}: {v}" for k, v in s.by_status.items()) or "none"
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(s.by_outcome.items())) or "none"
        return (f"{s.requests} requests in {s.elapsed_s:.2f} s ({s.throughput:.0f}/s), "
                f"max in flight {s.max_in_flight}, now {s.in_flight}\n"
                f"  statuses: {statuses}\n  outcomes: {outcomes}")

    # ---- request handling --------------------------------------------------------------------
    def _take_token(self) -> float | None:
        """Spend a token of the rate limit; None if allowed, else seconds until the next token."""
        rps = self.rate_limit_rps
        if rps is None or rps <= 0:
            return None
        burst = self.rate_limit_burst if self.rate_limit_burst is not None else max(1.0, rps / 10)
        now = time.monotonic()
        # Called with self._lock held.
        tokens = burst if self._tokens is None else min(burst, self._tokens + (now - self._tokens_at) * rps)
        self._tokens_at = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return None
        self._tokens = tokens
        self._throttled += 1
        return (1.0 - tokens) / rps

    def _next_fault(self) -> Fault:
        with self._lock:
            if self._script:
                return self._script.popleft()
            wait = self._take_token()
            roll = self._rng.random()
        if wait is not None:
            wait_ms = max(1.0, round(wait * 1000.0, 1))
            # Refused on arrival, answered at once (like real providers), with when to come back.
            return Fault.error(429, retry_after=max(1, int(-(-wait // 1))), retry_after_ms=wait_ms, delay_s=0.0)
        if roll < self.rate_limit_rate:
            return Fault.rate_limited(retry_after=self.rate_limit_retry_after)
        if roll < self.rate_limit_rate + self.error_rate:
            return Fault.error(self.error_status)
        return Fault.ok()

    def _delay(self, fault: Fault) -> float:
        if fault.delay_s is not None:
            return fault.delay_s
        if self.jitter_s > 0:
            with self._lock:
                extra = self._rng.uniform(0.0, self.jitter_s)
            return self.latency_s + extra
        return self.latency_s

    def _auth_ok(self, provider: Provider, headers: Mapping[str, str]) -> bool:
        if self.api_key is None:
            return True
        if provider == "openai":
            return headers.get("authorization") == f"Bearer {self.api_key}"
        return headers.get("x-api-key") == self.api_key

    def _record(self, **fields: Any) -> None:
        with self._lock:
            if self.record:
                self._records.append(RecordedRequest(index=self._total, **fields))
            self._total += 1
            self._counts[(fields["outcome"], fields["status"])] += 1
            if fields["status"] == 200 and fields["outcome"] == "ok":
                arrived = fields["received_at"]
                if self._first_ok is None:
                    self._first_ok = arrived
                self._last_ok = arrived

    async def _control_stats(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats()
        data = {**stats.__dict__, "by_status": {str(k): v for k, v in stats.by_status.items()},
                "throughput": stats.throughput, "ok_rate": stats.ok_rate,
                "process_cpu_s": time.process_time()}  # the double's own CPU (it shares the machine)
        return web.json_response(data)

    async def _control_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.json_response({"reset": True})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            return await self._serve(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        headers = {k.lower(): v for k, v in request.headers.items()}
        shown = {k: ("<redacted>" if k in _REDACTED_HEADERS else v) for k, v in headers.items()}
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        model = body.get("model") if isinstance(body, dict) else None
        base = {"method": request.method, "path": request.path, "headers": shown, "body": body,
                "model": model if isinstance(model, str) else None, "received_at": arrived}

        provider: Provider | None = {_OPENAI_PATH: "openai", _ANTHROPIC_PATH: "anthropic"}.get(
            request.path.rstrip("/"))  # type: ignore[assignment]
        if provider is None or request.method != "POST":
            self._record(provider=provider, auth_ok=False, outcome="not_found", status=404, **base)
            return web.json_response(error_body(provider or "openai", 404,
                                                f"Unknown request URL: {request.method} {request.path}"),
                                     status=404)
        if not self._auth_ok(provider, headers):
            self._record(provider=provider, auth_ok=False, outcome="auth", status=401, **base)
            message = self._auth_message(provider, headers) + self._echo(headers)
            return self._json(provider, 401, error_body(provider, 401, message))
        problem = self._validate(provider, body, headers)
        if problem is not None:
            self._record(provider=provider, auth_ok=True, outcome="bad_request", status=400, **base)
            return self._json(provider, 400, error_body(provider, 400, problem + self._echo(headers)))

        fault = self._next_fault()
        assert isinstance(body, dict)  # checked by _validate
        if fault.kind == "status":
            self._record(provider=provider, auth_ok=True, outcome="status", status=fault.status, **base)
            await self._sleep(self._delay(fault))
            extra: dict[str, str] = {}
            if fault.retry_after is not None:
                ra = fault.retry_after
                extra["retry-after"] = ra if isinstance(ra, str) else f"{ra:g}"
            if fault.retry_after_ms is not None:
                extra["retry-after-ms"] = f"{fault.retry_after_ms:g}"
            echoed = fault.message
            if self.echo_credentials:
                echoed = (echoed or f"error {fault.status}") + self._echo(headers)
            return self._json(provider, fault.status, error_body(provider, fault.status, echoed), extra)
        if fault.kind == "hang":
            self._record(provider=provider, auth_ok=True, outcome="hang", status=None, **base)
            return await self._hang(request)

        if body.get("stream") is True and fault.kind in ("ok", "reset"):
            return await self._stream(request, provider, body, fault, base)
        payload, prompt_tokens, completion_tokens = self._answer(provider, body, fault.kind)
        status = None if fault.kind == "reset" else 200
        self._record(provider=provider, auth_ok=True, outcome=fault.kind, status=status,
                     prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, **base)
        await self._sleep(self._delay(fault))
        data = json.dumps(payload).encode()
        if fault.kind == "truncated_json":
            data = data[: len(data) // 2]
        elif fault.kind == "invalid_json":
            data = b"<html><body>502 Bad Gateway</body></html> not json"
        if fault.kind == "reset":
            return await self._reset(request, provider, data)
        return web.Response(body=data, status=200, headers=self._headers(provider))

    @staticmethod
    async def _sleep(seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    def _headers(self, provider: Provider, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        rid = uuid.uuid4().hex[:24]
        headers = {"Content-Type": "application/json"}
        if provider == "openai":
            headers["x-request-id"] = f"req_{rid}"
            headers["openai-processing-ms"] = f"{int(self.latency_s * 1000)}"
        else:
            headers["request-id"] = f"req_{rid}"
        headers.update(extra or {})
        return headers

    def _json(self, provider: Provider, status: int, payload: Any,
              extra: Mapping[str, str] | None = None) -> web.Response:
        return web.Response(body=json.dumps(payload).encode(), status=status,
                            headers=self._headers(provider, extra))

    def _echo(self, headers: Mapping[str, str]) -> str:
        """What an echoing provider appends to its error message (nothing unless ``echo_credentials``)."""
        if not self.echo_credentials:
            return ""
        shown: list[str] = []
        for name, value in sorted(headers.items()):
            if name in ("authorization", "proxy-authorization") and value.lower().startswith("basic "):
                with contextlib.suppress(ValueError):
                    value = base64.b64decode(value[6:].strip()).decode("utf-8", "replace")
                shown.append(f"{name}: {value}")
            elif name in _REDACTED_HEADERS or (name.startswith("x-") and not name.startswith("x-stainless")):
                shown.append(f"{name}: {value}")
        return f" (request credentials: {'; '.join(shown)})"

    def _auth_message(self, provider: Provider, headers: Mapping[str, str]) -> str:
        if provider == "anthropic":
            return "x-api-key header is required" if "x-api-key" not in headers else "invalid x-api-key"
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return ("You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). "
                    "You can obtain an API key from https://platform.openai.com/account/api-keys.")
        key = auth[7:].strip()
        shown = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else "*****"
        return (f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.")

    @staticmethod
    def _validate(provider: Provider, body: Any, headers: Mapping[str, str]) -> str | None:
        if not isinstance(body, dict):
            return "We could not parse the JSON body of your request."
        if provider == "anthropic" and "anthropic-version" not in headers:
            return "anthropic-version: header is required"
        if not isinstance(body.get("model"), str):
            return "you must provide a model parameter" if provider == "openai" else "model: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return ("[] is too short - 'messages'" if provider == "openai"
                    else "messages: at least one message is required")
        if provider == "anthropic" and not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        return None

    def _reply(self, provider: Provider, body: dict[str, Any]) -> tuple[str, tuple[ToolUse, ...], bool, int, int]:
        """(text, tool calls, truncated, prompt tokens, completion tokens) for a request."""
        messages = _normalized_messages(provider, body)
        prompt_tokens = sum(count_tokens(str(m.get("content") or "")) for m in messages)
        answer = self.responder(provider, messages)
        reply = answer if isinstance(answer, Reply) else Reply(text=str(answer))
        text = reply.text
        words = text.split()
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        truncated = isinstance(limit, int) and 0 < limit < len(words)
        if truncated:
            assert isinstance(limit, int)
            text = " ".join(words[:limit])
        calls = tuple(ToolUse(c.name, c.arguments, c.id or self._call_id(provider)) for c in reply.tool_calls)
        completion_tokens = count_tokens(text) + sum(count_tokens(c.raw()) for c in calls)
        return text, calls, truncated, prompt_tokens, completion_tokens

    @staticmethod
    def _call_id(provider: Provider) -> str:
        return f"call_{uuid.uuid4().hex[:24]}" if provider == "openai" else f"toolu_{uuid.uuid4().hex[:24]}"

    def _answer(self, provider: Provider, body: dict[str, Any],
                kind: FaultKind) -> tuple[dict[str, Any], int, int]:
        """The success payload, its prompt tokens and its completion tokens."""
        text, calls, truncated, prompt_tokens, completion_tokens = self._reply(provider, body)
        created = int(time.time())
        if provider == "openai":
            message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None,
                                       "refusal": None, "annotations": []}
            if calls:
                message["tool_calls"] = [{"id": c.id, "type": "function",
                                          "function": {"name": c.name, "arguments": c.raw()}} for c in calls]
            choices: list[dict[str, Any]] = [{
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "length" if truncated else ("tool_calls" if calls else "stop"),
            }]
            payload: dict[str, Any] = {
                "id": f"chatcmpl-{uuid.uuid4().hex[:29]}",
                "object": "chat.completion",
                "created": created,
                "model": body["model"],
                "choices": [] if kind == "empty_choices" else choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                  "accepted_prediction_tokens": 0,
                                                  "rejected_prediction_tokens": 0},
                },
                "service_tier": "default",
                "system_fingerprint": "fp_provider_double",
            }
            return payload, prompt_tokens, completion_tokens
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text or not calls else []
        content += [{"type": "tool_use", "id": c.id, "name": c.name, "input": _input_object(c)} for c in calls]
        payload = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [] if kind == "empty_choices" else content,
            "stop_reason": "max_tokens" if truncated else ("tool_use" if calls else "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }
        return payload, prompt_tokens, completion_tokens

    async def _stream(self, request: web.Request, provider: Provider, body: dict[str, Any], fault: Fault,
                      base: dict[str, Any]) -> web.StreamResponse:
        """Answer with server-sent events; a ``reset`` fault breaks the stream half-way."""
        text, calls, truncated, prompt_tokens, completion_tokens = self._reply(provider, body)
        status = None if fault.kind == "reset" else 200
        self._record(provider=provider, auth_ok=True, outcome=fault.kind, status=status,
                     prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, **base)
        await self._sleep(self._delay(fault))
        if provider == "openai":
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = _openai_events(body["model"], text, calls, truncated, prompt_tokens, completion_tokens, usage)
        else:
            events = _anthropic_events(body["model"], text, calls, truncated, prompt_tokens, completion_tokens)
        headers = {**self._headers(provider), "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        cut = len(events) // 2 if fault.kind == "reset" else len(events)
        for index, event in enumerate(events[:cut]):
            if index and self.chunk_delay_s > 0:
                await asyncio.sleep(self.chunk_delay_s)
            await response.write(event)
        if fault.kind == "reset":
            transport = request.transport
            if transport is not None:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            return response
        await response.write_eof()
        return response

    async def _hang(self, request: web.Request) -> web.StreamResponse:
        """Wait until the client disconnects or the server stops, then drop the connection."""
        stopping = self._stopping
        assert stopping is not None
        while not stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            try:
                await asyncio.wait_for(stopping.wait(), timeout=0.05)
            except TimeoutError:
                continue
        if request.transport is not None:
            request.transport.abort()
        # Writing to the closed transport fails with a ConnectionError, which aiohttp treats
        # as a quiet client disconnection: nothing is sent.
        return web.Response(status=504)

    async def _reset(self, request: web.Request, provider: Provider, data: bytes) -> web.StreamResponse:
        """Send the headers and half of ``data``, then reset the TCP connection."""
        response = web.StreamResponse(status=200, headers=self._headers(provider))
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(data[: len(data) // 2])
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # SO_LINGER with a zero timeout turns close() into a TCP RST.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        # aiohttp's write_eof now fails with a ConnectionError: a quiet client disconnection.
        return response


def main(argv: list[str] | None = None) -> int:
    """``python -m llmops.testing``: serve until interrupted (for benchmarks)."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m llmops.testing",
                                     description="A local OpenAI/Anthropic-compatible test double.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed as READY <port>)")
    parser.add_argument("--api-key", default=None, help="required key (default: accept any)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="S", help="seconds before each answer")
    parser.add_argument("--jitter", type=float, default=0.0, metavar="S", help="extra uniform latency")
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--error-status", type=int, default=500)
    parser.add_argument("--rate-limit-rate", type=float, default=0.0, help="probability of a random 429")
    parser.add_argument("--retry-after", type=float, default=None, metavar="S",
                        help="retry-after of the random 429s")
    parser.add_argument("--rate-limit-rps", type=float, default=None, metavar="RPS",
                        help="allowed request rate (token bucket); beyond it: 429 with retry-after-ms")
    parser.add_argument("--rate-limit-burst", type=float, default=None, metavar="N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backlog", type=int, default=4096)
    args = parser.parse_args(argv)
    server = ProviderServer(api_key=args.api_key, latency_s=args.latency, jitter_s=args.jitter,
                            error_rate=args.error_rate, error_status=args.error_status,
                            rate_limit_rate=args.rate_limit_rate, rate_limit_retry_after=args.retry_after,
                            rate_limit_rps=args.rate_limit_rps, rate_limit_burst=args.rate_limit_burst,
                            record=False, seed=args.seed, host=args.host, port=args.port, backlog=args.backlog)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with server:
        print(f"READY {server.port}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
