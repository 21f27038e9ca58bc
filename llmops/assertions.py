"""Assert on evaluator scores from plain Python tests (and the ``llmops`` pytest fixture)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmops._async import run_sync
from llmops.evaluators.base import EvalContext, Evaluator, Sample, Score, create_evaluator
from llmops.llm.client import LLMClient
from llmops.llm.types import Completion, Message

EvaluatorLike = str | dict[str, Any] | Evaluator


def _make(spec: EvaluatorLike) -> Evaluator:
    if isinstance(spec, Evaluator):
        return spec
    if isinstance(spec, str):
        return create_evaluator(spec)
    params = dict(spec)
    if "kind" not in params and len(params) == 1:
        ((kind, inner),) = params.items()
        params = {"kind": kind, **(inner or {})}
    kind = params.pop("kind")
    return create_evaluator(kind, name=params.pop("name", None), threshold=params.pop("threshold", None), **params)


async def aevaluate(output: str | Completion, evaluators: Sequence[EvaluatorLike], *, expected: str | None = None,
                    contexts: Sequence[str] = (), inputs: dict[str, Any] | None = None,
                    client: LLMClient | None = None, judge_model: str | None = None) -> list[Score]:
    """Run evaluators on one output and return their scores (never raises for a bad score)."""
    completion = output if isinstance(output, Completion) else None
    text = output.text if isinstance(output, Completion) else output
    sample = Sample(case_id="assert", output=text, inputs=dict(inputs or {}), expected=expected,
                    contexts=tuple(contexts), completion=completion)
    judge = judge_model or (client.settings.judge_model if client else None)
    ctx = EvalContext(client=client, judge_model=judge, seed=client.settings.seed if client else 0)
    return [await _make(spec).evaluate(sample, ctx) for spec in evaluators]


def evaluate(output: str | Completion, evaluators: Sequence[EvaluatorLike], **kwargs: Any) -> list[Score]:
    """Sync :func:`aevaluate` (safe inside a running event loop)."""
    return run_sync(aevaluate(output, evaluators, **kwargs))


def explain(scores: Sequence[Score]) -> str:
    """One line per score: name, status, value, threshold, reason."""
    lines = []
    for s in scores:
        value = "—" if s.value is None else f"{s.value:.2f}"
        threshold = "" if s.threshold is None else f" (threshold {s.threshold:g})"
        lines.append(f"  {s.name}: {s.status} {value}{threshold} — {s.reason}")
    return "\n".join(lines)


def assert_scores(output: str | Completion, evaluators: Sequence[EvaluatorLike], *,
                  allow_unmeasured: bool = False, **kwargs: Any) -> list[Score]:
    """Evaluate and raise ``AssertionError`` (with every score's reason) unless all pass.

    Args:
        output: The model output (or its Completion, for latency and cost checks).
        evaluators: Kinds (``"is-json"``), suite-style dicts (``{"contains": {"value": "Paris"}}``)
            or Evaluator instances.
        allow_unmeasured: Accept ``unmeasured`` scores instead of failing on them.
        **kwargs: expected, contexts, inputs, client, judge_model.

    Returns:
        The scores, when they all pass.
    """
    scores = evaluate(output, evaluators, **kwargs)
    bad = [s for s in scores if s.status in ("fail", "error") or (s.status == "unmeasured" and not allow_unmeasured)]
    if bad:
        text = output.text if isinstance(output, Completion) else output
        raise AssertionError(f"{len(bad)} of {len(scores)} evaluators did not pass\n  output: {text!r}\n"
                             + explain(scores))
    return scores


class LLMOpsFixture:
    """What the ``llmops`` pytest fixture gives a test: the project's prompts, client and evaluators."""

    def __init__(self, client: LLMClient) -> None:
        self.client = client
        self.settings = client.settings

    def render(self, ref: str, **inputs: Any) -> list[Message]:
        """Render a prompt reference."""
        from llmops.api import render_prompt

        return render_prompt(ref, inputs, self.settings)

    async def acomplete(self, ref: str, inputs: dict[str, Any] | None = None, **kwargs: Any) -> Completion:
        """Render and call (async)."""
        from llmops.api import acomplete

        return await acomplete(ref, inputs, client=self.client, **kwargs)

    def complete(self, ref: str, inputs: dict[str, Any] | None = None, **kwargs: Any) -> Completion:
        """Render and call (sync; fine inside async tests too)."""
        return run_sync(self.acomplete(ref, inputs, **kwargs))

    def evaluate(self, output: str | Completion, evaluators: Sequence[EvaluatorLike], **kwargs: Any) -> list[Score]:
        """Scores of evaluators on an output (judge calls use this client)."""
        return evaluate(output, evaluators, client=self.client, **kwargs)

    def assert_scores(self, output: str | Completion, evaluators: Sequence[EvaluatorLike],
                      **kwargs: Any) -> list[Score]:
        """:func:`assert_scores` with this client."""
        return assert_scores(output, evaluators, client=self.client, **kwargs)
