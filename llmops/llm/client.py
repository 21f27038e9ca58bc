"""The LLM client: the ONLY module that imports litellm.

Every call travels: response cache -> per-model concurrency limit -> litellm.acompletion (with
our retry policy, litellm's own retries off) -> error mapping -> cost -> observers (tracing).
A fully replayed run is answered by the cache and never imports litellm.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import datetime
import functools
import json
import logging
import re
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from llmops._async import run_sync
from llmops.config import CacheMode, Settings, apply_process_defaults, load_settings, secret_env_values
from llmops.errors import (
    AuthError,
    CacheMissError,
    LLMOpsError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    UserError,
)
from llmops.llm.cache import ResponseCache, request_key
from llmops.llm.retry import RetryPolicy
from llmops.llm.throttle import Pacer
from llmops.llm.types import Completion, Message, Usage

# Statuses worth another attempt: rate limits, server errors, timeouts, overload.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
_PROVIDER_KEYS = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "azure": ("AZURE_API_KEY", "AZURE_API_BASE"),
    "gemini": ("GEMINI_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "cohere": ("COHERE_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
}
_OUR_PROVIDERS = ("local", "fake")


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


_SECRET_PARAMS = frozenset({"api_key", "headers", "extra_headers", "aws_secret_access_key",
                            "azure_ad_token", "vertex_credentials"})


def public_params(params: dict[str, Any]) -> dict[str, Any]:
    """Params with credentials removed (safe for traces, stores and reports)."""
    return {k: v for k, v in params.items() if k not in _SECRET_PARAMS}


# ---- credentials never reach a log line -----------------------------------------------------
# litellm and the OpenAI/Anthropic SDKs log requests at DEBUG, custom headers included. Every
# client registers the credential values it may send; records of those libraries' loggers are
# scrubbed of them when created, so no handler (pytest's, a CI log, basicConfig) ever sees them.
_THIRD_PARTY_LOGGERS = ("LiteLLM", "litellm", "openai", "anthropic", "httpx", "httpcore")
_MIN_SECRET_LEN = 8
_log_secrets: frozenset[str] = frozenset()
_log_lock = threading.Lock()


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        # "Bearer <token>": the token alone may be logged too.
        return {value, value.split()[-1]} if " " in value.strip() else {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def register_log_secrets(values: set[str] | frozenset[str]) -> None:
    """Scrub these values from every record of litellm's and the provider SDKs' loggers."""
    global _log_secrets
    new = {v for v in values if len(v) >= _MIN_SECRET_LEN} - _log_secrets
    if not new:
        return
    with _log_lock:
        if not _log_secrets:
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                secrets = _log_secrets
                if secrets and record.name.startswith(_THIRD_PARTY_LOGGERS):
                    try:
                        text = record.getMessage()
                    except Exception:  # a malformed record is the logging module's to report
                        return record
                    scrubbed = text
                    for secret in secrets:
                        scrubbed = scrubbed.replace(secret, "[REDACTED]")
                    if scrubbed != text:
                        record.msg, record.args = scrubbed, ()
                return record

            logging.setLogRecordFactory(factory)
        _log_secrets = _log_secrets | new


def secret_param_values(params: dict[str, Any]) -> set[str]:
    """The credential values among call params (api_key, header values, ...)."""
    return set().union(*(_strings(v) for k, v in params.items() if k in _SECRET_PARAMS)) if params else set()


# ---- our own errors raised inside custom providers -----------------------------------------
# litellm wraps any exception of a custom handler in APIConnectionError (retryable) and its own
# error handling replaces ``__context__``; so a UserError for a missing GGUF file would be retried
# as a connection error. Handlers put their LLMOpsError in this per-call box instead.
_own_errors: contextvars.ContextVar[list[LLMOpsError] | None] = contextvars.ContextVar(
    "llmops_own_errors", default=None)


def _keep_own_error(err: LLMOpsError) -> None:
    box = _own_errors.get()
    if box is not None:
        box.append(err)


# ---- provider calls counted per context ------------------------------------------------------
# A runner opens a tally per unit; every provider call made in that context (the unit's own
# call, and judge or regeneration calls in the tasks it starts, which copy the context) adds
# one. A unit that made none was answered by the cache alone and costs nothing to redo.
_call_tally: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("llmops_call_tally", default=None)


@contextlib.contextmanager
def tally_provider_calls() -> Iterator[list[int]]:
    """Count the provider calls made inside the block (in this context): ``tally[0]``."""
    tally = [0]
    token = _call_tally.set(tally)
    try:
        yield tally
    finally:
        _call_tally.reset(token)


def _count_call() -> None:
    tally = _call_tally.get()
    if tally is not None:
        tally[0] += 1


# ---- litellm, imported once and lazily ---------------------------------------------------
_litellm_lock = threading.Lock()
_litellm_module: Any = None


def _litellm() -> Any:
    global _litellm_module
    with _litellm_lock:
        if _litellm_module is None:
            from llmops._runtime import after_heavy_import, before_heavy_import

            apply_process_defaults()
            paused = before_heavy_import()
            try:
                import litellm

                litellm.telemetry = False
                litellm.suppress_debug_info = True
                _register_providers(litellm)
                _install_lean_path(litellm)
            finally:
                after_heavy_import(paused)
            _litellm_module = litellm
    return _litellm_module


# ---- litellm's per-call work we already do ourselves ---------------------------------------
# On every call litellm prices the response with its full cost calculator (~20% of its per-call
# CPU here) and builds a standard logging payload for its success callbacks (~9%). We price with
# our cached lookup (cost_of) and trace through our own observers, so while none of litellm's
# own callbacks or budgets are configured, our calls skip both. Registering any litellm callback
# (or litellm.max_budget) brings the full path back, call by call.
_lean_call: contextvars.ContextVar[bool] = contextvars.ContextVar("llmops_lean_call", default=False)
_internal_call: contextvars.ContextVar[bool] | None = None
_CALLBACK_LISTS = ("callbacks", "success_callback", "failure_callback", "_async_success_callback",
                   "_async_failure_callback", "input_callback", "service_callback")


def _install_lean_path(litellm: Any) -> None:
    """Let calls made under :func:`_lean` skip litellm's cost calculation (no-op if its internals moved)."""
    global _internal_call
    try:
        from litellm._internal_context import is_internal_call
        from litellm.litellm_core_utils.litellm_logging import Logging
    except ImportError:  # another litellm layout: keep its full path
        return
    original = getattr(Logging, "response_cost_calculator", None)
    if original is None or getattr(original, "_llmops_lean", False):
        _internal_call = is_internal_call
        return

    @functools.wraps(original)
    def response_cost_calculator(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _lean_call.get():
            return None  # priced by cost_of from the usage, with our cached price lookup
        return original(self, *args, **kwargs)

    response_cost_calculator._llmops_lean = True  # type: ignore[attr-defined]
    Logging.response_cost_calculator = response_cost_calculator  # type: ignore[method-assign]
    _internal_call = is_internal_call


def _litellm_needs_full_path(litellm: Any) -> bool:
    """Whether the user configured litellm callbacks or budgets that want its cost and logging."""
    if getattr(litellm, "max_budget", 0):
        return True
    return any(getattr(litellm, name, None) for name in _CALLBACK_LISTS)


# litellm.acompletion hands its synchronous request setup (``completion(..., acompletion=True)``,
# which for these providers only builds the request and returns a coroutine) to the loop's default
# thread pool. The hop costs a thread switch, a self-pipe write and GIL hand-offs per call (~10% of
# a call's CPU here); for providers whose setup does no blocking I/O (static keys, no credential
# refresh), our calls run it inline instead. Anything else keeps the thread pool.
_INLINE_SETUP_PROVIDERS = frozenset({
    "openai", "anthropic", "groq", "mistral", "deepseek", "together_ai", "openrouter", "fireworks_ai",
    "xai", "cerebras", "perplexity", "hosted_vllm", "fake", "local"})
_inline_setup: contextvars.ContextVar[bool] = contextvars.ContextVar("llmops_inline_setup", default=False)
_loops_with_inline_setup: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


class _InlineSetupExecutor(concurrent.futures.ThreadPoolExecutor):
    """A loop's default executor that runs litellm's request setup of our calls inline."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[_T]:
        if _inline_setup.get() and _is_litellm_setup(fn):
            future: concurrent.futures.Future[_T] = concurrent.futures.Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # delivered to the awaiting call, like the pool would
                future.set_exception(exc)
            return future
        return super().submit(fn, *args, **kwargs)


def _is_litellm_setup(fn: Any) -> bool:
    """``partial(context.run, partial(litellm.main.completion, ...))``, as litellm.acompletion submits it."""
    inner = fn.args[0] if isinstance(fn, functools.partial) and fn.args else None
    main = sys.modules.get("litellm.main")
    return isinstance(inner, functools.partial) and main is not None and inner.func is getattr(main, "completion", None)


def _use_inline_setup(loop: asyncio.AbstractEventLoop) -> bool:
    """Install the inline-setup executor on ``loop`` unless it already has a default executor."""
    if loop in _loops_with_inline_setup:
        return True
    if getattr(loop, "_default_executor", True) is not None:  # someone's (or asyncio's) pool: keep it
        return False
    loop.set_default_executor(_InlineSetupExecutor(thread_name_prefix="llmops-litellm"))
    _loops_with_inline_setup.add(loop)
    return True


class _Lean:
    """Context manager for one call: skip litellm's cost and logging; inline its setup where safe.

    See the notes above on both.
    """

    __slots__ = ("_inline", "_resolved", "_tokens")

    def __init__(self, resolved: str) -> None:
        self._resolved = resolved
        self._tokens: tuple[contextvars.Token[bool], contextvars.Token[bool]] | None = None
        self._inline: contextvars.Token[bool] | None = None

    def __enter__(self) -> None:
        if _internal_call is not None and not _litellm_needs_full_path(_litellm_module):
            self._tokens = (_lean_call.set(True), _internal_call.set(True))
        provider = self._resolved.split("/", 1)[0] if "/" in self._resolved else ""
        if provider in _INLINE_SETUP_PROVIDERS and _use_inline_setup(asyncio.get_running_loop()):
            self._inline = _inline_setup.set(True)

    def __exit__(self, *exc: object) -> None:
        if self._tokens is not None and _internal_call is not None:
            _lean_call.reset(self._tokens[0])
            _internal_call.reset(self._tokens[1])
        if self._inline is not None:
            _inline_setup.reset(self._inline)


def _register_providers(litellm: Any) -> None:
    """Register ``local/`` and ``fake/`` as LiteLLM custom providers (the same door as any plugin)."""
    from litellm.llms.custom_llm import CustomLLM

    from llmops.llm import fake
    from llmops.llm.local import runtime

    def fill(model_response: Any, text: str, finish: str, prompt_tokens: int,
             completion_tokens: int, model: str) -> Any:
        model_response.choices[0].message.content = text
        model_response.choices[0].finish_reason = finish
        model_response.model = model
        model_response.usage = litellm.Usage(prompt_tokens=prompt_tokens,
                                             completion_tokens=completion_tokens,
                                             total_tokens=prompt_tokens + completion_tokens)
        return model_response

    def fake_error(model: str, step: fake.FakeError) -> Exception:
        import httpx

        headers = {"retry-after": str(step.retry_after)} if step.retry_after is not None else {}
        response = httpx.Response(step.status, headers=headers,
                                  request=httpx.Request("POST", "http://fake.invalid/v1/chat"))
        kwargs = {"message": step.message, "llm_provider": "fake", "model": model}
        by_status: dict[int, Any] = {
            401: litellm.AuthenticationError, 404: litellm.NotFoundError,
            429: litellm.RateLimitError, 503: litellm.ServiceUnavailableError,
            500: litellm.InternalServerError, 400: litellm.BadRequestError,
        }
        cls = by_status.get(step.status)
        error: Exception
        if cls is None:
            error = litellm.APIError(status_code=step.status, request=response.request, **kwargs)
        elif cls in (litellm.BadRequestError,):
            error = cls(**kwargs)
        else:
            error = cls(response=response, **kwargs)
        return error

    class _Local(CustomLLM):
        def completion(self, *args: Any, **kw: Any) -> Any:
            try:
                result = runtime().generate(kw["model"], kw["messages"], kw.get("optional_params") or {})
            except LLMOpsError as err:
                _keep_own_error(err)
                raise
            return fill(kw["model_response"], result.text, result.finish_reason, result.prompt_tokens,
                        result.completion_tokens, f"local/{kw['model']}")

        async def acompletion(self, *args: Any, **kw: Any) -> Any:
            return await asyncio.to_thread(self.completion, *args, **kw)

    class _Fake(CustomLLM):
        def _answer(self, kw: dict[str, Any], step: Any) -> Any:
            if isinstance(step, fake.FakeError):
                raise fake_error(kw["model"], step)
            reply = step if isinstance(step, fake.FakeReply) else fake.FakeReply(text=str(step))
            prompt_tokens = reply.prompt_tokens
            if prompt_tokens is None:
                prompt_tokens = sum(fake.count_tokens(str(m.get("content") or "")) for m in kw["messages"])
            completion_tokens = reply.completion_tokens
            if completion_tokens is None:
                completion_tokens = fake.count_tokens(reply.text)
            return fill(kw["model_response"], reply.text, reply.finish_reason, prompt_tokens,
                        completion_tokens, f"fake/{kw['model']}")

        def _step(self, kw: dict[str, Any]) -> Any:
            try:
                return fake.next_step(kw["model"], kw["messages"], kw.get("optional_params") or {})
            except LLMOpsError as err:  # a responder raised one of ours: keep it unwrapped
                _keep_own_error(err)
                raise

        def completion(self, *args: Any, **kw: Any) -> Any:
            step = self._step(kw)
            time.sleep(fake.blocking_delay(step))
            return self._answer(kw, step)

        async def acompletion(self, *args: Any, **kw: Any) -> Any:
            step = self._step(kw)
            await asyncio.sleep(fake.blocking_delay(step))
            return self._answer(kw, step)

    existing = [p for p in (litellm.custom_provider_map or []) if p.get("provider") not in _OUR_PROVIDERS]
    litellm.custom_provider_map = [*existing, {"provider": "local", "custom_handler": _Local()},
                                   {"provider": "fake", "custom_handler": _Fake()}]
    from litellm.utils import custom_llm_setup

    custom_llm_setup()  # type: ignore[no-untyped-call]


@functools.lru_cache(maxsize=4096)
def _prices(model: str) -> tuple[float, float] | None:
    """(input, output) USD per token from LiteLLM's local price map, looked up once per model.

    Cheaper than ``litellm.completion_cost`` on every call (~20% of litellm's per-call CPU).
    """
    if model.split("/", 1)[0] in _OUR_PROVIDERS:
        return (0.0, 0.0)
    cost_map = _litellm().model_cost
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        info = cost_map.get(name)
        if info and "input_cost_per_token" in info:
            return float(info.get("input_cost_per_token") or 0.0), float(info.get("output_cost_per_token") or 0.0)
    return None


PRICE_PARAMS = ("input_cost_per_token", "output_cost_per_token")


def cost_of(model: str, usage: Usage, params: dict[str, Any] | None = None) -> float:
    """USD cost of a call: the alias's own prices if set, else LiteLLM's local price map (else 0).

    ``input_cost_per_token`` / ``output_cost_per_token`` in a model alias's params price
    self-hosted or negotiated models (the same keys LiteLLM accepts for custom pricing).
    """
    if params and any(k in params for k in PRICE_PARAMS):
        return (usage.prompt_tokens * float(params.get("input_cost_per_token") or 0.0)
                + usage.completion_tokens * float(params.get("output_cost_per_token") or 0.0))
    prices = _prices(model)
    if prices is None:
        return 0.0
    return usage.prompt_tokens * prices[0] + usage.completion_tokens * prices[1]


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (``retry-after-ms``, ``retry-after`` seconds or date)."""
    headers: Any = getattr(exc, "litellm_response_headers", None)
    response = getattr(exc, "response", None)
    if headers is None and response is not None:
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        raw_ms = headers.get("retry-after-ms")
        if raw_ms is not None:
            return max(0.0, float(raw_ms) / 1000.0)
        raw = headers.get("retry-after")
    except (AttributeError, TypeError, ValueError):
        return None
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except (TypeError, ValueError):
        pass
    import email.utils  # only for this rare form: a replay need not import the email package

    try:  # the HTTP-date form: "Wed, 21 Oct 2026 07:28:00 GMT"
        when = email.utils.parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


# litellm repeats the class name: "RateLimitError: RateLimitError: OpenAIException - ...".
_REPEATED_PREFIX = re.compile(r"^(\w+): (?:\1: )+")
# What SDKs say when no key was configured at all (before any request is sent).
_MISSING_KEY = re.compile(
    r"missing credentials|api_key client option must be set|missing [\w ]*api[ _-]?key"
    r"|no api[ _-]?key (?:was )?(?:provided|found|set)", re.IGNORECASE)


def _clean_message(raw: str) -> str:
    text = raw.replace("litellm.", "").strip()
    return _REPEATED_PREFIX.sub(r"\1: ", text)


def missing_key_env_vars(model: str) -> tuple[str, ...]:
    """Environment variables that would carry the API key for ``model``'s provider."""
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    try:
        missing = _litellm().validate_environment(model=model).get("missing_keys") or []
    except Exception:  # litellm raises for models it cannot place; fall back to our table
        missing = []
    return tuple(missing) or _PROVIDER_KEYS.get(provider, ())


def map_exception(exc: BaseException, model: str) -> LLMOpsError:
    """Turn a litellm/openai/httpx exception into one of our errors (with retryability)."""
    if isinstance(exc, LLMOpsError):
        return exc
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    status = int(status) if isinstance(status, int) else None
    message = _clean_message(str(getattr(exc, "message", None) or exc)) or name
    if name == "AuthenticationError" or status in (401, 403):
        return AuthError(message, model=model, env_vars=missing_key_env_vars(model), status_code=status)
    if (status is None or status >= 500) and _MISSING_KEY.search(message):
        # The SDK refused to send the request (no key configured); litellm wraps that as a 500.
        return AuthError(f"no API key configured ({message})", model=model,
                         env_vars=missing_key_env_vars(model))
    if name == "BadRequestError" and "LLM Provider NOT provided" in message:
        return UserError(f"unknown model '{model}': LiteLLM cannot tell which provider serves it",
                         key=model, hint="use a LiteLLM model string with its provider "
                                         "(openai/gpt-4o-mini, anthropic/...), an alias from "
                                         "[tool.llmops.models], or local/smollm2")
    if name in ("Timeout", "TimeoutError") or isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return ProviderTimeoutError(message or "timed out", model=model, status_code=status,
                                    retryable=True)
    if name == "RateLimitError" or status == 429:
        return RateLimitError(message, model=model, status_code=429, retryable=True,
                              retry_after=_retry_after(exc))
    if name == "APIConnectionError":
        return ProviderError(message, model=model, status_code=None, retryable=True)
    if status is not None and status in RETRYABLE_STATUS:
        return ProviderError(message, model=model, status_code=status, retryable=True,
                             retry_after=_retry_after(exc))
    if name in ("ContextWindowExceededError", "BadRequestError", "NotFoundError",
                "UnsupportedParamsError", "UnprocessableEntityError"):
        return ProviderError(message, model=model, status_code=status, retryable=False)
    if name == "JSONDecodeError" or isinstance(exc, ValueError | KeyError | IndexError | TypeError):
        # A truncated or malformed body: worth one more try.
        return ProviderError(f"malformed provider response: {message}", model=model,
                             status_code=status, retryable=True)
    return ProviderError(f"{name}: {message}", model=model, status_code=status,
                         retryable=status is None or status >= 500)


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
        secrets = set().union(*(secret_param_values(a.params) for a in self.settings.models.values()))
        if self.settings.langfuse is not None:
            secrets.add(self.settings.langfuse.secret_key.get_secret_value())
        register_log_secrets(secrets | secret_env_values())

    def _deadline(self) -> float:
        """Hard limit of one attempt: the timeout plus a grace for litellm's own timeout to fire first.

        httpx timeouts are per read, so a server that trickles bytes never trips them; this one
        is total. The grace is proportional so that small test timeouts stay small.
        """
        return self.timeout_s + min(1.0, 0.25 * self.timeout_s)

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
        messages: Sequence[Message] | Sequence[dict[str, str]],
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
        msgs = [m if isinstance(m, Message) else Message(role=m["role"], content=m["content"])
                for m in messages]
        requested = model or self.settings.default_model
        resolved, merged = self.resolve(requested, params)
        if params and _SECRET_PARAMS.intersection(params):
            register_log_secrets(secret_param_values(params))
        seed = self.settings.seed if seed is None else seed
        meta = dict(metadata or {})
        started = time.time()
        key = request_key(resolved, msgs, merged, seed, repeat)
        try:
            completion = await self._complete(msgs, requested, resolved, merged, seed, key, meta)
        except LLMOpsError as err:
            if self.observers:
                self._notify(CallRecord(tuple(msgs), requested, resolved, public_params(merged), None, err,
                                        started, time.time(), meta))
            raise
        if self.observers:  # no record to build for nobody
            self._notify(CallRecord(tuple(msgs), requested, resolved, public_params(merged), completion, None,
                                    started, time.time(), meta))
        return completion

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
            cost = cost_of(resolved, usage)
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
            if not isinstance(err, ProviderError) or not err.retryable:
                raise err
            delay = self.retry.delay(attempt, err.retry_after)
            if not self.retry.allows(attempt, waited, delay):
                raise err
            await asyncio.sleep(delay)
            waited += delay

    async def _embed_attempt(self, texts: list[str], resolved: str,
                             params: dict[str, Any]) -> tuple[list[list[float]], Usage, float]:
        litellm = _litellm()
        async with self._semaphore(resolved):
            self.provider_calls += 1
            _count_call()
            start = time.perf_counter()
            try:
                response = await asyncio.wait_for(
                    litellm.aembedding(model=resolved, input=texts, timeout=self.timeout_s, max_retries=0,
                                       num_retries=0, drop_params=True, **params),
                    timeout=self.timeout_s + 1.0)
            except TimeoutError:
                raise ProviderTimeoutError(f"no answer within {self.timeout_s:g} s", model=resolved,
                                           retryable=True) from None
            latency = time.perf_counter() - start
        items = sorted(getattr(response, "data", None) or [], key=lambda item: int(_field(item, "index") or 0))
        vectors = [[float(x) for x in _field(item, "embedding")] for item in items]
        raw_usage = getattr(response, "usage", None)
        usage = Usage(prompt_tokens=int(getattr(raw_usage, "prompt_tokens", 0) or 0))
        return vectors, usage, latency

    def complete(self, messages: Sequence[Message] | Sequence[dict[str, str]], model: str | None = None,
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
                        seed: int, key: str, meta: dict[str, Any]) -> Completion:
        if self.cache is not None and self.cache_mode in ("read-write", "read-only"):
            hit = self.cache.get(key)
            if hit is not None:
                return Completion(**{**hit.__dict__, "model": requested})
            if self.cache_mode == "read-only":
                what = meta.get("prompt") or (msgs[-1].content[:60] if msgs else "(no messages)")
                raise CacheMissError(
                    f"replay mode: no cached response for {resolved} ({what}), key {key[:16]}",
                    key=key, hint="record it first with --cache read-write (needs the provider), "
                                  "or run with --cache off")
        completion, attempts = await self._retrying(
            lambda: self._attempt(msgs, requested, resolved, params, seed), resolved)
        completion = Completion(**{**completion.__dict__, "cache_key": key, "attempts": attempts})
        if self.cache is not None and self.cache_mode in ("read-write", "refresh"):
            self.cache.put(key, completion)
        return completion

    async def _attempt(self, msgs: list[Message], requested: str, resolved: str,
                       params: dict[str, Any], seed: int) -> Completion:
        litellm = _litellm()
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
            own_errors: list[LLMOpsError] = []
            box = _own_errors.set(own_errors)
            try:
                with _Lean(resolved):
                    response = await asyncio.wait_for(
                        litellm.acompletion(model=resolved, messages=[m.to_dict() for m in msgs], seed=seed,
                                            timeout=self.timeout_s, max_retries=0, num_retries=0,
                                            drop_params=True, **call_params),
                        timeout=self._deadline())
            except TimeoutError:
                raise ProviderTimeoutError(f"no answer within {self.timeout_s:g} s", model=resolved,
                                           retryable=True) from None
            except Exception as exc:
                if getattr(exc, "status_code", None) == 429 or type(exc).__name__ == "RateLimitError":
                    pacer.throttled(_retry_after(exc), reserved)
                if own_errors:  # our provider's own error, unwrapped from litellm's
                    raise own_errors[-1] from None
                raise
            finally:
                _own_errors.reset(box)
                self.in_flight[resolved] -= 1
            latency = time.perf_counter() - start
            pacer.success()
        return _to_completion(response, requested, resolved, latency, params)


def _field(item: Any, name: str) -> Any:
    """A field of a response item: litellm gives dicts for some providers and objects for others."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _to_completion(response: Any, requested: str, resolved: str, latency: float,
                   params: dict[str, Any] | None = None) -> Completion:
    choices = getattr(response, "choices", None)
    if not choices:
        raise ProviderError("the provider returned no choices", model=resolved, retryable=True)
    choice = choices[0]
    message = getattr(choice, "message", None)
    text = getattr(message, "content", None) if message is not None else None
    raw_usage = getattr(response, "usage", None)
    usage = Usage(prompt_tokens=int(getattr(raw_usage, "prompt_tokens", 0) or 0),
                  completion_tokens=int(getattr(raw_usage, "completion_tokens", 0) or 0))
    return Completion(text=text or "", model=requested, resolved_model=resolved,
                      finish_reason=getattr(choice, "finish_reason", None), usage=usage,
                      cost_usd=cost_of(resolved, usage, params), latency_s=latency)


def litellm_imported() -> bool:
    """Whether this process has imported litellm (replayed runs should not)."""
    return _litellm_module is not None

