"""Agent loops with scripted tools: call the model, answer its tool calls, call again, to a final answer.

A suite case scripts each tool's results (:class:`ScriptedTool`), so a prompt that calls tools
runs deterministically and offline; the loop is bounded by ``max_steps`` model calls. Every
step (model call, tool result) is kept as a :class:`Step`: the run store saves them, reports
show them as the trajectory and evaluators can score them. Inside a trace, each tool's run is
also a ``tool`` span (a Langfuse tool observation: arguments in, result out) next to the
generations of the model calls.

Outcomes that are the model's fault (a tool it was not given, a call no script answers,
``max_steps`` reached) end the loop with a named ``failure``, recorded with the result, never
an exception.
"""

from __future__ import annotations

import importlib
import inspect
import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmops.llm.types import Completion, Message, ToolCall

if TYPE_CHECKING:
    from llmops.llm.client import LLMClient
    from llmops.tracing.observe import ActiveSpan

AgentFailure = Literal["max_steps", "undeclared_tool", "unscripted_call", "tool_error"]


class Step(BaseModel):
    """One step of a trajectory: a model call, or a tool's result.

    Attributes:
        kind: ``model`` (a call to the model) or ``tool`` (a scripted tool answered a call).
        text: The model's text, or the tool result as sent back to the model.
        tool_calls: A model step's tool calls (``id``, ``name``, ``arguments``, ``raw_arguments``, ``error``).
        name: A tool step's tool name.
        call_id: A tool step's call id.
        arguments: A tool step's parsed arguments.
        latency_s: A model step's provider latency (0 for a cache hit's replay time).
        cost_usd: A model step's cost.
        prompt_tokens: A model step's input tokens.
        completion_tokens: A model step's output tokens.
        cached: A model step answered by the response cache.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["model", "tool"]
    text: str = ""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    name: str | None = None
    call_id: str | None = None
    arguments: Any = None
    latency_s: float = 0.0
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False

    def calls(self) -> list[ToolCall]:
        """A model step's tool calls as :class:`ToolCall` values."""
        return [ToolCall.from_dict(c) for c in self.tool_calls]


def model_step(completion: Completion) -> Step:
    """The trajectory step of one model call."""
    return Step(kind="model", text=completion.text, tool_calls=[c.record() for c in completion.tool_calls],
                latency_s=completion.latency_s, cost_usd=completion.cost_usd,
                prompt_tokens=completion.usage.prompt_tokens,
                completion_tokens=completion.usage.completion_tokens, cached=completion.cached)


def trajectory_line(step: Step) -> str:
    """One step of a trajectory as a line of text: ``model: lookup_order({...})`` or ``tool lookup_order -> ...``."""
    if step.kind == "tool":
        return f"tool {step.name} -> {step.text[:300]}"
    calls = ", ".join(f"{c.get('name')}({c.get('raw_arguments')})" for c in step.tool_calls)
    text = step.text[:300]
    return "model: " + " | ".join(part for part in (calls, text) if part)


