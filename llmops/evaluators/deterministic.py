"""Deterministic assertions: no model involved, same answer every time.

Each yields a value in [0, 1], pass/fail against its threshold, and a reason.
"""

from __future__ import annotations

import importlib
import json
import re
from typing import Any, ClassVar

from llmops.errors import EvalsetError
from llmops.evaluators.base import EvalContext, Evaluator, Sample, Score, register_evaluator


def _expected(value: Any, sample: Sample, kind: str) -> Any:
    if value is not None:
        return value
    if sample.expected is None:
        raise ValueError(f"{kind} needs 'value' or the case's 'expected'")
    return sample.expected


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


@register_evaluator("equals")
class Equals(Evaluator):
    """Output equals ``value`` (or the case's expected), after optional strip/lowercase."""

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    def __init__(self, *, value: str | None = None, ignore_case: bool = False, strip: bool = True,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.value, self.ignore_case, self.strip = value, ignore_case, strip

    def _norm(self, text: str) -> str:
        text = text.strip() if self.strip else text
        return text.lower() if self.ignore_case else text

    async def score(self, sample: Sample, ctx: EvalContext) -> tuple[float, str]:
        """1 when equal, else 0."""
        want = str(_expected(self.value, sample, "equals"))
        ok = self._norm(sample.output) == self._norm(want)
        return (1.0, "output equals the expected text") if ok else (0.0, f"expected {want!r}")


@register_evaluator("contains")
class Contains(Evaluator):
    """Output contains the value(s): ``mode: any`` (default) or ``all``; case-insensitive by default.

    The value is the fraction of the values found (``all``) or 1/0 (``any``).
    """

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0
    negate: ClassVar[bool] = False

    def __init__(self, *, value: str | list[str] | None = None, values: list[str] | None = None,
                 mode: str = "any", ignore_case: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        if mode not in ("any", "all"):
            raise EvalsetError(f"{self.kind}: mode must be 'any' or 'all', got {mode!r}", key="mode")
        self.values = values if values is not None else value
        self.mode, self.ignore_case = mode, ignore_case

    async def score(self, sample: Sample, ctx: EvalContext) -> tuple[float, str]:
        """See class docstring."""
        wanted = _as_list(_expected(self.values, sample, self.kind))
        text = sample.output.lower() if self.ignore_case else sample.output
        found = [w for w in wanted if (w.lower() if self.ignore_case else w) in text]
        missing = [w for w in wanted if w not in found]
        if self.negate:
            return ((0.0, f"output contains forbidden {found!r}") if found
                    else (1.0, "none of the forbidden values appear"))
        if self.mode == "all":
            value = len(found) / len(wanted) if wanted else 1.0
            return value, ("all values found" if not missing else f"missing {missing!r}")
        return (1.0, f"found {found[0]!r}") if found else (0.0, f"none of {wanted!r} found")


@register_evaluator("not-contains")
class NotContains(Contains):
    """Output contains none of the values (1) or some (0)."""

    negate: ClassVar[bool] = True


@register_evaluator("regex")
class Regex(Evaluator):
    """Output matches a regular expression (``search`` semantics; ``full: true`` for fullmatch)."""

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    def __init__(self, *, pattern: str, ignore_case: bool = False, full: bool = False,
                 **kw: Any) -> None:
        super().__init__(**kw)
        try:
            self.pattern = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            raise EvalsetError(f"regex: invalid pattern {pattern!r}: {exc}", key="pattern") from None
        self.full = full

    async def score(self, sample: Sample, ctx: EvalContext) -> tuple[float, str]:
        """1 on match."""
        match = (self.pattern.fullmatch if self.full else self.pattern.search)(sample.output)
        if match:
            return 1.0, f"matched {match.group(0)[:80]!r}"
        return 0.0, f"no match for /{self.pattern.pattern}/"


@register_evaluator("starts-with")
class StartsWith(Evaluator):
    """Output (stripped) starts with the value."""

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    def __init__(self, *, value: str | None = None, ignore_case: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        self.value, self.ignore_case = value, ignore_case

    async def score(self, sample: Sample, ctx: EvalContext) -> tuple[float, str]:
        """1 when the output starts with the value."""
        want = str(_expected(self.value, sample, "starts-with"))
        text = sample.output.strip()
        ok = text.lower().startswith(want.lower()) if self.ignore_case else text.startswith(want)
        return (1.0, f"starts with {want!r}") if ok else (0.0, f"does not start with {want!r}")


def _parse_json(text: str) -> Any:
    stripped = text.strip()
    fence = re.match(r"^```(?:json)?\s*(.*?)\s*```$", stripped, re.DOTALL)
    body = fence.group(1) if fence else stripped
    try:
        return json.loads(body)
    except RecursionError:  # model output nested past the parser's limit: not usable JSON
        raise json.JSONDecodeError("nested too deeply", body, 0) from None


@register_evaluator("is-json")
class IsJson(Evaluator):
    """Output parses as JSON (a Markdown code fence around it is tolerated)."""

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    async def score(self, sample: Sample, ctx: EvalContext) -> tuple[float, str]:
        """1 when the output is JSON."""
        try:
            _parse_json(sample.output)
        except json.JSONDecodeError as exc:
            return 0.0, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        return 1.0, "valid JSON"


@register_evaluator("json-schema")
class JsonSchema(Evaluator):
    """Output is JSON valid against a JSON Schema (given inline as ``schema``)."""

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    def __init__(self, *, schema: dict[str, Any], **kw: Any) -> None:
        super().__init__(**kw)
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise EvalsetError(f"json-schema: invalid schema: {exc.message}", key="schema") from None
        self.validator = jsonschema.Draft202012Validator(schema)

    async def score(self, sample: Sample, ctx: EvalContext) -> tuple[float, str]:
        """1 when valid."""
        try:
            data = _parse_json(sample.output)
        except json.JSONDecodeError as exc:
            return 0.0, f"not JSON: {exc.msg}"
        errors = sorted(self.validator.iter_errors(data), key=lambda e: list(e.path))
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(root)"
            return 0.0, f"schema violation at {where}: {errors[0].message}"
        return 1.0, "valid against the schema"


@register_evaluator("length")
class Length(Evaluator):
    """Output length within bounds, in ``chars`` (default) or ``words``."""

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    def __init__(self, *, min: int | None = None, max: int | None = None, unit: str = "chars",
                 **kw: Any) -> None:
        super().__init__(**kw)
        if unit not in ("chars", "words"):
            raise EvalsetError(f"length: unit must be 'chars' or 'words', got {unit!r}", key="unit")
        if min is None and max is None:
            raise EvalsetError("length: give min, max or both", key="length")
        self.min, self.max, self.unit = min, max, unit

    async def score(self, sample: Sample, ctx: EvalContext) -> tuple[float, str]:
        """1 when within bounds."""
        n = len(sample.output) if self.unit == "chars" else len(sample.output.split())
        if self.min is not None and n < self.min:
            return 0.0, f"{n} {self.unit}, below the minimum {self.min}"
        if self.max is not None and n > self.max:
            return 0.0, f"{n} {self.unit}, above the maximum {self.max}"
        return 1.0, f"{n} {self.unit}, within bounds"


@register_evaluator("latency")
class Latency(Evaluator):
    """The call's latency is at most ``max_s`` seconds (unmeasured for cache hits)."""

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    def __init__(self, *, max_s: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.max_s = max_s

    async def score(self, sample: Sample, ctx: EvalContext) -> Score | tuple[float, str]:
        """1 when fast enough."""
        c = sample.completion
        if c is None:
            return self.unmeasured("no completion to time")
        # A replayed answer is judged on the call that produced it, not on the cache lookup.
        latency = c.recorded_latency_s if c.cached and c.recorded_latency_s is not None else c.latency_s
        ok = latency <= self.max_s
        note = " (recorded latency of a cached response)" if c.cached else ""
        return (1.0 if ok else 0.0), f"{latency:.3f} s vs limit {self.max_s} s{note}"


@register_evaluator("cost")
class Cost(Evaluator):
    """The call's cost is at most ``max_usd``."""

    version = "1"
    local = True
    default_threshold: ClassVar[float | None] = 1.0

    def __init__(self, *, max_usd: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.max_usd = max_usd

    async def score(self, sample: Sample, ctx: EvalContext) -> Score | tuple[float, str]:
        """1 when cheap enough."""
        c = sample.completion
        if c is None:
            return self.unmeasured("no completion to price")
        cost = c.recorded_cost_usd if c.cached else c.cost_usd  # what the answer costs, not the replay
        note = " (recorded cost of a cached response)" if c.cached else ""
        return (1.0 if cost <= self.max_usd else 0.0), f"${cost:.6f} vs limit ${self.max_usd}{note}"


@register_evaluator("python")
class PythonEvaluator(Evaluator):
    """A custom evaluator by dotted path: ``function: mypkg.checks:score`` (or ``mypkg.checks.score``).

    The function receives the :class:`Sample` (and ``**params`` given as ``args``) and returns a
    float, a bool, a ``(value, reason)`` tuple or a :class:`Score`; it may be async.
    """

    version = "1"

    def __init__(self, *, function: str, args: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        module_name, sep, attr = function.partition(":")
        if not sep:
            module_name, _, attr = function.rpartition(".")
        if not module_name or not attr:
            raise EvalsetError(f"python: '{function}' is not a dotted path (module.function)", key="function")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise EvalsetError(f"python: cannot import '{module_name}': {exc}", key="function") from None
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise EvalsetError(f"python: '{module_name}' has no callable '{attr}'", key="function")
        self.fn, self.args, self.function = fn, args or {}, function

    async def score(self, sample: Sample, ctx: EvalContext) -> float | tuple[float, str] | Score:
        """Whatever the function returns, normalized."""
        import inspect

        result = self.fn(sample, **self.args)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Score):
            return result
        if isinstance(result, bool):
            return (1.0 if result else 0.0), f"{self.function} returned {result}"
        if isinstance(result, (int, float)):
            return float(result), f"{self.function} returned {result}"
        if isinstance(result, tuple) and len(result) == 2:
            return float(result[0]), str(result[1])
        raise TypeError(f"{self.function} returned {type(result).__name__}; expected float, bool, "
                        "(value, reason) or Score")
