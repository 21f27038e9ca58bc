"""`llmops traces export` of a traced tool-calling conversation, played from outside: a fresh folder,
the user's application in its own process, then the commands as docs/tracing.md prints them (piped,
80 columns)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

# The user's application: a two-turn support chat that runs the tool the model asks for.
APP = '''
import json
import llmops
from llmops.llm import fake

ORDERS = {"A100": {"status": "shipped", "paid": 30}}

@llmops.observe(kind="tool")
def lookup_order(order_id: str) -> dict:
    return ORDERS[order_id]

# A scripted stand-in for the production model: a lookup, the answer, then a thank-you.
fake.script("fake/agent",
            fake.FakeReply(tool_calls=(fake.FakeToolCall("lookup_order", {"order_id": "A100"}, id="call_7"),)),
            fake.FakeReply("Order A100 is shipped."),
            fake.FakeReply("You are welcome!"))

@llmops.observe(name="support chat", session_id="chat-1")
def chat() -> None:
    history = []
    question = "Where is my order A100?"
    first = llmops.complete("support_agent@1", {"question": question}, model="fake/agent")
    call = first.tool_calls[0]
    result = lookup_order(**call.arguments)
    history += [{"role": "user", "content": question}, first.message().to_dict(),
                {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": json.dumps(result)}]
    answer = llmops.complete("support_agent@1", {"question": "Is it on its way?", "history": history},
                             model="fake/agent")
    history.append({"role": "assistant", "content": answer.text})
    llmops.complete("support_agent@1", {"question": "Thanks!", "history": history}, model="fake/agent")

chat()
'''


# What the application's history held when it made its second call (it appends to the list later).
history_at_2nd = [
    {"role": "user", "content": "Where is my order A100?"},
    {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_7", "type": "function",
        "function": {"name": "lookup_order", "arguments": '{"order_id": "A100"}'}}]},
    {"role": "tool", "tool_call_id": "call_7", "name": "lookup_order", "content": '{"status": "shipped", "paid": 30}'},
]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out


def test_traces_export_of_a_conversation_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\nversion = "0"\n\n[tool.llmops]\n'
                                             'default_model = "fake/agent"\ncache = "off"\n', encoding="utf-8")
    for item in ("support_agent", "tools"):
        shutil.copytree(REPO / "prompts" / item, tmp_path / "prompts" / item)
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "LANGFUSE_"))}
    env.update({"PYTHONPATH": str(REPO), "COLUMNS": "80", "LLMOPS_TRACING": "local"})
    run([sys.executable, "app.py"], tmp_path, env)

    listed = json.loads(run([sys.executable, "-m", "llmops", "traces", "list", "--json"], tmp_path, env).stdout)
    (trace,) = listed
    shown = run([sys.executable, "-m", "llmops", "traces", "show", trace["trace_id"]], tmp_path, env).stdout
    assert '→ lookup_order({"order_id": "A100"})' in shown  # the call the model asked for
    tool_line = next(i for i, line in enumerate(shown.splitlines()) if "lookup_order  tool" in line)
    below = [line.strip(" │") for line in shown.splitlines()[tool_line + 1:tool_line + 3]]
    assert below == ['in: {"order_id": "A100"}', 'out: {"status": "shipped", "paid": 30}']  # arguments, result

    exported = run([sys.executable, "-m", "llmops", "traces", "export", "--to", "evalsets/regressions.yaml",
                    "--prompt", "support_agent"], tmp_path, env).stdout
    assert "case(s) added" in exported
    data = yaml.safe_load((tmp_path / "evalsets" / "regressions.yaml").read_text(encoding="utf-8"))
    assert data["prompt"] == "support_agent@1" and data["models"] == ["fake/agent"]
    cases = {json.dumps(c["inputs"], sort_keys=True): c for c in data["cases"]}
    assert len(cases) == 3  # one case per turn of the conversation
    first = cases[json.dumps({"question": "Where is my order A100?"})]
    # The tool result production saw is scripted for the exact call, so the case replays offline.
    assert first["tools"] == {"lookup_order": [{"when": {"order_id": "A100"},
                                                "result": '{"status": "shipped", "paid": 30}'}]}
    assert first["metadata"]["trace_id"] == trace["trace_id"]
    second = cases[json.dumps({"question": "Is it on its way?", "history": history_at_2nd}, sort_keys=True)]
    assert second["metadata"]["production_output"] == "Order A100 is shipped."
    last = next(c for c in data["cases"] if c["inputs"].get("question") == "Thanks!")
    history = last["inputs"]["history"]  # the earlier turns, tool call and tool result included
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]
    assert history[0] == {"role": "user", "content": "Where is my order A100?"}
    assert history[1]["tool_calls"][0]["function"] == {"name": "lookup_order",
                                                       "arguments": '{"order_id": "A100"}'}
    assert history[2] == {"role": "tool", "tool_call_id": "call_7", "name": "lookup_order",
                          "content": '{"status": "shipped", "paid": 30}'}
    assert history[3] == {"role": "assistant", "content": "Order A100 is shipped."}
    assert last["metadata"]["production_output"] == "You are welcome!"

    # The exported suite is valid and loads back with its scripted tools.
    check = run([sys.executable, "-m", "llmops", "run", "evalsets/regressions.yaml", "--dry-run"], tmp_path, env)
    assert check.stdout.startswith("3 units: 3 provider calls")
