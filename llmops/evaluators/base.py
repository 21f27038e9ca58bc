"""The evaluator contract: what an evaluator sees, what it returns, how it is registered.

Every evaluator, deterministic or model-graded, returns a :class:`Score` with a status:

- ``pass`` / ``fail``: measured, with a value in [0, 1] compared against the threshold;
- ``unmeasured``: the evaluator could not decide (judge garbage, NaN, missing contexts);
  neither pass nor fail, excluded from means, always counted and shown;
- ``error``: the evaluator itself crashed (a bug or a provider failure), also data.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from llmops.credentials import scrub
from llmops.errors import EvalsetError, did_you_mean

if TYPE_CHECKING:
    from llmops.llm.agent import Step
    from llmops.llm.client import LLMClient
    from llmops.llm.types import Completion, Message, ToolCall

ScoreStatus = Literal["pass", "fail", "unmeasured", "error"]


@dataclass(frozen=True)
class Score:
    """The outcome of one evaluator on one output.

    Attributes:
        name: The evaluator instance name (as configured in the suite).
        value: Score in [0, 1] (higher is better), or None when unmeasured/error.
        status: pass, fail, unmeasured or error.
        reason: Human-readable explanation (shown in reports and failing tests).
        threshold: The pass threshold used, if any.
        evaluator: The evaluator type name.
        version: The evaluator's version (bumped when its scoring changes).
        details: Structured extras (claims with spans, p-values, judge raw output, ...).
        cost_usd: Judge/embedding cost spent to compute this score.
    """

    name: str
    value: float | None
    status: ScoreStatus
    reason: str = ""
    threshold: float | None = None
    evaluator: str = ""
    version: str = "1"
    details: dict[str, Any] = field(default_factory=dict)
    cost_usd: float = 0.0

    @property
    def passed(self) -> bool | None:
        """True/False when measured; None when unmeasured or error."""
        if self.status == "pass":
            return True
        if self.status == "fail":
            return False
        return None

    @property
    def measured(self) -> bool:
        """Whether the score counts in means and pass rates."""
        return self.status in ("pass", "fail")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"name": self.name, "value": self.value, "status": self.status, "reason": self.reason,
                "threshold": self.threshold, "evaluator": self.evaluator, "version": self.version,
                "details": self.details, "cost_usd": self.cost_usd}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Sample:
    """What an evaluator sees: one model output for one case.

    Attributes:
        case_id: The case id.
        output: The model's text.
        inputs: The template inputs of the case.
        expected: The expected output, if the case has one.
        contexts: Retrieved passages (RAG), if any.
        metadata: Free-form case metadata.
        completion: The full completion (usage, latency, cost), when available; the final
            answer of an agent loop.
        messages: The rendered request messages.
        tools: The tools the prompt declared (OpenAI form), for checks against their schemas.
        response_format: The ``response_format`` the call asked for, if any.
        trajectory: Every step of an agent loop (model calls and tool results); empty for one call.
    """

    case_id: str
    output: str
    inputs: dict[str, Any] = field(default_factory=dict)
    expected: str | None = None
    contexts: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    completion: Completion | None = None
    messages: tuple[Message, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    response_format: dict[str, Any] | None = None
    trajectory: tuple[Step, ...] = ()

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every tool call the model made, in order (across the steps of an agent loop)."""
        if self.trajectory:
            return [call for step in self.trajectory if step.kind == "model" for call in step.calls()]
        return list(self.completion.tool_calls) if self.completion is not None else []


class Regenerate(Protocol):
    """Re-run the case's prompt (same template, model and seed) with other inputs.

    ``sample`` selects an independent sample (it becomes part of the cache key); ``params``
    overrides call params (e.g. a temperature above 0 for self-consistency sampling).
    """

    def __call__(self, inputs: dict[str, Any], sample: int = 0,
                 params: dict[str, Any] | None = None) -> Awaitable[Completion]:
        """Render with ``inputs`` and call the case's model; returns the completion."""
        ...


