"""Streamed calls and tool calls as traced generations: completion start time, tool calls, cancels."""

from __future__ import annotations

import asyncio
from typing import Any

from llmops.config import Settings
from llmops.llm import fake
from llmops.llm.client import LLMClient
from llmops.testing.langfuse_receiver import LangfuseReceiver
from llmops.tracing import Tracer, TraceStore


def test_streamed_tool_call_generation_reaches_langfuse(lf_settings: Settings, receiver: LangfuseReceiver,
                                                        make_tracer: Any) -> None:
    tracer: Tracer = make_tracer(lf_settings)
    client = LLMClient(lf_settings, cache_mode="off", observers=[tracer])
    fake.script("fake/s", fake.FakeReply("checking now", chunk_delay_s=0.01,
                                         tool_calls=(fake.FakeToolCall("lookup_order", {"order_id": "A1"}),)))

    async def consume() -> Any:
        stream = client.astream([{"role": "user", "content": "where is A1?"}], "fake/s")
        async for _ in stream:
            pass
        return stream.completion

    done = asyncio.run(consume())
    assert tracer.flush(10)
    assert receiver.wait_for(lambda: len(receiver.spans) >= 1, 10)
    (gen,) = receiver.spans
    assert gen.observation_type == "generation"
    assert gen.metadata["tool_calls"][0]["name"] == "lookup_order"
    assert gen.metadata["tool_calls"][0]["arguments"] == {"order_id": "A1"}
    assert gen.metadata["ttft_s"] == done.ttft_s
    assert "langfuse.observation.completion_start_time" in gen.attributes
    assert gen.json_attr("langfuse.observation.usage_details")["output"] == done.usage.completion_tokens


def test_cancelled_stream_is_a_recorded_generation(settings: Settings, make_tracer: Any) -> None:
    local = settings.model_copy(update={"tracing": "local"})
    tracer: Tracer = make_tracer(local)
    client = LLMClient(local, cache_mode="off", observers=[tracer])
    fake.script("fake/s", fake.FakeReply("one two three four", chunk_delay_s=0.01))

    async def take_one() -> None:
        stream = client.astream([{"role": "user", "content": "count"}], "fake/s")
        async for _ in stream:
            break
        await stream.aclose()

    asyncio.run(take_one())
    assert tracer.flush(10)
    store = TraceStore(local.path(local.trace_path))
    (gen,) = store.spans(kind="generation")
    assert gen.status == "error" and gen.error_type == "StreamCancelledError"
    assert gen.output == "one " and "after 1 chunk" in (gen.error or "")


def test_observe_on_generators_spans_the_whole_iteration(settings: Settings, make_tracer: Any) -> None:
    from llmops.tracing import observe

    local = settings.model_copy(update={"tracing": "local"})
    tracer: Tracer = make_tracer(local)
    client = LLMClient(local, cache_mode="off", observers=[tracer])
    fake.script("fake/s", responder=lambda messages, params: fake.FakeReply("alpha beta gamma"))

    @observe(tracer=tracer)
    async def answer(question: str) -> Any:
        stream = client.astream([{"role": "user", "content": question}], "fake/s")
        async for chunk in stream:
            yield chunk.text

    @observe(tracer=tracer)
    def words(n: int) -> Any:
        yield from ["one ", "two ", "three"][:n]

    async def consume() -> str:
        return "".join([text async for text in answer("hi")])

    assert asyncio.run(consume()) == "alpha beta gamma"
    assert list(words(3)) == ["one ", "two ", "three"]
    gen = words(3)
    next(gen)
    gen.close()  # the consumer stops early
    assert tracer.flush(10)
    store = TraceStore(local.path(local.trace_path))
    spans = {(s.name, s.kind, s.status): s for s in store.spans()}
    outer = next(s for (name, kind, _), s in spans.items() if name.endswith("answer") and kind == "span")
    inner = next(s for (_, kind, _), s in spans.items() if kind == "generation")
    assert outer.output == "alpha beta gamma" and inner.parent_id == outer.span_id
    assert outer.end_time >= inner.end_time  # the span closed after the stream, not at creation
    done = [s for (name, _, status), s in spans.items() if name.endswith("words") and status == "ok"]
    assert done and done[0].output == "one two three"
    cut = [s for (name, _, status), s in spans.items() if name.endswith("words") and status == "error"]
    assert cut and cut[0].error_type == "StreamCancelledError" and cut[0].output == "one "


def test_traced_tool_loop_exports_as_a_case_with_scripted_tools(project: Any, make_tracer: Any) -> None:
    """A production conversation that called a tool becomes a multi-turn case that replays offline."""
    from pathlib import Path

    import yaml

    import llmops
    from llmops.config import load_settings
    from llmops.evalsets.loader import load_suite
    from llmops.tracing import span
    from llmops.tracing.export import export_cases

    assert (Path(project) / "prompts" / "support_agent").is_dir()  # the project fixture copies the examples
    local = load_settings(project, overrides={"tracing": "local", "cache": "off"})
    tracer: Tracer = make_tracer(local)
    client = LLMClient(local, observers=[tracer])
    fake.script("fake/agent", fake.FakeReply(tool_calls=(fake.FakeToolCall("lookup_order", {"order_id": "A100"},
                                                                           id="call_7"),)),
                fake.FakeReply("Order A100 is shipped."))
    question = "Where is A100?"
    with span("support chat", tracer=tracer):
        first = llmops.complete("support_agent@1", {"question": question}, model="fake/agent", client=client)
        history = [{"role": "user", "content": question}, first.message().to_dict(),
                   {"role": "tool", "tool_call_id": "call_7", "content": '{"status": "shipped"}'}]
        llmops.complete("support_agent@1", {"question": "and now?", "history": history}, model="fake/agent",
                        client=client)
    assert tracer.flush(10)
    store = TraceStore(local.path(local.trace_path))
    (trace_id,) = {s.trace_id for s in store.spans()}
    suite = project / "evalsets" / "from_traces.yaml"
    export_cases([store.trace(trace_id)], suite)
    data = yaml.safe_load(suite.read_text(encoding="utf-8"))
    case = data["cases"][0]
    assert case["inputs"] == {"question": question}
    assert case["tools"] == {"lookup_order": [{"when": {"order_id": "A100"}, "result": '{"status": "shipped"}'}]}
    assert load_suite(suite).cases[0].tools["lookup_order"][0].when == {"order_id": "A100"}
