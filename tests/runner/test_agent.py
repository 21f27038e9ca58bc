"""Agent loops with scripted tools and the tool-use evaluators, through run_suite and the real LiteLLM path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmops.config import load_settings
from llmops.errors import EvalsetError
from llmops.llm import fake
from llmops.llm.client import LLMClient
from llmops.runner.engine import run_suite
from llmops.runner.store import RunStore
from llmops.testing import ProviderServer, Reply, ToolUse

PROMPT = """\
---
description: Support agent
inputs:
  question: {type: string}
tools:
  - name: lookup_order
    description: Find an order
    parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
  - name: refund
    description: Refund an order
    parameters: {type: object, properties: {order_id: {type: string}, amount: {type: number}}, required: [order_id]}
---
{% message "system" %}You are a support agent.{% endmessage %}
{% message "user" %}{{ question }}{% endmessage %}
"""

SUITE = """\
name: agent
prompt: agent@1
models: [{model}]
max_steps: 4
evaluators:
  - tool-args-valid
cases:
  - id: status
    inputs: {{question: "Where is order A1?"}}
    tools:
      lookup_order:
        - when: {{order_id: A1}}
          result: {{status: shipped}}
        - result: not found
    assert:
      - tool-called: {{tool: lookup_order, arguments: {{order_id: A1}}}}
      - no-tool-called: {{tools: [refund]}}
      - contains: {{value: shipped}}
  - id: refund
    inputs: {{question: "Refund order B2 please"}}
    tools:
      lookup_order: {{result: {{status: delivered, paid: 20}}}}
      refund: ok
    assert:
      - tool-sequence: {{tools: [lookup_order, refund]}}
      - tool-called: {{tool: refund, arguments_contain: {{order_id: B2}}, arguments_schema: {{required: [amount]}}}}
  - id: chat
    inputs: {{question: "Hello"}}
    assert:
      - no-tool-called
