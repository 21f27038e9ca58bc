"""Evaluators of tool use and structured output: which tools were called, with what, in which order.

They read :attr:`Sample.tool_calls` (every call of an agent loop, in order) and the tools and
``response_format`` the prompt declared; all are deterministic and local.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from llmops.errors import EvalsetError
from llmops.evaluators.base import EvalContext, Evaluator, Sample, Score, register_evaluator
from llmops.llm.agent import contains, load_function
from llmops.llm.types import ToolCall


def _validator(schema: Any, key: str) -> Any:
    import jsonschema

    if not isinstance(schema, dict):
        raise EvalsetError(f"{key} must be a JSON Schema mapping", key=key)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise EvalsetError(f"{key} is not a valid JSON Schema: {exc.message}", key=key) from None
    return jsonschema.Draft202012Validator(schema)


def _violation(validator: Any, value: Any) -> str | None:
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if not errors:
        return None
    where = "/".join(str(p) for p in errors[0].path) or "(root)"
    return f"{errors[0].message} (at {where})"


def _function(path: str | None, key: str) -> Callable[..., Any] | None:
    if path is None:
        return None
    try:
        return load_function(path)
    except ValueError as exc:
        raise EvalsetError(f"{key}: {exc}", key=key) from None


def _show(calls: list[ToolCall]) -> str:
    return ", ".join(f"{c.name}({c.raw_arguments})" for c in calls) or "no tool call"


@register_evaluator("tool-called")
class ToolCalled(Evaluator):
    """A tool was called: ``name``, and optionally its arguments.

    Parameters: ``arguments`` (equal), ``arguments_contain`` (a subset), ``arguments_schema``
    (a JSON Schema the arguments satisfy), ``where`` (``module:function`` taking the arguments and
    returning a bool), ``times`` (exact number of matching calls). Any one matching call passes.
    """

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    def __init__(self, *, tool: str, arguments: dict[str, Any] | None = None,
                 arguments_contain: dict[str, Any] | None = None, arguments_schema: dict[str, Any] | None = None,
                 where: str | None = None, times: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.tool, self.arguments, self.subset, self.times = tool, arguments, arguments_contain, times
        self.schema = _validator(arguments_schema, "arguments_schema") if arguments_schema is not None else None
        self.where = _function(where, "where")

    def _matches(self, call: ToolCall) -> bool:
        if call.name != self.tool:
            return False
        if self.arguments is not None and call.arguments != self.arguments:
            return False
        if self.subset is not None and not contains(call.arguments, self.subset):
            return False
        if self.schema is not None and (call.arguments is None or _violation(self.schema, call.arguments)):
            return False
        return self.where is None or bool(self.where(call.arguments))

    async def score(self, sample: Sample, ctx: EvalContext) -> tuple[float, str]:
        """1 when a matching call was made (``times`` of them when set)."""
        calls = sample.tool_calls
        matching = [c for c in calls if self._matches(c)]
        if self.times is not None:
            ok = len(matching) == self.times
            return (1.0 if ok else 0.0), f"{len(matching)} matching call(s) of {self.tool}, expected {self.times}"
        if matching:
            return 1.0, f"called {_show(matching[:1])}"
        named = [c for c in calls if c.name == self.tool]
        if named:
            return 0.0, f"{self.tool} called with other arguments: {_show(named)}"
        return 0.0, f"{self.tool} not called (calls: {_show(calls)})"


@register_evaluator("tool-sequence")
class ToolSequence(Evaluator):
    """The tools called include ``tools`` in this order (``ordered: true``, default) or in any order.

    ``exact: true`` requires exactly this sequence, nothing else. Scores the fraction of the
    expected tools found (in order) when not exact.
    """

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    def __init__(self, *, tools: list[str], ordered: bool = True, exact: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        if not tools:
            raise EvalsetError("tool-sequence: tools must name at least one tool", key="tools")
        self.tools, self.ordered, self.exact = list(tools), ordered, exact

    async def score(self, sample: Sample, ctx: EvalContext) -> tuple[float, str]:
        """1 when the sequence is there."""
        names = [c.name for c in sample.tool_calls]
        shown = " -> ".join(names) or "no tool call"
        if self.exact:
            ok = names == self.tools if self.ordered else sorted(names) == sorted(self.tools)
            return (1.0 if ok else 0.0), f"called {shown}"
        if self.ordered:
            found, it = 0, iter(names)
            for want in self.tools:
                if any(name == want for name in it):
                    found += 1
                else:
                    break
        else:
            pool = list(names)
            found = 0
            for want in self.tools:
                if want in pool:
                    pool.remove(want)
                    found += 1
        how = "order" if self.ordered else "any order"
        return found / len(self.tools), f"{found}/{len(self.tools)} expected in {how}; called {shown}"


@register_evaluator("no-tool-called")
class NoToolCalled(Evaluator):
    """No tool was called (or none of ``tools``, when given)."""

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    def __init__(self, *, tools: list[str] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.tools = tools

    async def score(self, sample: Sample, ctx: EvalContext) -> tuple[float, str]:
        """1 when no (listed) tool was called."""
        calls = [c for c in sample.tool_calls if self.tools is None or c.name in self.tools]
        return (0.0, f"called {_show(calls)}") if calls else (1.0, "no tool called")


@register_evaluator("tool-args-valid")
class ToolArgsValid(Evaluator):
    """Every tool call names a declared tool and its arguments are JSON valid against its declared schema."""

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    async def score(self, sample: Sample, ctx: EvalContext) -> tuple[float, str] | Score:
        """The fraction of calls that are valid; unmeasured when there was no call."""
        calls = sample.tool_calls
        if not calls:
            return self.unmeasured("no tool call to check")
        schemas = {t["function"]["name"]: t["function"].get("parameters") or {} for t in sample.tools}
        problems: list[str] = []
        for call in calls:
            if call.name not in schemas:
                problems.append(f"{call.name}: not a declared tool")
            elif not call.valid_json:
                problems.append(f"{call.name}: arguments are not JSON ({call.raw_arguments[:60]!r})")
            else:
                issue = _violation(_validator(schemas[call.name], call.name), call.arguments)
                if issue:
                    problems.append(f"{call.name}: {issue}")
        good = len(calls) - len(problems)
        return good / len(calls), "; ".join(problems) or f"{len(calls)} call(s) valid"


def _at(data: Any, path: str) -> Any:
    """``data`` at a dotted path (``items.0.sku``); raises KeyError when absent."""
    value = data
    for part in path.split("."):
        if isinstance(value, list) and part.lstrip("-").isdigit():
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(path)
    return value


@register_evaluator("structured-output")
class StructuredOutput(Evaluator):
    """The output is JSON valid against the ``response_format`` schema (or ``schema``), with field checks.

    ``fields`` maps dotted paths to expected values (``status: shipped``, ``items.0.sku: A1``).
    """

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    def __init__(self, *, schema: dict[str, Any] | None = None, fields: dict[str, Any] | None = None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.validator = _validator(schema, "schema") if schema is not None else None
        self.fields = dict(fields or {})

    async def score(self, sample: Sample, ctx: EvalContext) -> tuple[float, str]:
        """1 when valid and every field matches."""
        from llmops.llm.types import structured_output
        from llmops.prompts.template import response_schema

        completion = sample.completion
        if completion is not None and completion.parsed is not None:
            data = completion.parsed
        else:
            data, error = structured_output(sample.output, {"type": "json_object"})
            if error:
                return 0.0, error
        validator = self.validator
        if validator is None:
            schema = response_schema(sample.response_format)
            validator = _validator(schema, "response_format") if schema is not None else None
        if validator is not None:
            issue = _violation(validator, data)
            if issue:
                return 0.0, f"schema violation: {issue}"
        wrong: list[str] = []
        for path, expected in self.fields.items():
            try:
                actual = _at(data, path)
            except (KeyError, IndexError):
                wrong.append(f"{path}: missing")
                continue
            if actual != expected:
                wrong.append(f"{path}: {json.dumps(actual)} != {json.dumps(expected)}")
        if wrong:
            return 0.0, "; ".join(wrong)
        return 1.0, "valid" + (f", {len(self.fields)} field(s) match" if self.fields else "")
