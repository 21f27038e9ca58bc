"""Provider failures (litellm's, the SDKs', httpx's) mapped to our errors, with retryability."""

from __future__ import annotations

import asyncio
import datetime
import re
from typing import Any

from llmops.errors import AuthError, LLMOpsError, ProviderError, ProviderTimeoutError, RateLimitError, UserError
from llmops.llm.loader import load_litellm

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

