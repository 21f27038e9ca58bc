"""Tool calls, tool results and structured output through the real LiteLLM path.

The provider double speaks each wire format (OpenAI ``tool_calls``, Anthropic ``tool_use`` /
``tool_result`` blocks); the fake provider answers tool calls through LiteLLM's custom-provider door.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmops.config import ModelAlias, Settings
from llmops.llm import fake
from llmops.llm.client import LLMClient
from llmops.llm.types import Completion, Message, ToolCall
from llmops.testing import ProviderServer, Reply, ToolUse

KEY = "sk-test-tools-0123456789"
OPENAI = "openai/gpt-4o-mini"
ANTHROPIC = "anthropic/claude-haiku-4-5-20251001"
BOTH = pytest.mark.parametrize("alias", ["oai", "claude"])
TOOLS = [{"type": "function", "function": {
    "name": "lookup_order", "description": "Find an order by id",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]
ASK = [{"role": "user", "content": "Where is order A17?"}]


@pytest.fixture
def server() -> Any:
    with ProviderServer(api_key=KEY) as srv:
        yield srv


def make_client(settings: Settings, server: ProviderServer, **kwargs: Any) -> LLMClient:
    models = {"oai": ModelAlias(model=OPENAI, params={"api_base": server.openai_base, "api_key": KEY}),
              "claude": ModelAlias(model=ANTHROPIC, params={"api_base": server.anthropic_base, "api_key": KEY})}
    return LLMClient(settings.model_copy(update={"models": models}), cache_mode=kwargs.pop("cache_mode", "off"),
                     **kwargs)


@BOTH
def test_tool_call_comes_back_parsed(settings: Settings, server: ProviderServer, alias: str) -> None:
    server.responder = lambda provider, messages: Reply(tool_calls=(ToolUse("lookup_order", {"order_id": "A17"}),))
    done = make_client(settings, server).complete(ASK, alias, {"tools": TOOLS, "max_tokens": 50})
    assert done.finish_reason == "tool_calls"
    (call,) = done.tool_calls
    assert call.name == "lookup_order" and call.arguments == {"order_id": "A17"} and call.valid_json
    assert call.id.startswith("call_" if alias == "oai" else "toolu_")
    body = server.requests[0].body
    sent = body["tools"][0]
    name = sent["function"]["name"] if alias == "oai" else sent["name"]  # each wire format's own tool shape
    assert name == "lookup_order"


def test_malformed_tool_arguments_keep_the_raw_string(settings: Settings, server: ProviderServer) -> None:
    server.responder = lambda provider, messages: Reply(tool_calls=(ToolUse("lookup_order", '{"order_id": "A1'),))
    done = make_client(settings, server).complete(ASK, "oai", {"tools": TOOLS})
    (call,) = done.tool_calls
    assert call.arguments is None and not call.valid_json
    assert call.raw_arguments == '{"order_id": "A1' and call.error and "JSONDecodeError" in call.error


@BOTH
def test_tool_result_round_trip_in_both_wire_formats(settings: Settings, server: ProviderServer, alias: str) -> None:
    seen: list[list[dict[str, Any]]] = []

    def respond(provider: str, messages: list[dict[str, Any]]) -> str | Reply:
        seen.append(messages)
        if messages[-1]["role"] == "tool":
            return f"Order is {messages[-1]['content']}"
        return Reply(text="Let me check.", tool_calls=(ToolUse("lookup_order", {"order_id": "A17"}),))

    server.responder = respond
    client = make_client(settings, server)
    first = client.complete(ASK, alias, {"tools": TOOLS, "max_tokens": 50})
    (call,) = first.tool_calls
    convo = [Message.from_dict(ASK[0]), first.message(),
             Message(role="tool", content="shipped", tool_call_id=call.id, name=call.name)]
    final = client.complete(convo, alias, {"tools": TOOLS, "max_tokens": 50})
    assert final.text == "Order is shipped" and final.tool_calls == ()
    # The double saw the assistant's call and the tool's answer, whichever wire format carried them.
    assistant = seen[1][-2]
    assert assistant["role"] == "assistant" and assistant["tool_calls"][0]["id"] == call.id
    assert seen[1][-1] == {"role": "tool", "tool_call_id": call.id, "content": "shipped"}


@BOTH
def test_structured_output_is_parsed(settings: Settings, server: ProviderServer, alias: str) -> None:
    server.responder = lambda provider, messages: '{"status": "shipped", "days": 2}'
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": {
        "type": "object", "properties": {"status": {"type": "string"}, "days": {"type": "integer"}}}}}
    done = make_client(settings, server).complete(ASK, alias, {"response_format": fmt, "max_tokens": 50})
    assert done.parsed == {"status": "shipped", "days": 2} and done.parse_error is None


def test_structured_output_that_is_not_json_is_named(settings: Settings, server: ProviderServer) -> None:
    server.responder = lambda provider, messages: "shipped, in two days"
    done = make_client(settings, server).complete(ASK, "oai", {"response_format": {"type": "json_object"}})
    assert done.parsed is None and done.parse_error and "not valid JSON" in done.parse_error


def test_fake_provider_tool_calls_through_litellm(client: LLMClient) -> None:
    fake.script("fake/agent", fake.FakeReply(tool_calls=(fake.FakeToolCall("lookup_order", {"order_id": "B2"}),
                                                          fake.FakeToolCall("refund", "not json", id="c9"))))
    done = client.complete(ASK, "fake/agent", {"tools": TOOLS})
    assert done.finish_reason == "tool_calls" and done.text == ""
    assert [(c.id, c.name, c.arguments) for c in done.tool_calls] == [
        ("call_0", "lookup_order", {"order_id": "B2"}), ("c9", "refund", None)]
    assert done.tool_calls[1].raw_arguments == "not json"


def test_tool_calls_survive_the_cache(client: LLMClient) -> None:
    fake.script("fake/agent", fake.FakeReply(tool_calls=(fake.FakeToolCall("lookup_order", {"order_id": "B2"}),)))
    first = client.complete(ASK, "fake/agent", {"tools": TOOLS})
    again = client.complete(ASK, "fake/agent", {"tools": TOOLS})
    assert again.cached and again.tool_calls == first.tool_calls


def test_tools_change_the_cache_key(client: LLMClient) -> None:
    fake.script("fake/m", "one", "two")
    assert client.complete(ASK, "fake/m", {"tools": TOOLS}).text == "one"
    other = [{**TOOLS[0], "function": {**TOOLS[0]["function"], "description": "Find an order"}}]
    assert client.complete(ASK, "fake/m", {"tools": other}).text == "two"


def test_completion_round_trips_through_dict() -> None:
    done = Completion(text="", model="m", resolved_model="fake/m", finish_reason="tool_calls",
                      tool_calls=(ToolCall.of("c1", "f", '{"a": 1}'), ToolCall.of("c2", "g", "{bad")),
                      parsed={"x": 0}, ttft_s=0.1, streamed=True)
    back = Completion.from_dict(json.loads(json.dumps(done.to_dict())))
    assert back == done
    plain = Completion(text="hi", model="m", resolved_model="fake/m")
    assert set(plain.to_dict()) == {"text", "model", "resolved_model", "finish_reason", "usage", "cost_usd",
                                    "latency_s", "cached", "cache_key", "attempts"}  # old rows unchanged


def test_message_from_dict_with_parts_and_tool_calls() -> None:
    msg = Message.from_dict({"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}]})
    assert msg.content == "What is in this picture?" and msg.parts is not None
    assert msg.to_dict()["content"][1]["type"] == "image_url"
    assistant = Message.from_dict({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]})
    assert assistant.tool_calls[0].arguments == {"a": 1}
    assert assistant.to_dict() == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}
    with pytest.raises(ValueError, match="content must be text"):
        Message.from_dict({"role": "user", "content": 3})


def test_embedded_model_prompt_keeps_tool_calls_and_results_readable() -> None:
    """What the embedded model is shown: tools in the system prompt, calls and results as turns."""
    from llmops.llm.local import _tool_chat

    tools = [{"type": "function", "function": {"name": "lookup_order", "description": "Find an order",
                                               "parameters": {"type": "object"}}}]
    convo = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is A1?"},
             {"role": "assistant", "content": None, "tool_calls": [
                 {"id": "c1", "type": "function", "function": {"name": "lookup_order",
                                                               "arguments": '{"order_id": "A1"}'}}]},
             {"role": "tool", "tool_call_id": "c1", "name": "lookup_order", "content": '{"status": "shipped"}'},
             {"role": "assistant", "content": "Shipped."}]
    offered = _tool_chat(convo, tools)
    assert offered[0]["role"] == "system" and offered[0]["content"].startswith("Be brief.\n\nYou can call")
    assert 'functions.lookup_order (Find an order), arguments: {"type":"object"}' in offered[0]["content"]
    assert offered[2:] == [
        {"role": "assistant", "content": 'functions.lookup_order:\n{"order_id": "A1"}'},
        {"role": "user", "content": 'functions.lookup_order returned: {"status": "shipped"}'},
        {"role": "assistant", "content": "message:\nShipped."}]
    # No tools on offer (tool_choice: none): no preamble, plain answers, the tool turns still readable.
    plain = _tool_chat(convo, [])
    assert plain[0] == {"role": "system", "content": "Be brief."} and plain[-1]["content"] == "Shipped."
    assert plain[3]["content"] == 'functions.lookup_order returned: {"status": "shipped"}'
    simple = [{"role": "user", "content": "hi"}]
    assert _tool_chat(simple, []) == simple  # a conversation without tools is sent as it was
