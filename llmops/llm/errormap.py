"""Provider failures (litellm's, the SDKs', httpx's) mapped to our errors, with retryability."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
from collections.abc import Awaitable
from typing import Any, TypeVar

from llmops.errors import (
    AuthError,
    LLMOpsError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    UserError,
)
from llmops.llm.loader import load_litellm

_T = TypeVar("_T")
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


def retry_after(exc: BaseException) -> float | None:
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
        missing = load_litellm().validate_environment(model=model).get("missing_keys") or []
    except Exception:  # litellm raises for models it cannot place; fall back to our table
        missing = []
    return tuple(missing) or _PROVIDER_KEYS.get(provider, ())


# Exceptions that carry a status a server really sent (httpx's and the SDKs').
_HTTP_ANSWERS = frozenset({"HTTPStatusError", "APIStatusError"})
# Transport failures by class name (httpx, the OpenAI/Anthropic SDKs, aiohttp), besides OSError.
_TIMEOUTS = frozenset({"TimeoutException", "APITimeoutError", "ServerTimeoutError"})
_CONNECTION = frozenset({"TransportError", "APIConnectionError", "ClientConnectionError", "ClientOSError"})


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from, outermost first (litellm wraps the SDK, which wraps httpx)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < 16:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _transport_failure(exc: BaseException) -> tuple[str, BaseException] | None:
    """``("timeout" | "refused" | "connection", innermost cause)`` when no HTTP answer came back.

    LiteLLM reports a refused connection as an ``InternalServerError`` with status 500 and a
    client-side timeout as a ``Timeout`` with status 408, although no server said either: the
    exception chain tells what really happened.
    """
    chain = _causes(exc)
    names = [{k.__name__ for k in type(e).__mro__} for e in chain]
    # LiteLLM's own classes subclass the OpenAI SDK's status errors whether or not a server answered.
    if any(n & _HTTP_ANSWERS and not type(e).__module__.startswith("litellm")
           for e, n in zip(chain, names, strict=True)):
        return None  # the server answered: its status is real
    innermost = chain[-1]
    if any(isinstance(e, TimeoutError) or n & _TIMEOUTS for e, n in zip(chain, names, strict=True)):
        return "timeout", innermost
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "refused", innermost
    if any(isinstance(e, OSError) or n & _CONNECTION for e, n in zip(chain, names, strict=True)):
        return "connection", innermost
    # The chain can be cut (an exception re-raised while another is handled gets that one as its
    # context). LiteLLM keeps a real answer's headers; without any, its 408 and 500 are its own.
    if type(exc).__module__.startswith("litellm") and not _answer_headers(exc):
        if type(exc).__name__ == "Timeout":
            return "timeout", exc
        if getattr(exc, "status_code", None) == 500 and "connection" in str(exc).lower():
            return "connection", exc
    return None


def _answer_headers(exc: BaseException) -> bool:
    """Whether LiteLLM's exception carries the headers of an HTTP answer."""
    if getattr(exc, "litellm_response_headers", None):
        return True
    response = getattr(exc, "response", None)
    return bool(getattr(response, "headers", None))


_NOTED = "_llmops_transport"


async def noting_cause(awaitable: Awaitable[_T]) -> _T:
    """Await ``awaitable``; if it fails, note on the exception what really happened, while its chain is whole.

    An exception that crosses a task boundary (``asyncio.wait_for`` runs its awaitable as a task)
    is re-raised in the awaiting frame, and there it takes whatever exception that frame's callers
    are handling as its ``__context__``: the chain that tells a refused connection from an HTTP
    500 is cut. Inside the task it is still whole.
    """
    try:
        return await awaitable
    except Exception as exc:
        with contextlib.suppress(AttributeError, TypeError):  # an exception class without a __dict__
            setattr(exc, _NOTED, _transport_failure(exc) or ())
        raise


def _transport_error(kind: str, cause: BaseException, message: str, model: str) -> ProviderError:
    detail = " ".join(_clean_message(str(cause)).split())[:300] or type(cause).__name__
    if kind == "timeout":
        return ProviderTimeoutError(f"timed out before the provider answered ({message})", model=model,
                                    retryable=True)
    if kind == "refused":
        return ProviderConnectionError(f"connection refused: nothing accepted the connection ({detail})",
                                       model=model, retryable=True)
    return ProviderConnectionError(f"connection failed ({type(cause).__name__}: {detail})", model=model,
                                   retryable=True)


def map_exception(exc: BaseException, model: str) -> LLMOpsError:
    """Turn a litellm/openai/httpx exception into one of our errors (with retryability).

    A failure without an HTTP answer (connection refused or reset, a timeout) is reported as
    such, with no status code, not as the 500 or 408 LiteLLM substitutes for it.
    """
    if isinstance(exc, LLMOpsError):
        return exc
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    status = int(status) if isinstance(status, int) else None
    message = _clean_message(str(getattr(exc, "message", None) or exc)) or name
    noted = getattr(exc, _NOTED, None)  # () when noted as "an HTTP answer", not a transport failure
    transport = _transport_failure(exc) if noted is None else (noted or None)
    if transport is not None and not _MISSING_KEY.search(message):
        kind, cause = transport
        return _transport_error(kind, cause, message, model)
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
                              retry_after=retry_after(exc))
    if name == "APIConnectionError":
        return ProviderError(message, model=model, status_code=None, retryable=True)
    if status is not None and status in RETRYABLE_STATUS:
        return ProviderError(message, model=model, status_code=status, retryable=True,
                             retry_after=retry_after(exc))
    if name in ("ContextWindowExceededError", "BadRequestError", "NotFoundError",
                "UnsupportedParamsError", "UnprocessableEntityError"):
        return ProviderError(message, model=model, status_code=status, retryable=False)
    if name == "JSONDecodeError" or isinstance(exc, ValueError | KeyError | IndexError | TypeError):
        # A truncated or malformed body: worth one more try.
        return ProviderError(f"malformed provider response: {message}", model=model,
                             status_code=status, retryable=True)
    return ProviderError(f"{name}: {message}", model=model, status_code=status,
                         retryable=status is None or status >= 500)

