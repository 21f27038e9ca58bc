"""Streamed calls through the real LiteLLM path: both wire formats of the provider double, the fake provider."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import llmops
from llmops.config import ModelAlias, Settings
from llmops.errors import ProviderError, StreamCancelledError
from llmops.llm import fake
from llmops.llm.client import CallRecord, LLMClient
from llmops.llm.retry import RetryPolicy
from llmops.llm.streaming import Chunk
from llmops.testing import Fault, ProviderServer, Reply, ToolUse

KEY = "sk-test-stream-0123456789"
BOTH = pytest.mark.parametrize("alias", ["oai", "claude"])
ASK = [{"role": "user", "content": "Tell me a story"}]
STORY = "once upon a time there was a tiny model that streamed"


@pytest.fixture
def server() -> Any:
    with ProviderServer(api_key=KEY, responder=lambda provider, messages: STORY) as srv:
        yield srv


def make_client(settings: Settings, server: ProviderServer, **kwargs: Any) -> LLMClient:
    models = {"oai": ModelAlias(model="openai/gpt-4o-mini", params={"api_base": server.openai_base, "api_key": KEY}),
              "claude": ModelAlias(model="anthropic/claude-haiku-4-5-20251001",
                                   params={"api_base": server.anthropic_base, "api_key": KEY})}
    return LLMClient(settings.model_copy(update={"models": models}), cache_mode=kwargs.pop("cache_mode", "off"),
                     retry=RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=0.05), **kwargs)


async def collect(stream: Any) -> list[Chunk]:
    return [chunk async for chunk in stream]


@BOTH
def test_stream_chunks_then_the_full_completion(settings: Settings, server: ProviderServer, alias: str) -> None:
    records: list[CallRecord] = []
    client = make_client(settings, server, observers=[records.append])
    stream = client.astream(ASK, alias, {"max_tokens": 50})
    chunks = asyncio.run(collect(stream))
    assert len(chunks) == len(STORY.split()) and "".join(c.text for c in chunks) == STORY
    done = stream.completion
    assert done is not None and done.text == STORY and done.streamed and done.finish_reason == "stop"
    assert done.usage.completion_tokens == len(STORY.split()) and done.cost_usd > 0
    assert done.ttft_s is not None and 0 < done.ttft_s <= done.latency_s
    assert server.requests[0].body["stream"] is True
    assert len(records) == 1 and records[0].completion == done and records[0].error is None


@BOTH
def test_streamed_tool_calls_are_assembled(settings: Settings, server: ProviderServer, alias: str) -> None:
    server.responder = lambda provider, messages: Reply(tool_calls=(
        ToolUse("lookup_order", {"order_id": "A17", "verbose": True}), ToolUse("escalate", '{"why": "angry')))
    stream = make_client(settings, server).astream(ASK, alias, {"max_tokens": 50})
    chunks = asyncio.run(collect(stream))
    assert any(c.tool_calls for c in chunks)
    done = stream.completion
    assert done is not None and done.finish_reason == "tool_calls"
    first, second = done.tool_calls
    assert (first.name, first.arguments) == ("lookup_order", {"order_id": "A17", "verbose": True})
    # Malformed JSON arguments arrive verbatim (streamed, Anthropic carries them too) and are kept raw.
    assert second.name == "escalate" and second.arguments is None and second.raw_arguments == '{"why": "angry'


@BOTH
def test_a_stream_that_breaks_midway_is_a_provider_error(settings: Settings, server: ProviderServer,
                                                         alias: str) -> None:
    server.script(Fault.reset())
    stream = make_client(settings, server).astream(ASK, alias, {"max_tokens": 50})
    got: list[Chunk] = []

    async def consume() -> None:
        async for chunk in stream:
            got.append(chunk)

    with pytest.raises(ProviderError, match=r"the stream broke after \d+ chunk"):
        asyncio.run(consume())
    assert 0 < len(got) < len(STORY.split())
    assert len(server.requests) == 1  # the caller had part of the answer: not retried behind its back


def test_failures_before_the_first_chunk_are_retried(settings: Settings, client: LLMClient) -> None:
    fake.script("fake/s", fake.FakeError(503), fake.FakeReply("one two", break_after=0), fake.FakeReply("one two"))
    fast = LLMClient(client.settings, cache_mode="off", retry=RetryPolicy(max_retries=3, base_delay_s=0.01))
    stream = fast.astream(ASK, "fake/s")
    assert [c.text for c in asyncio.run(collect(stream))] == ["one ", "two"]
    assert stream.completion is not None and stream.completion.attempts == 3


def test_cache_replays_a_stream_as_a_stream(client: LLMClient) -> None:
    fake.script("fake/s", fake.FakeReply("alpha beta gamma", tool_calls=(fake.FakeToolCall("f", {"x": 1}),)))
    first = client.astream(ASK, "fake/s")
    live = asyncio.run(collect(first))
    again = client.astream(ASK, "fake/s")
    replay = asyncio.run(collect(again))
    assert [c.text for c in replay] == [c.text for c in live] == ["alpha ", "beta ", "gamma", ""]
    assert replay[-1].tool_calls[0]["name"] == "f"
    assert again.completion is not None and again.completion.cached
    assert again.completion.tool_calls[0].arguments == {"x": 1}
    assert again.completion.ttft_s == first.completion.ttft_s  # type: ignore[union-attr]
    assert len(fake.calls("fake/s")) == 1


def test_a_cancelled_stream_is_recorded_as_cancelled(settings: Settings, client: LLMClient) -> None:
    records: list[CallRecord] = []
    watched = LLMClient(client.settings, cache_mode="off", observers=[records.append])
    fake.script("fake/s", fake.FakeReply("a b c d e f", chunk_delay_s=0.01), fake.FakeReply("g h i j"))

    async def take_two() -> list[str]:
        stream = watched.astream(ASK, "fake/s")
        got = []
        async for chunk in stream:
            got.append(chunk.text)
            if len(got) == 2:
                break
        await stream.aclose()
        return got

    assert asyncio.run(take_two()) == ["a ", "b "]
    (record,) = records
    assert isinstance(record.error, StreamCancelledError) and record.error.chunks == 2
    assert record.completion is not None and record.completion.text == "a b "
    assert record.completion.finish_reason == "cancelled"
    # Sync iteration, stopped early the same way (the stream runs in a helper thread).
    for chunk in watched.stream(ASK, "fake/s"):
        assert chunk.text == "g "
        break
    assert isinstance(records[-1].error, StreamCancelledError) and records[-1].error.chunks >= 1


def test_sync_stream_of_a_prompt(project: Path, client: LLMClient) -> None:
    fake.script("fake/s", fake.FakeReply("streamed answer here"))
    stream = llmops.stream("rag_answer@2", {"question": "why?", "contexts": ["x"]}, model="fake/s", client=client)
    texts = [chunk.text for chunk in stream]
    assert texts == ["streamed ", "answer ", "here"]
    assert stream.completion is not None and stream.completion.text == "streamed answer here"


def test_ttft_recorded_matches_what_the_caller_sees(settings: Settings, server: ProviderServer) -> None:
    server.latency_s, server.chunk_delay_s = 0.05, 0.01
    client = make_client(settings, server)

    async def measure() -> tuple[float, Any]:
        stream = client.astream(ASK, "oai", {"max_tokens": 50})
        began = time.perf_counter()
        seen = None
        async for _ in stream:
            if seen is None:
                seen = time.perf_counter() - began
        assert seen is not None
        return seen, stream.completion

    asyncio.run(measure())  # litellm warm
    seen, done = asyncio.run(measure())
    assert done.ttft_s >= 0.05  # the double waited 50 ms before the first event
    assert done.ttft_s <= seen  # measured inside the call, never after the caller got the chunk
    assert done.tokens_per_s is not None and done.tokens_per_s > 0
