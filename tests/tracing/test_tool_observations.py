"""Tool runs reach Langfuse as their own tool observations (the real SDK v5 against the local receiver)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops.config import Settings
from llmops.llm import fake
from llmops.llm.client import LLMClient
from llmops.llm.types import Message
from llmops.runner.engine import run_suite
from llmops.testing.langfuse_receiver import LangfuseReceiver, ReceivedSpan
from llmops.tracing import Tracer, TraceStore, observe
from llmops.tracing.langfuse_api import fetch_traces

SUITE = """\
name: agent
prompt: support_agent@1
models: [fake/agent]
max_steps: 4
cases:
  - id: refund
    inputs: {question: "Refund order B2 please"}
    tools:
      lookup_order: {when: {order_id: B2}, result: {status: delivered, paid: 20}}
      refund: approved
  - id: broken
    inputs: {question: "Where is order C3?"}
    tools:
      lookup_order: {python: "tests.tracing.test_tool_observations:broken_lookup"}
"""


def broken_lookup(order_id: str) -> Any:
    """A scripted python tool with a bug: its run is a tool observation marked as an error."""
    raise KeyError(order_id)


def agent(messages: list[dict[str, Any]], params: dict[str, Any]) -> fake.FakeReply:
    """Look the order up, refund it when asked, then answer with the last tool result."""
    question = next(m["content"] for m in messages if m["role"] == "user")
    order = question.split("order ")[1].split()[0].rstrip("?")
    results = [m for m in messages if m["role"] == "tool"]
    if not results:
        return fake.FakeReply(tool_calls=(fake.FakeToolCall("lookup_order", {"order_id": order}),))
    if "Refund" in question and len(results) == 1:
        paid = json.loads(results[0]["content"])["paid"]
        return fake.FakeReply(tool_calls=(fake.FakeToolCall("refund", {"order_id": order, "amount": paid}),))
    return fake.FakeReply(f"Done: {results[-1]['content']}")


def arrived(receiver: LangfuseReceiver, tracer: Tracer, n: int) -> list[ReceivedSpan]:
    assert tracer.flush(10)
    assert receiver.wait_for(lambda: len(receiver.spans) >= n, 10), receiver.requests
    return list(receiver.spans)


def test_agent_loop_tools_are_tool_observations(lf_settings: Settings, receiver: LangfuseReceiver,
                                                make_tracer: Any, project: Path) -> None:
    fake.script("fake/agent", responder=agent)
    (project / "evalsets" / "agent.yaml").write_text(SUITE, encoding="utf-8")
    tracer: Tracer = make_tracer(lf_settings)
    run = run_suite("agent", settings=lf_settings, client=LLMClient(lf_settings), progress=False, tracer=tracer)
    assert {r.case_id: r.status for r in run.results} == {"refund": "pass", "broken": "fail"}
    # refund: root, 3 generations, 2 tools; broken: root, 1 generation, 1 tool
    spans = arrived(receiver, tracer, 9)
    roots = {s.metadata["case_id"]: s for s in spans if s.parent_span_id is None}
    under = {case: sorted((s for s in spans if s.parent_span_id == root.span_id), key=lambda s: s.start_ns)
             for case, root in roots.items()}

    refund = under["refund"]
    assert [(s.observation_type, s.name) for s in refund] == [
        ("generation", "support_agent@1"), ("tool", "lookup_order"), ("generation", "support_agent@1"),
        ("tool", "refund"), ("generation", "support_agent@1")]
    lookup, pay = refund[1], refund[3]
    assert lookup.json_attr("langfuse.observation.input") == {"order_id": "B2"}
    assert lookup.json_attr("langfuse.observation.output") == {"paid": 20, "status": "delivered"}
    assert pay.json_attr("langfuse.observation.input") == {"order_id": "B2", "amount": 20}
    assert pay.attributes["langfuse.observation.output"] == "approved"
    # Each tool observation answers the call id its generation asked for, at that step.
    asked = refund[0].metadata["tool_calls"][0]
    assert lookup.metadata["tool_call_id"] == asked["id"] and lookup.metadata["step"] == 0
    assert pay.metadata["step"] == 1 and lookup.trace_id == roots["refund"].trace_id
    assert lookup.attributes["langfuse.trace.tags"] == ["suite:agent", f"run:{run.run_id}"]
    assert lookup.status_code != 2

    gen, failed = under["broken"]
    assert gen.observation_type == "generation" and failed.observation_type == "tool"
    assert failed.name == "lookup_order" and failed.json_attr("langfuse.observation.input") == {"order_id": "C3"}
    assert failed.attributes["langfuse.observation.level"] == "ERROR" and failed.status_code == 2
    assert failed.attributes["langfuse.observation.status_message"] == "'C3'"  # str(KeyError('C3'))

    # The local store keeps the same tool spans, by the same ids.
    local = TraceStore(lf_settings.path(lf_settings.trace_path)).trace(roots["refund"].trace_id)
    tools = [s for s in local.spans if s.kind == "tool"]
    assert sorted(s.span_id for s in tools) == sorted([lookup.span_id, pay.span_id])
    # Read back from Langfuse's API (`--source langfuse`), they are tool spans again.
    (remote,) = fetch_traces(lf_settings, [roots["refund"].trace_id])
    back = {s.span_id: s for s in remote.spans if s.kind == "tool"}
    assert set(back) == {lookup.span_id, pay.span_id}
    assert back[lookup.span_id].input == {"order_id": "B2"} and back[pay.span_id].output == "approved"


def test_observed_tool_functions_in_a_traced_conversation(lf_settings: Settings, receiver: LangfuseReceiver,
                                                          make_tracer: Any) -> None:
    """Production code: the app runs the tool itself, ``@observe(kind="tool")`` makes it a tool observation."""
    fake.script("fake/agent", responder=agent)
    tracer: Tracer = make_tracer(lf_settings)
    client = LLMClient(lf_settings, observers=[tracer])

    @observe(kind="tool", tracer=tracer)
    def lookup_order(order_id: str) -> dict[str, Any]:
        return {"status": "shipped", "paid": 9}

    @observe(name="chat", tracer=tracer)
    def chat(question: str) -> str:
        tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]
        convo = [Message("user", question)]
        first = client.complete(convo, "fake/agent", {"tools": tools})
        call = first.tool_calls[0]
        result = lookup_order(**call.arguments)
        convo += [first.message(), Message(role="tool", content=json.dumps(result), tool_call_id=call.id,
                                           name=call.name)]
        return client.complete(convo, "fake/agent", {"tools": tools}).text

    assert chat("Where is order A1?").startswith("Done:")
    spans = arrived(receiver, tracer, 4)
    root = next(s for s in spans if s.parent_span_id is None)
    children = sorted((s for s in spans if s.parent_span_id == root.span_id), key=lambda s: s.start_ns)
    assert [(s.observation_type, s.name) for s in children] == [
        ("generation", "completion"), ("tool", "test_observed_tool_functions_in_a_traced_conversation."
                                                "<locals>.lookup_order"), ("generation", "completion")]
    tool = children[1]
    assert tool.json_attr("langfuse.observation.input") == {"order_id": "A1"}
    assert tool.json_attr("langfuse.observation.output") == {"status": "shipped", "paid": 9}
    assert root.observation_type == "span"