@dataclass
class EvalContext:
    """Services an evaluator may use.

    Attributes:
        client: The LLM client (judge calls go through it: cache, retries, tracing, cost).
        judge_model: Model string for judge calls.
        seed: Seed for judge calls and any sampling the evaluator does.
        regenerate: Re-run the case's prompt with other inputs (sample index as second argument);
            used by counterfactual bias and self-consistency. None outside a runner.
        metadata: Passed into judge calls' metadata (run id, case id) for tracing.
    """

    client: LLMClient | None = None
    judge_model: str | None = None
    seed: int = 0
    regenerate: Regenerate | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class Evaluator:
    """Base class of evaluators.

    Subclasses set ``kind`` (the name used in suite files) and ``version``, accept their
    parameters as keyword arguments, and implement :meth:`score` returning a value in [0, 1]
    (or a full :class:`Score`). ``threshold`` turns the value into pass/fail.
    """

    kind: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    default_threshold: ClassVar[float | None] = 0.5
    needs_llm: ClassVar[bool] = False
    #: Scores from the sample alone and never awaits anything (no I/O, no model call): the
    #: runner awaits it in line instead of giving it a task of its own.
    local: ClassVar[bool] = False

    def __init__(self, *, name: str | None = None, threshold: float | None = None) -> None:
        self.name = name or self.kind
        self.threshold = self.default_threshold if threshold is None else threshold

    async def evaluate(self, sample: Sample, ctx: EvalContext) -> Score:
        """Score a sample; never raises (crashes become ``error`` scores)."""
        try:
            result = await self.score(sample, ctx)
        except Exception as exc:  # per-sample errors are data, not exceptions
            return self.error(f"{type(exc).__name__}: {exc}")
        if isinstance(result, Score):
            return result
        return self.measured(result[0], result[1]) if isinstance(result, tuple) else self.measured(result)

    async def score(self, sample: Sample, ctx: EvalContext) -> float | tuple[float, str] | Score:
        """Compute the score. Override in subclasses."""
        raise NotImplementedError

    # ---- helpers to build scores ------------------------------------------------------------
    def measured(self, value: float, reason: str = "", *, details: dict[str, Any] | None = None,
                 cost_usd: float = 0.0) -> Score:
        """A measured score; NaN or infinite values become ``unmeasured``."""
        if value is None or not math.isfinite(float(value)):
            return self.unmeasured(f"non-finite score ({value})", details=details, cost_usd=cost_usd)
        v = min(1.0, max(0.0, float(value)))
        passed = True if self.threshold is None else v >= self.threshold
        return Score(name=self.name, value=v, status="pass" if passed else "fail", reason=reason,
                     threshold=self.threshold, evaluator=self.kind, version=self.version,
                     details=details or {}, cost_usd=cost_usd)

    def unmeasured(self, reason: str, *, details: dict[str, Any] | None = None,
                   cost_usd: float = 0.0) -> Score:
        """An explicit "could not decide" outcome with its reason."""
        return Score(name=self.name, value=None, status="unmeasured", reason=scrub(reason),
                     threshold=self.threshold, evaluator=self.kind, version=self.version,
                     details=details or {}, cost_usd=cost_usd)

    def error(self, reason: str) -> Score:
        """The evaluator crashed."""
        return Score(name=self.name, value=None, status="error", reason=scrub(reason), threshold=self.threshold,
                     evaluator=self.kind, version=self.version)


EvaluatorFactory = Callable[..., Evaluator]
_REGISTRY: dict[str, EvaluatorFactory] = {}
_BUILTINS_LOADED = False
_BUILTINS_LOCK = threading.RLock()


def register_evaluator(kind: str) -> Callable[[type[Evaluator]], type[Evaluator]]:
    """Class decorator: make an evaluator available to suite files by ``kind``."""

    def deco(cls: type[Evaluator]) -> type[Evaluator]:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return deco


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    import importlib

    # Runs in several threads at once (suites run concurrently): the flag is set only once the
    # modules are registered, under a lock, so no thread sees a half-filled registry.
    with _BUILTINS_LOCK:
        if _BUILTINS_LOADED:
            return
        for module in BUILTIN_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:  # a real missing dependency inside the module
                    raise
        _BUILTINS_LOADED = True


# Modules that register built-in evaluators on import (deterministic ones are always there).
BUILTIN_MODULES: list[str] = [
    "llmops.evaluators.deterministic",
    "llmops.evaluators.tools",
    "llmops.evaluators.hallucination",
    "llmops.evaluators.bias",
    "llmops.evaluators.judge",
    "llmops.evaluators.ragas_adapters",
]


def evaluator_kinds() -> list[str]:
    """Names of all registered evaluator kinds."""
    _load_builtins()
    return sorted(_REGISTRY)


def load_project_evaluators(root: Path, modules: Sequence[str] = ()) -> None:
    """Make a project's own modules importable and import its evaluator modules.

    The project root goes on ``sys.path`` (so ``python:`` evaluators and ``evaluator_modules``
    import project code without ``PYTHONPATH``), then each module is imported, which runs its
    ``@register_evaluator`` decorators.

    Args:
        root: The project folder (the one holding pyproject.toml).
        modules: Dotted module names (``evaluator_modules`` in ``[tool.llmops]``).

    Raises:
        EvalsetError: naming the module that cannot be imported and why.
    """
    import importlib
    import sys

    folder = str(root.resolve())
    if folder not in sys.path:
        sys.path.append(folder)
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # an import runs user code: any failure is the module's, named
            raise EvalsetError(f"evaluator_modules: cannot import '{module}': {type(exc).__name__}: {exc}",
                               key="evaluator_modules",
                               hint=f"a module path relative to {folder}, e.g. 'checks' for checks.py") from None


def create_evaluator(kind: str, *, name: str | None = None, threshold: float | None = None,
                     **params: Any) -> Evaluator:
    """Instantiate an evaluator by kind with its parameters.

    Raises:
        EvalsetError: for an unknown kind (with a suggestion) or bad parameters.
    """
    if kind not in _REGISTRY:
        import llmops.evaluators.deterministic  # noqa: F401  (registers the cheap, common kinds)
    factory = _REGISTRY.get(kind)
    if factory is None:  # the other built-in modules cost ~50 ms of imports: only when needed
        _load_builtins()
        factory = _REGISTRY.get(kind)
    if factory is None:
        raise EvalsetError(f"unknown evaluator '{kind}'", key=kind,
                           hint=did_you_mean(kind, _REGISTRY) or f"known: {', '.join(sorted(_REGISTRY))}")
    try:
        return factory(name=name, threshold=threshold, **params)
    except TypeError as exc:
        raise EvalsetError(f"evaluator '{kind}': {exc}", key=name or kind) from None
