"""The LLM client: cache, retries, concurrency limits and observers around every provider call.

Every call travels: response cache -> per-model concurrency limit -> litellm.acompletion (with
our retry policy, litellm's own retries off) -> error mapping -> cost -> observers (tracing).
A fully replayed run is answered by the cache and never imports litellm. The pieces live next
door: :mod:`~llmops.llm.loader` (litellm, lazily, and its fast path), :mod:`~llmops.llm.providers`
(``local/`` and ``fake/``), :mod:`~llmops.llm.scrub` (secrets out of logs),
:mod:`~llmops.llm.pricing` and :mod:`~llmops.llm.errormap`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from llmops._async import run_sync
from llmops.config import CacheMode, Settings, load_settings, register_secrets
from llmops.credentials import register_params
from llmops.errors import CacheMissError, LLMOpsError, ProviderError, ProviderTimeoutError
from llmops.llm.budget import active_budget, worst_case_cost
from llmops.llm.cache import ResponseCache, request_key
from llmops.llm.convert import our_conversion as _our_conversion
from llmops.llm.convert import to_completion as _to_completion
from llmops.llm.convert import to_embeddings
from llmops.llm.convert import tool_calls_of as tool_calls_of
from llmops.llm.errormap import RETRYABLE_STATUS, map_exception, missing_key_env_vars, noting_cause, retry_after
from llmops.llm.loader import Lean, litellm_imported, load_litellm
from llmops.llm.pricing import PRICE_PARAMS, cost_of
from llmops.llm.providers import collect_own_errors
from llmops.llm.retry import RetryPolicy
from llmops.llm.scrub import public_params, register_log_secrets, secret_param_values
from llmops.llm.streaming import CompletionStream
from llmops.llm.throttle import Pacer
from llmops.llm.types import Completion, Message, Usage

__all__ = [  # the client, and the names other modules have always imported from here
    "PRICE_PARAMS",
    "RETRYABLE_STATUS",
    "CallObserver",
    "CallRecord",
    "EmbeddingResult",
    "LLMClient",
    "cost_of",
    "litellm_imported",
    "map_exception",
    "missing_key_env_vars",
    "public_params",
    "register_log_secrets",
    "secret_param_values",
    "tally_provider_calls",
]


@dataclass(frozen=True)
class CallRecord:
    """What observers (tracing, stores) learn about each call, success or failure.

    Attributes:
        messages: The request messages.
        model: The model as requested.
        resolved_model: The LiteLLM model string.
        params: Request params (secrets removed).
        completion: The result, or None if the call failed.
        error: The mapped error, or None.
        started_at: Unix time the call started.
        ended_at: Unix time the call ended.
        metadata: Caller metadata (prompt ref, hash, case id, ...).
    """

    messages: tuple[Message, ...]
    model: str
    resolved_model: str
    params: dict[str, Any]
    completion: Completion | None
    error: LLMOpsError | None
    started_at: float
    ended_at: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmbeddingResult:
    """Vectors for a list of texts, from :meth:`LLMClient.aembed`.

    Attributes:
        vectors: One vector per input text, in input order.
        model: The model as requested (alias or LiteLLM string).
        resolved_model: The LiteLLM model string.
        usage: Tokens spent on the provider (0 for texts served by the cache).
        cost_usd: Cost by the local price map (0 for cached texts and unknown models).
        cached: How many of the texts the cache answered.
    """

    vectors: list[list[float]]
    model: str
    resolved_model: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    cached: int = 0


_T = TypeVar("_T")


class CallObserver(Protocol):
    """Receives a :class:`CallRecord` after each call. Must never raise or block."""

    def __call__(self, record: CallRecord) -> None: ...  # noqa: D102


# ---- provider calls counted per context ------------------------------------------------------
# A runner opens a tally per unit; every provider call made in that context (the unit's own
# call, and judge or regeneration calls in the tasks it starts, which copy the context) adds
# one. A unit that made none was answered by the cache alone and costs nothing to redo.
# ``on_call`` (the runner's: count the call in the run store) runs before the call is sent, so a
# process killed while waiting for the answer has already counted it.
_call_tally: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("llmops_call_tally", default=None)
_on_call: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("llmops_on_call",
                                                                                     default=None)


@contextlib.contextmanager
def tally_provider_calls(on_call: Callable[[], None] | None = None) -> Iterator[list[int]]:
    """Count the provider calls made inside the block (in this context): ``tally[0]``.

    Args:
        on_call: Also called once per provider call, just before it is sent.
    """
    tally = [0]
    token = _call_tally.set(tally)
    hook = _on_call.set(on_call)
    try:
        yield tally
    finally:
        _on_call.reset(hook)
        _call_tally.reset(token)


def _count_call() -> None:
    tally = _call_tally.get()
    if tally is not None:
        tally[0] += 1
        on_call = _on_call.get()
        if on_call is not None:
            on_call()


class LLMClient:
    """Calls any LiteLLM model (plus ``local/`` and ``fake/``) with cache, retries and limits.

    Args:
        settings: Configuration; defaults to :func:`llmops.config.load_settings`.
        cache: A response cache; defaults to ``settings.cache_path`` (None with mode ``off``).
        cache_mode: Overrides ``settings.cache``.
        retry: Overrides the policy derived from settings.
        concurrency: Max in-flight calls per model (overrides ``settings.concurrency``).
        timeout_s: Per-attempt timeout (overrides ``settings.timeout_s``).
        observers: Called with a :class:`CallRecord` after every call.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        cache: ResponseCache | None = None,
        cache_mode: CacheMode | None = None,
        retry: RetryPolicy | None = None,
        concurrency: int | None = None,
        timeout_s: float | None = None,
        observers: Sequence[CallObserver] = (),
    ) -> None:
        self.settings = settings or load_settings()
        self.cache_mode: CacheMode = cache_mode or self.settings.cache
        if cache is None and self.cache_mode != "off":
            cache = ResponseCache(self.settings.path(self.settings.cache_path))
        self.cache = cache if self.cache_mode != "off" else None
        self.retry = retry or RetryPolicy(max_retries=self.settings.max_retries,
                                          max_total_s=self.settings.retry_max_wait_s)
        self.concurrency = concurrency or self.settings.concurrency
        self.timeout_s = timeout_s or self.settings.timeout_s
        self.observers: list[CallObserver] = list(observers)
        self.provider_calls = 0
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]]
        self._semaphores = weakref.WeakKeyDictionary()
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        # Per model, shared by every loop and thread of this client: learned from the provider's 429s.
        self.pacers: dict[str, Pacer] = {}
        register_secrets(self.settings)  # every credential it knows of is scrubbed by value from now on
        if self.settings.fake_answers is not None:
            from llmops.llm import fake

            fake.use_answers_file(self.settings.path(self.settings.fake_answers))

    def _deadline(self) -> float:
        """Hard limit of one attempt: the timeout plus a grace for litellm's own timeout to fire first.

        httpx timeouts are per read, so a server that trickles bytes never trips them; this one
        is total. The grace is proportional so that small test timeouts stay small.
        """
        return self.timeout_s + min(1.0, 0.25 * self.timeout_s)

    def before_fork(self) -> None:
        """Get ready for ``os.fork()``: import litellm now, once, so children inherit it.

        A replay-only client (``cache_mode`` ``read-only``) never needs litellm, so it skips it.
        """
        if self.cache_mode != "read-only":
            load_litellm()

    def after_fork(self, concurrency: int | None = None) -> None:
        """Make this client usable in a forked child process.

        Concurrency limits are per event loop and must not be shared with the parent's loop; the
        child starts with fresh ones.

        Args:
            concurrency: The child's share of in-flight calls per model (default: unchanged).
        """
        if concurrency is not None:
            self.concurrency = concurrency
        self._semaphores = weakref.WeakKeyDictionary()

    def _semaphore(self, model: str) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        per_loop = self._semaphores.setdefault(loop, {})
        if model not in per_loop:
            # An embedded model answers one call at a time: queueing here (not behind its lock)
            # keeps measured latency to generation time only.
            limit = 1 if model.startswith("local/") else self.concurrency
            per_loop[model] = asyncio.Semaphore(limit)
        return per_loop[model]

    def resolve(self, model: str | None, params: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Resolve an alias to (LiteLLM model string, merged params)."""
        alias = self.settings.resolve_model(model or self.settings.default_model)
        return alias.model, {**alias.params, **(params or {})}

    async def acomplete(
        self,
        messages: Sequence[Message] | Sequence[dict[str, Any]],
        model: str | None = None,
        params: dict[str, Any] | None = None,
        *,
        seed: int | None = None,
        repeat: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Completion:
        """Complete a chat. The async core; see :meth:`complete` for sync code.

        Args:
            messages: Rendered chat messages.
            model: Alias or LiteLLM model string (default: ``settings.default_model``).
            params: temperature, max_tokens, ... (merged over the alias's params).
            seed: Sampling seed (default: ``settings.seed``).
            repeat: Repeat index; part of the cache key so repeats are independent samples.
            metadata: Passed to observers (prompt ref and hash, case id, run id, ...).

        Raises:
            ProviderError: (or AuthError, RateLimitError, ProviderTimeoutError) after retries.
            CacheMissError: in read-only (replay) mode when the request is not cached.
        """
        msgs, requested, resolved, merged, seed, key = self._request(messages, model, params, seed, repeat)
        meta = dict(metadata or {})
        clock = [time.time()]  # when the request started; _complete moves it past a one-off import
        try:
            completion = await self._complete(msgs, requested, resolved, merged, seed, key, meta, clock)
        except LLMOpsError as err:
            self._notify_call(msgs, requested, resolved, merged, None, err, clock[0], meta)
            raise
        self._notify_call(msgs, requested, resolved, merged, completion, None, clock[0], meta)
        return completion

    def _request(
        self,
        messages: Sequence[Message] | Sequence[dict[str, Any]],
        model: str | None,
        params: dict[str, Any] | None,
        seed: int | None,
        repeat: int,
        *,
        drop: tuple[str, ...] = (),
    ) -> tuple[list[Message], str, str, dict[str, Any], int, str]:
        """Messages, requested and resolved model, merged params, seed and cache key of one call."""
        msgs = [Message.coerce(m) for m in messages]
        requested = model or self.settings.default_model
        resolved, merged = self.resolve(requested, params)
        if drop:
            merged = {k: v for k, v in merged.items() if k not in drop}
        if params:  # a suite's or a prompt's own api_key, header values or api_base password
            register_params(params)
        used_seed = self.settings.seed if seed is None else seed
        return msgs, requested, resolved, merged, used_seed, request_key(resolved, msgs, merged, used_seed, repeat)

    def astream(
        self,
        messages: Sequence[Message] | Sequence[dict[str, Any]],
        model: str | None = None,
        params: dict[str, Any] | None = None,
        *,
        seed: int | None = None,
        repeat: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> CompletionStream:
        """Stream a chat: iterate the result (``async for`` or ``for``) for chunks, then read its ``completion``.

        Same arguments, cache key, limits and retries as :meth:`acomplete`.

        Raises (while iterating):
            ProviderError: (or AuthError, RateLimitError, ProviderTimeoutError) after retries, or
                when the stream breaks after chunks were delivered (not retried).
            CacheMissError: in read-only (replay) mode when the request is not cached.
        """
        msgs, requested, resolved, merged, seed, key = self._request(messages, model, params, seed, repeat,
                                                                     drop=("stream", "stream_options"))
        return CompletionStream(self, msgs, requested, resolved, merged, seed, key, dict(metadata or {}))

    stream = astream  # the same object iterates with ``for`` (sync) and ``async for``

    def _notify_call(self, msgs: Sequence[Message], requested: str, resolved: str, params: dict[str, Any],
                     completion: Completion | None, error: LLMOpsError | None, started: float,
                     meta: dict[str, Any]) -> None:
        if self.observers:
            self._notify(CallRecord(tuple(msgs), requested, resolved, public_params(params), completion, error,
                                    started, time.time(), meta))

    async def aembed(self, texts: Sequence[str], model: str, params: dict[str, Any] | None = None,
                     *, metadata: dict[str, Any] | None = None) -> EmbeddingResult:
        """Embed texts with any LiteLLM embedding model (or alias), like a chat call: cache, limits, retries.

        Each text is cached on its own, as a :class:`Completion` whose text is the JSON vector
        under a key with the pseudo-role ``embedding``: the one response cache then serves
        embeddings too (a replayed run needs no provider) without a second table or schema.

        Args:
            texts: The texts to embed.
            model: Alias or LiteLLM embedding model string (``openai/text-embedding-3-small``, ...).
            params: Provider params (``api_base``, ``dimensions``, ...), merged over the alias's.
            metadata: Passed to observers (``call_type`` is set to ``embedding``).

        Raises:
            ProviderError: (or AuthError, RateLimitError, ProviderTimeoutError) after retries.
            CacheMissError: in read-only (replay) mode when a text is not cached.
        """
        resolved, merged = self.resolve(model, params)
        meta = {**(metadata or {}), "call_type": "embedding"}
        keys = [request_key(resolved, [Message(role="embedding", content=t)], merged, None, 0) for t in texts]
        vectors: list[list[float] | None] = [None] * len(keys)
        if self.cache is not None and self.cache_mode in ("read-write", "read-only"):
            for i, key in enumerate(keys):
                hit = self.cache.get(key)
                if hit is not None:
                    vectors[i] = [float(x) for x in json.loads(hit.text)]
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing and self.cache_mode == "read-only":
            raise CacheMissError(f"replay mode: no cached embedding for {resolved} ({texts[missing[0]][:60]!r})",
                                 key=keys[missing[0]], hint="record it first with --cache read-write")
        usage, cost = Usage(), 0.0
        if missing:
            asked = [texts[i] for i in missing]
            started = time.time()
            record_msgs = tuple(Message(role="user", content=t) for t in asked)
            try:
                (fresh, usage, latency), _ = await self._retrying(
                    lambda: self._embed_attempt(asked, resolved, merged), resolved)
                if len(fresh) != len(asked):
                    raise ProviderError(f"asked for {len(asked)} embeddings, got {len(fresh)}",
                                        model=resolved, retryable=False)
            except LLMOpsError as err:
                self._notify(CallRecord(record_msgs, model, resolved, public_params(merged), None, err,
                                        started, time.time(), meta))
                raise
            cost = cost_of(resolved, usage, merged)  # an alias's own prices, as for chat calls
            for i, vector in zip(missing, fresh, strict=True):
                vectors[i] = vector
                if self.cache is not None and self.cache_mode in ("read-write", "refresh"):
                    self.cache.put(keys[i], Completion(text=json.dumps(vector), model=model,
                                                       resolved_model=resolved, finish_reason="embedding"))
            summary = Completion(text=f"[{len(fresh)} embeddings x {len(fresh[0]) if fresh else 0} dims]",
                                 model=model, resolved_model=resolved, finish_reason="embedding",
                                 usage=usage, cost_usd=cost, latency_s=latency)
            self._notify(CallRecord(record_msgs, model, resolved, public_params(merged), summary, None,
                                    started, time.time(), meta))
        done = [v for v in vectors if v is not None]
        return EmbeddingResult(vectors=done, model=model, resolved_model=resolved, usage=usage,
                               cost_usd=cost, cached=len(keys) - len(missing))

    async def _retrying(self, attempt_fn: Callable[[], Awaitable[_T]], resolved: str) -> tuple[_T, int]:
        """Run ``attempt_fn`` under the retry policy, mapping every failure to our errors.

        Returns:
            The first successful result and the number of attempts it took.
        """
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                return await attempt_fn(), attempt
            except Exception as exc:  # mapped right below; nothing escapes unmapped
                err = map_exception(exc, resolved)
            if not isinstance(err, ProviderError):
                raise err
            delay = self.retry.delay(attempt, err.retry_after) if err.retryable else 0.0
            if not err.retryable or not self.retry.allows(attempt, waited, delay):
                err.gave_up(attempt)  # the error result and its trace say how many attempts were paid for
                raise err
            await asyncio.sleep(delay)
            waited += delay

    async def _embed_attempt(self, texts: list[str], resolved: str,
                             params: dict[str, Any]) -> tuple[list[list[float]], Usage, float]:
        litellm = load_litellm()
        async with self._semaphore(resolved):
            self.provider_calls += 1
            _count_call()
            start = time.perf_counter()
            try:
                response = await asyncio.wait_for(
                    noting_cause(litellm.aembedding(model=resolved, input=texts, timeout=self.timeout_s,
                                                    max_retries=0, num_retries=0, drop_params=True, **params)),
                    timeout=self.timeout_s + 1.0)
            except TimeoutError:
                raise ProviderTimeoutError(f"no answer within {self.timeout_s:g} s", model=resolved,
                                           retryable=True) from None
            latency = time.perf_counter() - start
        with _our_conversion(resolved):
            vectors, usage = to_embeddings(response)
        return vectors, usage, latency

    def complete(self, messages: Sequence[Message] | Sequence[dict[str, Any]], model: str | None = None,
                 params: dict[str, Any] | None = None, **kwargs: Any) -> Completion:
        """Sync wrapper of :meth:`acomplete`, safe inside a running event loop (notebooks)."""
        return run_sync(self.acomplete(messages, model, params, **kwargs))

    def _notify(self, record: CallRecord) -> None:
        for observer in self.observers:
            try:
                observer(record)
            except Exception:  # an observer must never break the traced call
                continue

    async def _complete(self, msgs: list[Message], requested: str, resolved: str, params: dict[str, Any],
                        seed: int, key: str, meta: dict[str, Any], clock: list[float] | None = None) -> Completion:
        if self.cache is not None and self.cache_mode in ("read-write", "read-only"):
            looked_up = time.perf_counter()
            hit = self.cache.get(key)
            if hit is not None:
                # A replayed answer costs nothing now and takes the lookup's time; what it cost
                # and how long it took when it was recorded are kept beside, never as if paid.
                return Completion(**{**hit.__dict__, "model": requested, "cost_usd": 0.0,
                                     "latency_s": time.perf_counter() - looked_up,
                                     "recorded_cost_usd": hit.cost_usd, "recorded_latency_s": hit.latency_s})
            if self.cache_mode == "read-only":
                what = meta.get("prompt") or (msgs[-1].content[:60] if msgs else "(no messages)")
                raise CacheMissError(
                    f"replay mode: no cached response for {resolved} ({what}), key {key[:16]}",
                    key=key, hint="record it first with --cache read-write (needs the provider), "
                                  "or run with --cache off")
        if clock is not None:
            # The first provider call of a process imports LiteLLM (~2.5 s): that is process
            # start-up, not the call's latency, and it hid a real p50 jump in `traces drift`.
            load_litellm()
            clock[0] = time.time()
        budget = active_budget()
        reserved = 0.0
        if budget is not None and budget.limit is not None:  # reserve the worst case before sending
            reserved = await budget.acquire(worst_case_cost(resolved, msgs, params), f"a call to {resolved}")
        try:
            completion, attempts = await self._retrying(
                lambda: self._attempt(msgs, requested, resolved, params, seed), resolved)
        except BaseException:
            if budget is not None:
                budget.settle(reserved, 0.0)
            raise
        if budget is not None:
            budget.settle(reserved, completion.cost_usd)
        completion = Completion(**{**completion.__dict__, "cache_key": key, "attempts": attempts})
        if self.cache is not None and self.cache_mode in ("read-write", "refresh"):
            self.cache.put(key, completion)
        return completion

    async def _attempt(self, msgs: list[Message], requested: str, resolved: str,
                       params: dict[str, Any], seed: int) -> Completion:
        litellm = load_litellm()
        call_params = {k: v for k, v in params.items() if k not in ("stream",)}
        async with self._semaphore(resolved):
            pacer = self.pacers.get(resolved) or self.pacers.setdefault(
                resolved, Pacer(max_wait_s=self.retry.max_delay_s))
            reserved = await pacer.wait()  # immediate unless the provider has rate-limited us
            self.in_flight[resolved] = self.in_flight.get(resolved, 0) + 1
            self.max_in_flight[resolved] = max(self.max_in_flight.get(resolved, 0),
                                               self.in_flight[resolved])
            self.provider_calls += 1
            _count_call()
            start = time.perf_counter()
            try:
                with collect_own_errors() as own_errors, Lean(resolved):
                    response = await asyncio.wait_for(
                        noting_cause(litellm.acompletion(
                            model=resolved, messages=[m.to_dict() for m in msgs], seed=seed, timeout=self.timeout_s,
                            max_retries=0, num_retries=0, drop_params=True, **call_params)),
                        timeout=self._deadline())
            except TimeoutError:
                raise ProviderTimeoutError(f"no answer within {self.timeout_s:g} s", model=resolved,
                                           retryable=True) from None
            except Exception as exc:
                if getattr(exc, "status_code", None) == 429 or type(exc).__name__ == "RateLimitError":
                    pacer.throttled(retry_after(exc), reserved)
                if own_errors:  # our provider's own error, unwrapped from litellm's
                    raise own_errors[-1] from None
                raise
            finally:
                self.in_flight[resolved] -= 1
            latency = time.perf_counter() - start
            pacer.success()
        with _our_conversion(resolved):
            return _to_completion(response, requested, resolved, latency, params)
