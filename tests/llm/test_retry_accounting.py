"""Issue 19 defects in the client: jitter as documented, our own bugs not retried, alias prices for embeddings."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

from llmops.config import ModelAlias
from llmops.errors import InternalError
from llmops.llm import retry as retry_module
from llmops.llm.client import LLMClient
from llmops.llm.retry import RetryPolicy


def test_backoff_is_the_documented_equal_jitter() -> None:
    assert "equal jitter" in (retry_module.__doc__ or "") and "full jitter" not in (retry_module.__doc__ or "")
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=100.0)
    rng = random.Random(0)
    for attempt in range(1, 6):
        step = 2.0 ** (attempt - 1)
        delays = [policy.delay(attempt, None, rng) for _ in range(500)]
        assert min(delays) >= step / 2 and max(delays) <= step  # never below half the step
        assert max(delays) - min(delays) > step / 4  # and really jittered


def test_a_bug_in_our_response_conversion_is_not_retried_as_a_provider_error(client: LLMClient,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops.llm import client as client_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("'NoneType' object is not subscriptable")

    monkeypatch.setattr(client_module, "_to_completion", broken)
    with pytest.raises(InternalError, match=r"bug in llmops|in llmops itself") as info:
        client.complete([{"role": "user", "content": "hi"}], model="fake/echo")
    assert "malformed provider response" not in str(info.value)
    assert client.provider_calls == 1  # one attempt: a bug is not paid for again


def test_embedding_cost_uses_the_alias_prices(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops.llm.loader import load_litellm

    litellm = load_litellm()

    async def aembedding(**kwargs: Any) -> Any:
        data = [{"index": i, "embedding": [0.1, 0.2]} for i, _ in enumerate(kwargs["input"])]
        return SimpleNamespace(data=data, usage=SimpleNamespace(prompt_tokens=1000))

    monkeypatch.setattr(litellm, "aembedding", aembedding)
    alias = ModelAlias(model="openai/selfhosted-embedder", params={"input_cost_per_token": 0.001})
    client = LLMClient(settings.model_copy(update={"models": {"emb": alias}}), cache_mode="off")
    from llmops._async import run_sync

    result = run_sync(client.aembed(["a", "b"], "emb"))
    assert result.cost_usd == pytest.approx(1.0)  # 1000 tokens x 0.001 (chat calls price the same way)
