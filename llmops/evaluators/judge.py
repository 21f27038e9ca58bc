"""LLM judges you can trust: structured output, one repair, and an explicit "unmeasured".

Every judge call in llmops goes through :func:`ask_judge`:

1. the request goes through the evaluation context's LLM client, so the response cache,
   retries, timeouts, tracing and cost accounting apply to judges exactly as to the model
   under test; temperature 0 and the run's seed by default;
2. the reply must be JSON matching a pydantic schema (a Markdown fence or prose around the
   object is tolerated); an optional ``check`` adds semantic validation (e.g. "one verdict
   per claim");
3. if the reply is unusable, the judge gets ONE repair turn: its own reply, the validation
   error and the JSON Schema;
4. if it is still unusable — or the call failed or timed out — the result carries the reason,
   and evaluators report the score as ``unmeasured``. Never a silent pass or fail.

This module also registers the ``judge`` evaluator: a rubric judged by any LiteLLM model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError, field_validator

from llmops.errors import EvalsetError, LLMOpsError
from llmops.evaluators.base import EvalContext, Evaluator, Sample, Score, register_evaluator
from llmops.llm.types import Message

M = TypeVar("M", bound=BaseModel)
DEFAULT_JUDGE_MAX_TOKENS = 512


@dataclass(frozen=True)
class JudgeReply(Generic[M]):
    """What a judge call produced.

    Attributes:
        value: The validated reply, or None when unusable.
        error: Why the reply is unusable (None when ``value`` is set).
        raw: The judge's raw replies, in order (first answer, then the repair answer).
        cost_usd: Summed cost of the judge completions.
        calls: Completions requested (1, or 2 with a repair).
        model: The judge model used.
    """

    value: M | None
    error: str | None
    raw: tuple[str, ...] = ()
    cost_usd: float = 0.0
    calls: int = 0
    model: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the reply is usable."""
        return self.value is not None

    def details(self) -> dict[str, Any]:
        """Judge facts for a score's details (raw replies truncated)."""
        return {"judge_model": self.model, "judge_calls": self.calls,
                "judge_raw": [r[:2000] for r in self.raw]}


_MAX_JSON_STARTS = 200
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """The first JSON object (or array) in ``text``: bare, fenced, or surrounded by prose.

    Raises:
        ValueError: when no JSON value can be decoded.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        starts = 0
        for i, ch in enumerate(candidate):
            if ch in "{[":
                starts += 1
                if starts > _MAX_JSON_STARTS:  # a garbage reply must not cost quadratic time
                    break
                try:
                    value, _ = decoder.raw_decode(candidate, i)
                except (json.JSONDecodeError, RecursionError):  # garbage, or nested past the limit
                    continue
                return value
    raise ValueError("no JSON object found in the reply")


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
            parts.append(f"{loc}: {err.get('msg')}")
        return "; ".join(parts)
    return str(exc)


def _validate(text: str, schema: type[M], check: Callable[[M], str | None] | None) -> tuple[M | None, str]:
    if not text.strip():
        return None, "empty reply"
    try:
        data = extract_json(text)
    except ValueError as exc:
        return None, str(exc)
    try:
        value = schema.model_validate(data)
    except ValidationError as exc:
        return None, f"JSON does not match the schema: {_short_error(exc)}"
    if check is not None:
        problem = check(value)
        if problem:
            return None, problem
    return value, ""


def compact_schema(schema: type[BaseModel]) -> str:
    """The model's JSON Schema on one line (what the repair turn shows the judge)."""
    return json.dumps(schema.model_json_schema(), separators=(",", ":"))


async def ask_judge(
    ctx: EvalContext,
    messages: Sequence[Message],
    schema: type[M],
    *,
    check: Callable[[M], str | None] | None = None,
    judge_model: str | None = None,
    max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS,
    evaluator: str = "",
    repair: bool = True,
) -> JudgeReply[M]:
    """Ask the judge for JSON matching ``schema``, with one repair turn; never raises.

    Args:
        ctx: Evaluation context (client, judge model, seed, tracing metadata).
        messages: The judge prompt.
        schema: Pydantic model the reply must validate against.
        check: Extra validation returning an error message, or None when the value is fine.
        judge_model: Overrides ``ctx.judge_model``.
        max_tokens: Completion budget per judge call.
        evaluator: Evaluator kind, recorded in the call's metadata (tracing).
        repair: Allow the one repair turn.

    Returns:
        A :class:`JudgeReply`; ``error`` says why the judgement is unusable.
    """
    model = judge_model or ctx.judge_model
    if ctx.client is None or not model:
        return JudgeReply(None, "no judge available: the evaluation context has no LLM client or judge "
                                "model (set judge_model in [tool.llmops])", model=model)
    params = {"temperature": 0, "max_tokens": max_tokens}
    convo = list(messages)
    raw: list[str] = []
    cost = 0.0
    error = ""
    for attempt in range(2 if repair else 1):
        meta = {**ctx.metadata, "purpose": "judge", "evaluator": evaluator, "judge_attempt": attempt + 1}
        try:
            completion = await ctx.client.acomplete(convo, model, params, seed=ctx.seed, metadata=meta)
        except LLMOpsError as err:
            # Timeouts and provider failures after retries: the judgement is missing, not negative.
            reason = f"judge call failed ({type(err).__name__}): {err.message}"
            return JudgeReply(None, reason, tuple(raw), cost, len(raw) + 1, model)
        raw.append(completion.text)
        cost += completion.cost_usd
        value, error = _validate(completion.text, schema, check)
        if value is not None:
            return JudgeReply(value, None, tuple(raw), cost, len(raw), model)
        convo = [*convo, Message("assistant", completion.text),
                 Message("user", f"Your reply could not be used: {error}. Reply again with ONLY a JSON "
                                 f"object (no prose, no code fence) matching this JSON Schema: "
                                 f"{compact_schema(schema)}")]
    what = "after one repair" if repair else "(repair disabled)"
    return JudgeReply(None, f"judge reply unusable {what}: {error}", tuple(raw), cost, len(raw), model)


