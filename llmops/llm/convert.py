"""From a provider's response, as litellm gives it, to our :class:`Completion`.

Kept apart from the client so the client is only cache, limits, retries and observers. A failure
while reading a response litellm accepted is ours (:func:`our_conversion`), never retried as a
malformed provider response.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from llmops.errors import InternalError, LLMOpsError, ProviderError
from llmops.llm.pricing import cost_of
from llmops.llm.types import Completion, ToolCall, Usage, structured_output

__all__ = ["our_conversion", "to_completion", "to_embeddings", "tool_calls_of"]


@contextlib.contextmanager
def our_conversion(resolved: str) -> Iterator[None]:
    """Our own reading of a response that litellm accepted: a failure here is our bug, not the provider's.

    Without this, a ``TypeError`` in our code would be mapped to a retryable "malformed provider
    response" and retried (paid again) like a truncated body.
    """
    try:
        yield
    except LLMOpsError:
        raise
    except Exception as exc:
        raise InternalError(f"{resolved}: reading the response failed in llmops itself "
                            f"({type(exc).__name__}: {exc})",
                            hint="this is a bug in llmops; please report it with this message") from exc


def _field(item: Any, name: str) -> Any:
    """A field of a response item: litellm gives dicts for some providers and objects for others."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def to_completion(response: Any, requested: str, resolved: str, latency: float,
                  params: dict[str, Any] | None = None) -> Completion:
    """Our :class:`Completion` of a chat response: text, usage, cost, tool calls and parsed output."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise ProviderError("the provider returned no choices", model=resolved, retryable=True)
    choice = choices[0]
    message = getattr(choice, "message", None)
    text = getattr(message, "content", None) if message is not None else None
    raw_usage = getattr(response, "usage", None)
    usage = Usage(prompt_tokens=int(getattr(raw_usage, "prompt_tokens", 0) or 0),
                  completion_tokens=int(getattr(raw_usage, "completion_tokens", 0) or 0))
    calls = tool_calls_of(getattr(message, "tool_calls", None) if message is not None else None)
    parsed, parse_error = structured_output(text or "", (params or {}).get("response_format"))
    return Completion(text=text or "", model=requested, resolved_model=resolved,
                      finish_reason=getattr(choice, "finish_reason", None), usage=usage,
                      cost_usd=cost_of(resolved, usage, params), latency_s=latency, tool_calls=calls,
                      parsed=parsed, parse_error=parse_error)


def tool_calls_of(raw_calls: Any) -> tuple[ToolCall, ...]:
    """Our :class:`ToolCall` values from a response message's ``tool_calls`` (objects or dicts)."""
    calls: list[ToolCall] = []
    for index, raw in enumerate(raw_calls or ()):
        fn = _field(raw, "function")
        arguments = _field(fn, "arguments") if fn is not None else None
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append(ToolCall.of(str(_field(raw, "id") or f"call_{index}"),
                                 str(_field(fn, "name") or "") if fn is not None else "", arguments))
    return tuple(calls)


def to_embeddings(response: Any) -> tuple[list[list[float]], Usage]:
    """The vectors of an embedding response, in input order, and its usage."""
    items = sorted(getattr(response, "data", None) or [], key=lambda item: int(_field(item, "index") or 0))
    vectors = [[float(x) for x in _field(item, "embedding")] for item in items]
    raw_usage = getattr(response, "usage", None)
    return vectors, Usage(prompt_tokens=int(getattr(raw_usage, "prompt_tokens", 0) or 0))
