"""Helpers shared by the tracing tests (imported as a plain module)."""

from __future__ import annotations

import time
from typing import Any

from llmops.llm.cache import request_key
from llmops.llm.client import CallRecord, LLMClient
from llmops.llm.types import Completion, Message, Usage


def prime(client: LLMClient, ref: str, inputs: dict[str, Any], *, text: str = "ok", model: str = "fake/echo",
          usage: tuple[int, int] = (12, 3), cost: float = 0.00042, repeat: int = 0) -> None:
    """Put the answer to a prompt call in the client's cache (no provider, no litellm import)."""
    from llmops.api import load_prompt

    pv = load_prompt(ref, client.settings)
    messages = pv.render(inputs)
    resolved, merged = client.resolve(model, pv.meta.params)
    key = request_key(resolved, messages, merged, client.settings.seed, repeat)
    assert client.cache is not None
    client.cache.put(key, Completion(text=text, model=model, resolved_model=resolved, usage=Usage(*usage),
                                     cost_usd=cost, latency_s=0.2, cache_key=key))


def record(*, text: str | None = "hello", error: Exception | None = None, model: str = "openai/gpt-4o-mini",
           messages: tuple[Message, ...] = (Message("user", "hi"),), params: dict[str, Any] | None = None,
           metadata: dict[str, Any] | None = None, duration: float = 0.25, usage: tuple[int, int] = (7, 2),
           cost: float = 0.0001, cached: bool = False) -> CallRecord:
    """A CallRecord as the client would report it (a cache hit costs $0 now and keeps ``cost`` as recorded)."""
    end = time.time()
    completion = None
    if text is not None:
        completion = Completion(text=text, model=model, resolved_model=model, usage=Usage(*usage),
                                cost_usd=0.0 if cached else cost, recorded_cost_usd=cost if cached else 0.0,
                                latency_s=duration, cached=cached)
    return CallRecord(messages=messages, model=model, resolved_model=model, params=dict(params or {}),
                      completion=completion, error=error,  # type: ignore[arg-type]
                      started_at=end - duration, ended_at=end, metadata=dict(metadata or {}))


PROMPT_META = {"prompt": "rag_answer@2", "prompt_name": "rag_answer", "prompt_version": 2,
               "prompt_hash": "ab" * 32, "prompt_inputs": {"question": "Where is Paris?"}}


def prime_messages(client: LLMClient, messages: list[Message], model: str, text: str,
                   params: dict[str, Any] | None = None) -> None:
    """Cache the answer to raw messages (e.g. a judge call) for ``model``."""
    resolved, merged = client.resolve(model, params)
    key = request_key(resolved, messages, merged, client.settings.seed, 0)
    assert client.cache is not None
    client.cache.put(key, Completion(text=text, model=model, resolved_model=resolved, usage=Usage(5, 1),
                                     cache_key=key))