# ---- prompt helpers shared by judge-based evaluators ---------------------------------------------


def format_inputs(inputs: dict[str, Any], *, limit: int = 4000) -> str:
    """Template inputs as ``name: value`` lines (contexts excluded; they get their own section)."""
    lines = []
    for key, value in inputs.items():
        if key == "contexts":
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        lines.append(f"{key}: {text}")
    return "\n".join(lines)[:limit]


def numbered(items: Sequence[str], *, prefix: str = "", limit: int = 6000) -> str:
    """``1. item`` lines (or ``[1] item`` with ``prefix="["``), cut at ``limit`` characters."""
    if prefix == "[":
        text = "\n".join(f"[{i}] {item}" for i, item in enumerate(items, 1))
    else:
        text = "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))
    return text[:limit]


# ---- the rubric judge -----------------------------------------------------------------------------


class _Binary(BaseModel):
    reason: str = ""
    verdict: Literal["pass", "fail"]

    @field_validator("verdict", mode="before")
    @classmethod
    def _norm(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class _Likert(BaseModel):
    reason: str = ""
    score: int = Field(ge=1, le=5)


_SECTIONS = ("inputs", "contexts", "expected", "output")


@register_evaluator("judge")
class Judge(Evaluator):
    """A rubric judged by an LLM: ``criteria`` in plain words, any LiteLLM model as judge.

    Params:
        criteria: What a good output does (required), e.g. "answers politely and cites a source".
        scale: ``binary`` (pass/fail, value 1 or 0; default) or ``likert`` (1-5, value (s-1)/4).
        include: Sections the judge sees: inputs, contexts, expected, output (default: all present).
        judge_model: Overrides the configured ``judge_model`` for this evaluator.
        max_tokens: Judge completion budget.

    An unusable judge reply (after one repair), a failed call or an empty output is
    ``unmeasured`` with the reason.
    """

    version = "1"
    needs_llm = True
    default_threshold: ClassVar[float | None] = 0.5

    def __init__(self, *, criteria: str, scale: str = "binary", include: list[str] | None = None,
                 judge_model: str | None = None, max_tokens: int = 300, **kw: Any) -> None:
        super().__init__(**kw)
        if not str(criteria).strip():
            raise EvalsetError("judge: 'criteria' must not be empty", key="criteria")
        if scale not in ("binary", "likert"):
            raise EvalsetError(f"judge: scale must be 'binary' or 'likert', got {scale!r}", key="scale")
        unknown = [s for s in include or () if s not in _SECTIONS]
        if unknown:
            raise EvalsetError(f"judge: unknown include {unknown}; known: {', '.join(_SECTIONS)}",
                               key="include")
        self.criteria, self.scale = str(criteria).strip(), scale
        self.include = list(include) if include else list(_SECTIONS)
        self.judge_model, self.max_tokens = judge_model, max_tokens

    def messages(self, sample: Sample) -> list[Message]:
        """The judge prompt for ``sample``."""
        parts = [f"Criteria: {self.criteria}"]
        if "inputs" in self.include and sample.inputs:
            parts.append("Input:\n" + format_inputs(sample.inputs))
        if "contexts" in self.include and sample.contexts:
            parts.append("Context passages:\n" + numbered(sample.contexts, prefix="["))
        if "expected" in self.include and sample.expected:
            parts.append(f"Expected output:\n{sample.expected}")
        parts.append(f"Output to judge:\n{sample.output}")
        if self.scale == "binary":
            form = '{"reason": "<one sentence>", "verdict": "pass"}  (verdict is "pass" or "fail")'
        else:
            form = '{"reason": "<one sentence>", "score": 3}  (score from 1 = very poor to 5 = excellent)'
        parts.append(f"Does the output meet the criteria? Reply with JSON only, in this form:\n{form}")
        return [Message("system", "You are a strict, fair evaluator of AI outputs. You answer in JSON."),
                Message("user", "\n\n".join(parts))]

    async def score(self, sample: Sample, ctx: EvalContext) -> Score:
        """Ask the judge; map its verdict to [0, 1]."""
        if not sample.output.strip():
            return self.unmeasured("empty output: nothing to judge")
        schema: type[_Binary] | type[_Likert] = _Binary if self.scale == "binary" else _Likert
        reply = await ask_judge(ctx, self.messages(sample), schema, judge_model=self.judge_model,
                                max_tokens=self.max_tokens, evaluator=self.kind)
        details = reply.details()
        if reply.value is None:
            return self.unmeasured(reply.error or "judge reply unusable", details=details,
                                   cost_usd=reply.cost_usd)
        if isinstance(reply.value, _Binary):
            value = 1.0 if reply.value.verdict == "pass" else 0.0
        else:
            value = (reply.value.score - 1) / 4
        return self.measured(value, reply.value.reason or "", details=details, cost_usd=reply.cost_usd)
