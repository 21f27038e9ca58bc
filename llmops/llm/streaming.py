"""Streamed calls: chunks as they arrive (async or sync iteration), then the full :class:`Completion`.

A stream goes through the same doors as any call: the response cache (a hit replays as a stream
of the cached text), the per-model concurrency limit, the retry policy (only before the first
chunk reached the caller: a stream that breaks later is a :class:`ProviderError`, its chunks
already consumed), error mapping, cost and observers. Observers get one record at the end, with
the time to first token in the completion; a stream the caller stops early is recorded with a
:class:`StreamCancelledError` instead of being lost.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmops.errors import CacheMissError, LLMOpsError, ProviderError, ProviderTimeoutError, StreamCancelledError
from llmops.llm.errormap import map_exception, noting_cause
from llmops.llm.loader import Lean, load_litellm
from llmops.llm.pricing import cost_of
from llmops.llm.providers import collect_own_errors
from llmops.llm.types import Completion, Message, ToolCall, Usage, structured_output

if TYPE_CHECKING:
    from llmops.llm.client import LLMClient


@dataclass(frozen=True)
class Chunk:
    """One piece of a streamed answer.

    Attributes:
        text: The text added by this chunk (may be empty for a tool-call piece).
        tool_calls: Tool-call pieces as the provider streamed them (``index``, and ``id`` /
            ``name`` / ``arguments`` fragments); the completion has them assembled.
        index: 0-based position of the chunk in the stream.
    """

    text: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()
    index: int = 0


def pieces(text: str) -> list[str]:
    """Word pieces of a text (each keeps its following space): how a cached answer is replayed."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]] if text else []


def _tool_deltas(delta: Any) -> tuple[dict[str, Any], ...]:
    out: list[dict[str, Any]] = []
    for raw in getattr(delta, "tool_calls", None) or ():
        fn = getattr(raw, "function", None)
        out.append({"index": getattr(raw, "index", 0), "id": getattr(raw, "id", None),
                    "name": getattr(fn, "name", None), "arguments": getattr(fn, "arguments", None) or ""})
    return tuple(out)