class ScriptedTool(BaseModel):
    """One scripted answer of a tool (suite files: a case's ``tools: {name: [...]}``).

    Attributes:
        when: Answer only calls whose arguments contain these key/values (None: any call).
        result: What the tool returns (text as is; anything else as JSON).
        python: ``module:function`` called with the arguments (as keywords) instead of ``result``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    when: dict[str, Any] | None = Field(default=None, description="Match calls whose arguments contain these")
    result: Any = Field(default=None, description="The tool's answer (text, or any JSON value)")
    python: str | None = Field(default=None, description="module:function computing the answer from the arguments")

    def matches(self, arguments: Any) -> bool:
        """Whether this script answers a call with ``arguments``."""
        if self.when is None:
            return True
        return isinstance(arguments, Mapping) and contains(arguments, self.when)


def contains(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` contains ``expected``: mappings by subset (recursively), other values by equality."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    return bool(actual == expected)


def load_function(path: str) -> Callable[..., Any]:
    """The callable at ``module:function`` (or ``module.function``).

    Raises:
        ValueError: naming the path when it is not importable or not callable.
    """
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"'{path}' is not a dotted path (module:function)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import '{module_name}': {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"'{module_name}' has no callable '{attr}'")
    return fn  # type: ignore[no-any-return]


@dataclass
class AgentRun:
    """The outcome of an agent loop.

    Attributes:
        completion: The last model completion (the final answer unless ``failure`` is set).
        steps: Every step, in order.
        failure: Why the loop stopped before a final answer (None when it reached one).
        reason: The failure, in words.
        messages: The conversation at the end (request messages, answers, tool results).
        completions: Every model completion, in order.
    """

    completion: Completion
    steps: list[Step]
    failure: AgentFailure | None = None
    reason: str = ""
    messages: list[Message] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


async def _answer(call: ToolCall, scripts: Sequence[ScriptedTool],
                  functions: Mapping[str, Callable[..., Any]]) -> str | None:
    for script in scripts:
        if not script.matches(call.arguments):
            continue
        if script.python is None:
            return _as_text(script.result)
        fn = functions[script.python]
        args = call.arguments if isinstance(call.arguments, Mapping) else {}
        value = fn(**args)
        if inspect.isawaitable(value):
            value = await value
        return _as_text(value)
    return None


def _tool_span(call: ToolCall, step: int) -> AbstractContextManager[ActiveSpan | None]:
    """The tool's run as a ``tool`` span of the current trace (a Langfuse tool observation).

    Only inside a trace (an eval unit's, or the application's ``@observe``): a loop nobody traces
    starts no trace of its own for its tools.
    """
    from llmops.tracing.observe import current_span, span

    if current_span() is None:
        return nullcontext(None)
    arguments = call.arguments if call.error is None else call.raw_arguments
    return span(call.name, kind="tool", input=arguments, metadata={"tool_call_id": call.id, "step": step})


def _traced_result(result: str) -> Any:
    """A tool result as traced: its JSON value when it is JSON (Langfuse shows it as an object), else the text."""
    try:
        return json.loads(result)
    except ValueError:
        return result


async def run_agent(client: LLMClient, messages: Sequence[Message], model: str | None, params: dict[str, Any],
                    *, tools: Mapping[str, Sequence[ScriptedTool]], declared: Sequence[str], max_steps: int,
                    seed: int | None = None, repeat: int = 0,
                    metadata: dict[str, Any] | None = None) -> AgentRun:
    """Run the model with scripted tools until it answers without calling one (or a bound is hit).

    Args:
        client: The LLM client (every model call is cached, retried and traced as usual).
        messages: The rendered request.
        model: Alias or LiteLLM model string.
        params: Call params (the prompt's ``tools`` among them).
        tools: Scripted answers per tool name.
        declared: The tool names the prompt declares.
        max_steps: Most model calls.
        seed: Sampling seed.
        repeat: Repeat index (part of each call's cache key).
        metadata: Passed to observers; ``step`` is added per call.

    Raises:
        LLMOpsError: a provider failure (as from :meth:`LLMClient.acomplete`).
    """
    functions = {s.python: load_function(s.python) for scripts in tools.values() for s in scripts if s.python}
    convo = list(messages)
    steps: list[Step] = []
    completions: list[Completion] = []
    meta = dict(metadata or {})
    for index in range(max_steps):
        completion = await client.acomplete(convo, model, params, seed=seed, repeat=repeat,
                                            metadata={**meta, "step": index})
        completions.append(completion)
        steps.append(model_step(completion))
        if not completion.tool_calls:
            return AgentRun(completion, steps, messages=[*convo, completion.message()], completions=completions)
        convo.append(completion.message())
        for call in completion.tool_calls:
            if call.name not in declared:
                return AgentRun(completion, steps, "undeclared_tool",
                                f"the model called '{call.name}', which the prompt does not declare "
                                f"(declared: {', '.join(declared) or 'none'})", convo, completions)
            started = time.perf_counter()
            with _tool_span(call, index) as traced:
                try:
                    result = await _answer(call, tools.get(call.name, ()), functions)
                except Exception as exc:  # a scripted python tool's bug is the case's failure, named
                    reason = f"scripted tool '{call.name}' raised {type(exc).__name__}: {exc}"
                    if traced is not None:
                        traced.fail(exc)
                    return AgentRun(completion, steps, "tool_error", reason, convo, completions)
                if result is None:
                    reason = f"no scripted result for {call.name}({call.raw_arguments})"
                    if traced is not None:
                        traced.fail(reason)
                    return AgentRun(completion, steps, "unscripted_call", reason, convo, completions)
                if traced is not None:
                    traced.update(output=_traced_result(result))
            steps.append(Step(kind="tool", text=result, name=call.name, call_id=call.id, arguments=call.arguments,
                              latency_s=time.perf_counter() - started))
            convo.append(Message(role="tool", content=result, tool_call_id=call.id, name=call.name))
    last = completions[-1]
    names = ", ".join(c.name for c in last.tool_calls)
    return AgentRun(last, steps, "max_steps",
                    f"max_steps ({max_steps}) reached: the model still called {names} at step {max_steps}",
                    convo, completions)