"""


def order_id(text: str) -> str:
    return text.rsplit("order ", 1)[1].split()[0].rstrip("?")


def agent_logic(messages: list[dict[str, Any]]) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """(text, tool calls) of a tiny scripted 'model' that reads the conversation."""
    question = next(m["content"] for m in messages if m["role"] == "user")
    results = [m for m in messages if m["role"] == "tool"]
    if "order" not in question:
        return "Hi! How can I help?", []
    oid = order_id(question)
    if not results:
        return "", [("lookup_order", {"order_id": oid})]
    if "Refund" in question and len(results) == 1:
        return "", [("refund", {"order_id": oid, "amount": json.loads(results[0]["content"])["paid"]})]
    return f"Done: {results[-1]['content']}", []


def fake_agent(messages: list[dict[str, Any]], params: dict[str, Any]) -> fake.FakeReply:
    text, calls = agent_logic(messages)
    return fake.FakeReply(text=text, tool_calls=tuple(fake.FakeToolCall(n, a) for n, a in calls))


def write_project(project: Path, model: str, suite: str = SUITE) -> Path:
    (project / "prompts" / "agent").mkdir(parents=True, exist_ok=True)
    (project / "prompts" / "agent" / "v1.jinja").write_text(PROMPT, encoding="utf-8")
    path = project / "evalsets" / "agent.yaml"
    path.write_text(suite.format(model=model), encoding="utf-8")
    return path


def check_run(run: Any, settings: Any) -> None:
    by_case = {r.case_id: r for r in run.results}
    assert {c: r.status for c, r in by_case.items()} == {"status": "pass", "refund": "pass", "chat": "pass"}, [
        (s.name, s.reason) for r in run.results for s in r.scores if s.status != "pass"]
    refund = by_case["refund"]
    assert [s.kind for s in refund.trajectory] == ["model", "tool", "model", "tool", "model"]
    assert refund.tool_names == ["lookup_order", "refund"] and refund.steps == 3
    assert refund.trajectory[1].text == '{"paid": 20, "status": "delivered"}'
    assert refund.output == "Done: ok"
    assert by_case["status"].output == 'Done: {"status": "shipped"}'
    assert by_case["chat"].trajectory == [] and by_case["chat"].steps == 1
    assert by_case["chat"].score("tool-args-valid").status == "unmeasured"  # type: ignore[union-attr]
    stored = RunStore(settings.path(settings.store_path)).load(run.run_id)
    again = {r.case_id: r for r in stored.results}["refund"]
    assert again.trajectory == refund.trajectory  # every step is in the run store


def test_agent_loop_with_scripted_tools_on_the_fake_provider(project: Path, settings: Any, client: Any) -> None:
    fake.script("fake/agent", responder=fake_agent)
    path = write_project(project, "fake/agent")
    run = run_suite(path, settings=settings, client=client, progress=False)
    check_run(run, settings)
    calls = fake.calls("fake/agent")
    assert len(calls) == 6  # status: 2 steps, refund: 3, chat: 1
    tool_msgs = [m for call in calls for m in call if m["role"] == "tool"]  # cases run concurrently
    assert {"role": "tool", "content": '{"status": "shipped"}', "tool_call_id": "call_0",
            "name": "lookup_order"} in tool_msgs
    replay = run_suite(path, settings=settings, client=client, progress=False)
    assert replay.manifest.provider_calls == 0  # every step replays from the cache
    check_run(replay, settings)


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_agent_loop_in_both_wire_formats(project: Path, wire: str) -> None:
    def respond(provider: str, messages: list[dict[str, Any]]) -> str | Reply:
        text, calls = agent_logic(messages)
        return Reply(text=text, tool_calls=tuple(ToolUse(n, a) for n, a in calls))

    with ProviderServer(api_key="sk-agent-123456789", responder=respond) as server:
        model = "openai/gpt-4o-mini" if wire == "openai" else "anthropic/claude-haiku-4-5-20251001"
        base = server.openai_base if wire == "openai" else server.anthropic_base
        models = {"srv": {"model": model, "params": {"api_base": base, "api_key": "sk-agent-123456789",
                                                     "max_tokens": 100}}}
        settings = load_settings(project, overrides={"models": models, "cache": "off"})
        path = write_project(project, "srv")
        run = run_suite(path, settings=settings, client=LLMClient(settings), progress=False)
        check_run(run, settings)
        assert len(server.requests) == 6


def test_max_steps_and_unscripted_calls_are_named_failures(project: Path, settings: Any, client: Any) -> None:
    def loops(messages: list[dict[str, Any]], params: dict[str, Any]) -> fake.FakeReply:
        return fake.FakeReply(tool_calls=(fake.FakeToolCall("lookup_order", {"order_id": "A1"}),))

    fake.script("fake/loop", responder=loops)
    suite = SUITE.replace("max_steps: 4", "max_steps: 3")
    run = run_suite(write_project(project, "fake/loop", suite), settings=settings, client=client, progress=False)
    by_case = {r.case_id: r for r in run.results}
    agent = by_case["status"].score("agent")
    assert agent is not None and agent.status == "fail" and agent.details["failure"] == "max_steps"
    assert "max_steps (3) reached" in agent.reason and by_case["status"].status == "fail"
    assert by_case["status"].steps == 3
    chat = by_case["chat"]  # no scripted tools: one call, no loop; the call is simply recorded
    assert chat.score("no-tool-called").status == "fail"  # type: ignore[union-attr]

    def other_order(messages: list[dict[str, Any]], params: dict[str, Any]) -> fake.FakeReply:
        return fake.FakeReply(tool_calls=(fake.FakeToolCall("refund", {"order_id": "Z9"}),))

    fake.reset()
    fake.script("fake/loop", responder=other_order)
    one_case = SUITE.split("  - id: refund")[0]
    run = run_suite(write_project(project, "fake/loop", one_case), settings=settings, client=client,
                    progress=False, repeat=2)
    score = run.results[0].score("agent")
    assert score is not None and score.details["failure"] == "unscripted_call"
    assert 'no scripted result for refund({"order_id": "Z9"})' in score.reason


def test_scripting_an_undeclared_tool_fails_before_any_call(project: Path, settings: Any, client: Any) -> None:
    suite = SUITE.replace("      refund: ok\n", "      refnud: ok\n")
    path = write_project(project, "fake/agent", suite)
    with pytest.raises(EvalsetError, match="scripts tool 'refnud', which agent@1 does not declare") as info:
        run_suite(path, settings=settings, client=client, progress=False)
    assert str(path) in str(info.value) and "declared tools: lookup_order, refund" in str(info.value)
    assert fake.calls("fake/agent") == []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cli = subprocess.run([sys.executable, "-m", "llmops", "run", str(path)], cwd=project, capture_output=True,
                         text=True, env=env, timeout=300)
    assert cli.returncode == 2, cli.stderr
    assert "refnud" in cli.stderr and "Traceback" not in cli.stderr


def test_structured_output_evaluator(project: Path, settings: Any, client: Any) -> None:
    (project / "prompts" / "extract").mkdir(parents=True)
    (project / "prompts" / "extract" / "v1.jinja").write_text(
        "---\ninputs:\n  text: {type: string}\nresponse_format:\n  type: object\n"
        "  properties: {status: {type: string, enum: [open, closed]}, items: {type: array}}\n"
        "  required: [status]\n---\nExtract: {{ text }}\n", encoding="utf-8")
    answers = {"a": '{"status": "open", "items": [{"sku": "X1"}]}', "b": '{"status": "lost"}', "c": "no json"}
    fake.script("fake/x", responder=lambda messages, params: answers[messages[-1]["content"][-1]])
    path = project / "evalsets" / "x.yaml"
    path.write_text("prompt: extract@1\nmodels: [fake/x]\nevaluators:\n"
                    "  - structured-output: {fields: {items.0.sku: X1}}\ncases:\n"
                    "  - {id: a, inputs: {text: a}}\n  - {id: b, inputs: {text: b}}\n"
                    "  - {id: c, inputs: {text: c}}\n", encoding="utf-8")
    run = run_suite(path, settings=settings, client=client, progress=False)
    reasons = {r.case_id: (r.status, r.scores[0].reason) for r in run.results}
    assert reasons["a"] == ("pass", "valid, 1 field(s) match")
    assert reasons["b"][0] == "fail" and "'lost' is not one of" in reasons["b"][1]
    assert reasons["c"][0] == "fail" and "not valid JSON" in reasons["c"][1]
    sent = fake.calls("fake/x")
    assert sent  # the response_format reached the provider as a param (checked on the request below)


def test_bad_tool_evaluator_params_are_evalset_errors() -> None:
    from llmops.evaluators.base import create_evaluator

    with pytest.raises(EvalsetError, match="arguments_schema is not a valid JSON Schema"):
        create_evaluator("tool-called", tool="f", arguments_schema={"type": "objekt"})
    with pytest.raises(EvalsetError, match="where: cannot import"):
        create_evaluator("tool-called", tool="f", where="no_such_module_xyz:check")
    with pytest.raises(EvalsetError, match="at least one tool"):
        create_evaluator("tool-sequence", tools=[])


def test_support_agent_example_runs_offline_from_a_fresh_folder(tmp_path: Path) -> None:
    """The example as a user runs it: a copy of the project, the CLI, output piped (no terminal)."""
    repo = Path(__file__).resolve().parents[2]
    for item in ("pyproject.toml", "prompts", "evalsets"):
        src = repo / item
        if src.is_dir():
            shutil.copytree(src, tmp_path / item)
        else:
            (tmp_path / item).write_bytes(src.read_bytes())
    env = {**os.environ, "PYTHONPATH": str(repo), "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-m", "llmops", "run", "evalsets/support_agent.yaml"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "pass rate 100.0% over 11 measured units" in out.stdout
    store = RunStore(tmp_path / ".llmops" / "runs.sqlite")
    (run_id,) = [m.run_id for m in store.runs()]
    refund = next(r for r in store.load(run_id).results if r.case_id == "refund-delivered")
    assert refund.tool_names == ["lookup_order", "refund"] and refund.steps == 3


def test_reports_show_the_trajectory(project: Path, settings: Any, client: Any) -> None:
    from llmops.reports.html import render_html
    from llmops.reports.markdown import render_markdown

    def loops(messages: list[dict[str, Any]], params: dict[str, Any]) -> fake.FakeReply:
        return fake.FakeReply(tool_calls=(fake.FakeToolCall("lookup_order", {"order_id": "<b>A1</b>"}),))

    fake.script("fake/loop", responder=loops)
    run = run_suite(write_project(project, "fake/loop", SUITE.split("  - id: refund")[0]), settings=settings,
                    client=client, progress=False)
    html = render_html(run)
    assert 'model: lookup_order({\\"order_id\\": \\"\\u003cb\\u003eA1\\u003c/b\\u003e\\"})' in html
    assert "<b>A1</b>" not in html  # model output is untrusted: never markup
    assert "tool lookup_order -\\u003e not found" in html
    md = render_markdown(run)
    assert "trajectory: model: lookup_order" in md and "max_steps (4) reached" in md


def test_compare_shows_tool_accuracy_steps_and_ttft(project: Path, settings: Any, client: Any) -> None:
    from llmops.compare import compare_run
    from llmops.reports.markdown import render_markdown

    fake.script("fake/agent", responder=fake_agent)
    run = run_suite(write_project(project, "fake/agent"), settings=settings, client=client, progress=False)
    (v,) = compare_run(run).variants
    assert v.tool_call_accuracy == 1.0  # every unit's tool-use scores passed
    assert v.steps_per_task == pytest.approx((2 + 3) / 2)  # the two agent cases: 2 and 3 model calls
    assert v.ttft_p50_s is None  # nothing was streamed
    assert "tool-call accuracy" in render_markdown(run) and "steps/task" in render_markdown(run)

    fake.script("fake/s", responder=lambda messages, params: fake.FakeReply("streamed words here"))
    path = project / "evalsets" / "stream.yaml"
    path.write_text("prompt: agent@1\nmodels: [fake/s]\nparams: {stream: true}\ncases:\n"
                    "  - {id: a, inputs: {question: hi}}\n  - {id: b, inputs: {question: yo}}\n", encoding="utf-8")
    streamed = run_suite(path, settings=settings, client=client, progress=False)
    assert all(r.ttft_s is not None and r.output == "streamed words here" for r in streamed.results)
    (s,) = compare_run(streamed).variants
    assert s.ttft_p50_s is not None and s.ttft_p95_s is not None and s.ttft_p50_s <= s.ttft_p95_s
    assert "TTFT p50 ms" in render_markdown(streamed)


def test_traces_show_prints_the_trajectory(project: Path) -> None:
    """An agent suite run with local tracing; `llmops traces show` lists each step's tool calls."""
    repo = Path(__file__).resolve().parents[2]
    for item in ("prompts", "evalsets"):
        shutil.copytree(repo / item, project / item, dirs_exist_ok=True)
    text = (repo / "pyproject.toml").read_text(encoding="utf-8")
    (project / "pyproject.toml").write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(repo), "COLUMNS": "80", "LLMOPS_TRACING": "local"}
    run = subprocess.run([sys.executable, "-m", "llmops", "run", "evalsets/support_agent.yaml"], cwd=project,
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    listed = subprocess.run([sys.executable, "-m", "llmops", "traces", "list", "--json"], cwd=project,
                            capture_output=True, text=True, env=env, timeout=300)
    assert listed.returncode == 0, listed.stderr
    shown = []
    for trace_id in [t["trace_id"] for t in json.loads(listed.stdout)]:
        out = subprocess.run([sys.executable, "-m", "llmops", "traces", "show", trace_id], cwd=project,
                             capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        shown.append(out.stdout)
    refund = next(s for s in shown if "C300" in s and "→ refund" in s)
    assert "step 1" in refund and "step 3" in refund and '→ lookup_order({"order_id": "C300"})' in refund