class CompletionStream:
    """A streamed call: ``async for`` (or ``for``) over :class:`Chunk` values, then :attr:`completion`.

    Made by :meth:`LLMClient.astream` / :func:`llmops.astream`; the request starts when
    iteration starts. Iterate it once.

    Attributes:
        completion: The full completion once the stream ended (None before, or after a failure).
        chunks: How many chunks the caller received so far.
    """

    def __init__(self, client: LLMClient, messages: list[Message], requested: str, resolved: str,
                 params: dict[str, Any], seed: int, key: str, metadata: dict[str, Any]) -> None:
        self._client = client
        self._messages = messages
        self._requested = requested
        self._resolved = resolved
        self._params = params
        self._seed = seed
        self._key = key
        self._meta = metadata
        self.completion: Completion | None = None
        self.chunks = 0
        self._text: list[str] = []
        self._started = False
        self._gen: AsyncGenerator[Chunk, None] | None = None

    # ---- async iteration -----------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Chunk]:
        if self._started:
            raise RuntimeError("a CompletionStream can be iterated only once")
        self._started = True
        self._gen = self._run()
        return self._gen

    async def aclose(self) -> None:
        """Stop the stream now (after a ``break``); it is recorded as cancelled if it had not ended."""
        if self._gen is not None:
            await self._gen.aclose()

    async def _run(self) -> AsyncGenerator[Chunk, None]:
        client = self._client
        started = time.time()
        done = False
        try:
            async for chunk in self._chunks():
                self.chunks += 1
                self._text.append(chunk.text)
                yield chunk
            done = True
        except LLMOpsError as err:
            client._notify_call(self._messages, self._requested, self._resolved, self._params, None, err,
                                started, self._meta)
            raise
        finally:
            if not done and self.completion is None and not _failed():
                # The caller stopped iterating (break, aclose, task cancelled): record what it got.
                partial = Completion(text="".join(self._text), model=self._requested,
                                     resolved_model=self._resolved, finish_reason="cancelled", streamed=True)
                cancelled = StreamCancelledError(f"stream cancelled by the caller after {self.chunks} chunk(s)",
                                                 chunks=self.chunks)
                client._notify_call(self._messages, self._requested, self._resolved, self._params, partial,
                                    cancelled, started, self._meta)
        assert self.completion is not None
        client._notify_call(self._messages, self._requested, self._resolved, self._params, self.completion, None,
                            started, self._meta)

    async def _chunks(self) -> AsyncIterator[Chunk]:
        client = self._client
        cache = client.cache
        if cache is not None and client.cache_mode in ("read-write", "read-only"):
            hit = cache.get(self._key)
            if hit is not None:  # replayed as a stream of the cached answer
                for index, piece in enumerate(pieces(hit.text)):
                    yield Chunk(text=piece, index=index)
                calls = tuple({"index": i, "id": c.id, "name": c.name, "arguments": c.raw_arguments}
                              for i, c in enumerate(hit.tool_calls))
                if calls:
                    yield Chunk(tool_calls=calls, index=len(pieces(hit.text)))
                self.completion = Completion(**{**hit.__dict__, "model": self._requested})
                return
            if client.cache_mode == "read-only":
                raise CacheMissError(f"replay mode: no cached response for {self._resolved}, key {self._key[:16]}",
                                     key=self._key, hint="record it first with --cache read-write")
        waited, attempt = 0.0, 0
        while True:
            attempt += 1
            sent_before = self.chunks
            err: LLMOpsError | None = None
            try:
                async for chunk in self._attempt():
                    yield chunk
            except Exception as exc:  # mapped right below; nothing escapes unmapped
                err = map_exception(exc, self._resolved)
                if self.chunks > sent_before:  # the caller has part of the answer: no silent retry
                    broke = ProviderError(f"the stream broke after {self.chunks} chunk(s): {err.message}",
                                          model=self._resolved, status_code=getattr(err, "status_code", None),
                                          retryable=False)
                    broke.gave_up(attempt)
                    raise broke from None
            if err is None:
                break
            if not isinstance(err, ProviderError):
                raise err
            delay = client.retry.delay(attempt, err.retry_after) if err.retryable else 0.0
            if not err.retryable or not client.retry.allows(attempt, waited, delay):
                err.gave_up(attempt)
                raise err
            await asyncio.sleep(delay)
            waited += delay
        assert self.completion is not None
        self.completion = Completion(**{**self.completion.__dict__, "cache_key": self._key, "attempts": attempt})
        if cache is not None and client.cache_mode in ("read-write", "refresh"):
            cache.put(self._key, self.completion)

    async def _attempt(self) -> AsyncIterator[Chunk]:
        from llmops.llm.client import _count_call

        client, resolved = self._client, self._resolved
        litellm = load_litellm()
        call_params = {k: v for k, v in self._params.items() if k not in ("stream", "stream_options")}
        wire = [m.to_dict() for m in self._messages]
        async with client._semaphore(resolved):
            client.provider_calls += 1
            _count_call()
            start = time.perf_counter()
            try:
                with collect_own_errors() as own_errors, Lean(resolved):
                    response = await asyncio.wait_for(
                        noting_cause(litellm.acompletion(
                            model=resolved, messages=wire, seed=self._seed, stream=True,
                            stream_options={"include_usage": True}, timeout=client.timeout_s, max_retries=0,
                            num_retries=0, drop_params=True, **call_params)),
                        timeout=client._deadline())
            except TimeoutError:
                raise ProviderTimeoutError(f"no answer within {client.timeout_s:g} s", model=resolved,
                                           retryable=True) from None
            except Exception:
                if own_errors:
                    raise own_errors[-1] from None
                raise
            # Assembled as the chunks pass (litellm's stream_chunk_builder re-walks every chunk and
            # costs more CPU per chunk than our own work; it stays the fallback when usage is missing).
            raw_chunks: list[Any] = []
            texts: list[str] = []
            calls_by_index: dict[int, dict[str, Any]] = {}
            finish: str | None = None
            usage: Any = None
            first: float | None = None
            index = self.chunks
            async for raw in response:
                raw_chunks.append(raw)
                raw_usage = getattr(raw, "usage", None)
                if raw_usage is not None:
                    usage = raw_usage
                choices = raw.choices
                if not choices:
                    continue
                choice = choices[0]
                finish = choice.finish_reason or finish
                delta = choice.delta
                text = delta.content or ""
                calls = _tool_deltas(delta) if delta.tool_calls else ()
                if text or calls:
                    if first is None:
                        first = time.perf_counter() - start
                    if text:
                        texts.append(text)
                    for piece in calls:
                        slot = calls_by_index.setdefault(int(piece["index"] or 0), {"id": None, "name": "",
                                                                                    "arguments": ""})
                        slot["id"] = slot["id"] or piece["id"]
                        slot["name"] = slot["name"] or piece["name"] or ""
                        slot["arguments"] += piece["arguments"]
                    yield Chunk(text=text, tool_calls=calls, index=index)
                    index += 1
            latency = time.perf_counter() - start
        if usage is None or not getattr(usage, "completion_tokens", 0):
            built = litellm.stream_chunk_builder(raw_chunks, messages=wire)
            if built is None:
                raise ProviderError("the provider's stream carried no answer", model=resolved, retryable=True)
            usage = getattr(built, "usage", None)
        counts = Usage(prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                       completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0))
        text = "".join(texts)
        tool_calls = tuple(ToolCall.of(str(slot["id"] or f"call_{i}"), slot["name"], slot["arguments"])
                           for i, slot in sorted(calls_by_index.items()))
        parsed, parse_error = structured_output(text, self._params.get("response_format"))
        self.completion = Completion(
            text=text, model=self._requested, resolved_model=resolved, finish_reason=finish, usage=counts,
            cost_usd=cost_of(resolved, counts, self._params), latency_s=latency, tool_calls=tool_calls,
            parsed=parsed, parse_error=parse_error, ttft_s=first if first is not None else latency, streamed=True)

    # ---- sync iteration --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Chunk]:
        """Iterate from sync code (also inside a running event loop): the stream runs in a helper thread."""
        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()
        state: dict[str, Any] = {}

        async def pump() -> None:
            state["task"] = asyncio.current_task()
            state["loop"] = asyncio.get_running_loop()
            try:
                async for chunk in self:
                    items.put(("chunk", chunk))
                    if stop.is_set():
                        break
            except BaseException as exc:  # handed to the consuming thread
                items.put(("error", exc))
                return
            items.put(("end", None))

        ctx = contextvars.copy_context()
        thread = threading.Thread(target=ctx.run, args=(asyncio.run, pump()), name="llmops-stream", daemon=True)
        thread.start()
        finished = False
        try:
            while True:
                kind, value = items.get()
                if kind == "chunk":
                    yield value
                elif kind == "error":
                    finished = True
                    raise value
                else:
                    finished = True
                    return
        finally:
            if not finished:  # the caller stopped early: cancel the stream (it records the cancel)
                stop.set()
                loop, task = state.get("loop"), state.get("task")
                if loop is not None and task is not None:
                    loop.call_soon_threadsafe(task.cancel)
            thread.join()

    def text(self) -> str:
        """Consume the stream (sync) and return the full text."""
        for _ in self:
            pass
        assert self.completion is not None
        return self.completion.text


def _failed() -> bool:
    """Whether an exception is propagating (the ``finally`` of a failure, not of a cancel)."""
    import sys

    exc = sys.exc_info()[1]
    return exc is not None and not isinstance(exc, GeneratorExit | asyncio.CancelledError)
