"""A deterministic stand-in for a tool-calling model, so the support_agent suite runs offline.

It is scripted as the fake model ``fake/support-agent`` (``evaluator_modules`` imports this file
before a run) and reads the conversation the way a real model would be expected to: look the
order up first, refund only delivered orders, escalate when asked for a person. Point the suite's
``models:`` at a real model (``--model openai/gpt-4o-mini``) to test one; the scripted tool results
stay the same. ``--model local/smollm2`` runs the suite on the embedded model (grammar-constrained
tool calls, well formed, but mostly the wrong ones: the unit tests keep this stand-in).

``lookup`` is also used as a python-scripted tool by one case.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmops.llm import fake

MODEL = "fake/support-agent"
_ORDER = re.compile(r"\b([A-Z][0-9]{2,})\b")
ORDERS = {"F600": {"status": "delivered", "paid": 12.5}, "G700": {"status": "processing", "paid": 40}}


def lookup(order_id: str) -> dict[str, Any]:
    """A python-scripted lookup_order: a tiny in-memory order table."""
    return ORDERS.get(order_id, {"error": "not found"})


def _order_in(messages: list[dict[str, Any]]) -> str | None:
    for message in reversed(messages):
        if message["role"] == "user":
            found = _ORDER.search(str(message.get("content") or ""))
            if found:
                return found.group(1)
    return None


def _call(name: str, **arguments: Any) -> fake.FakeReply:
    return fake.FakeReply(tool_calls=(fake.FakeToolCall(name, arguments),))


def respond(messages: list[dict[str, Any]], params: dict[str, Any]) -> fake.FakeReply:
    """The next turn of the stand-in agent."""
    question = str(messages[-1].get("content") or "") if messages[-1]["role"] == "user" else ""
    latest = _last_user(messages)
    asks_refund = latest is not None and "refund" in str(latest.get("content") or "").lower()
    last = messages[-1]
    if last["role"] == "tool":
        result = _parse(last.get("content"))
        called = last.get("name") or ""
        order = _order_in(messages) or "your order"
        if called == "lookup_order":
            if not isinstance(result, dict) or "error" in result:
                return fake.FakeReply(f"I could not find order {order}. Could you check the number?")
            if asks_refund and result.get("status") == "delivered":
                return _call("refund", order_id=order, amount=result.get("paid", 0))
            if asks_refund:
                return fake.FakeReply(f"Order {order} is {result.get('status')}, so it cannot be refunded yet.")
            return fake.FakeReply(f"Order {order} is {result.get('status')}.")
        if called == "refund":
            return fake.FakeReply(f"Done: your refund for order {order} is on its way.")
        return fake.FakeReply("I have passed this to a human colleague, who will reply shortly.")
    lowered = question.lower()
    if any(word in lowered for word in ("human", "person", "manager", "ridiculous")):
        return _call("escalate", reason=question[:80])
    if any(word in lowered for word in ("thanks", "thank you", "bye")):
        return fake.FakeReply("You're welcome! Have a nice day.")
    order = _order_in(messages)
    if order is None:
        return fake.FakeReply("Could you share your order number? It looks like A100.")
    return _call("lookup_order", order_id=order)


def _last_user(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    users = [m for m in messages if m["role"] == "user"]
    return users[-1] if users else None


def _parse(content: Any) -> Any:
    try:
        return json.loads(str(content))
    except ValueError:
        return content



def is_order_id(arguments: Any) -> bool:
    """A python predicate on tool arguments (used by a ``tool-called`` assertion's ``where``)."""
    return isinstance(arguments, dict) and bool(_ORDER.fullmatch(str(arguments.get("order_id", ""))))


fake.script(MODEL, responder=respond)
