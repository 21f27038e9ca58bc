"""Ragas metrics as llmops evaluators: one case at a time, failures as ``unmeasured``, never NaN.

LLM-based (judge calls go through our :class:`~llmops.llm.client.LLMClient`, so they are cached,
retried, rate limited, traced and costed like any call, and work offline with ``local/`` models):

- ``faithfulness``: share of the output's statements that the retrieved contexts support.
- ``response-relevancy``: how well questions generated from the output match the question
  (needs an embedding model, see :mod:`llmops.evaluators.ragas_embeddings`).
- ``context-precision``: are the relevant contexts ranked first (against the expected answer,
  or the output with ``without_reference: true``).
- ``context-recall``: share of the expected answer's statements the contexts support.
- ``factual-correctness``: claim-level precision/recall/F1 of the output against the expected.

Non-LLM: ``rouge``, ``bleu``, ``string-similarity`` (output vs expected) and
``non-llm-context-precision`` (retrieved vs reference contexts by string similarity).

Why not ``ragas.evaluate()``: it turns every error into NaN (which poisons means) and its
``@experiment`` drops failing rows silently. Each evaluator here awaits one collections metric
for one sample, under our client's concurrency limit, and maps NaN, judge garbage, timeouts and
missing inputs to ``unmeasured`` with a reason (see :mod:`llmops.evaluators.ragas_base`). ragas
is imported on first use (~2.5 s), never at module import, so listing evaluators stays cheap.

Example:
    >>> import asyncio
    >>> from llmops.evaluators.base import EvalContext, Sample, create_evaluator  # doctest: +SKIP
    >>> ev = create_evaluator("faithfulness", threshold=0.8)  # doctest: +SKIP
    >>> sample = Sample(case_id="c1", output="Paris is the capital of France.",
    ...                 inputs={"question": "What is the capital of France?"},
    ...                 contexts=("Paris is the capital and largest city of France.",))  # doctest: +SKIP
    >>> asyncio.run(ev.evaluate(sample, EvalContext(judge_model="openai/gpt-4o-mini")))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from llmops.errors import EvalsetError
from llmops.evaluators.base import EvalContext, Sample, register_evaluator
from llmops.evaluators.ragas_base import (
    EMPTY_OUTPUT,
    NO_CONTEXTS,
    NO_EXPECTED,
    Ledger,
    RagasEvaluator,
    RagasLLMEvaluator,
    Unmeasured,
    reference_of,
    retrieved_of,
)
from llmops.evaluators.ragas_embeddings import ClientEmbedder, as_ragas_embeddings, check_spec, resolve_embedder

__all__ = [
    "BleuEvaluator",
    "ContextPrecisionEvaluator",
    "ContextRecallEvaluator",
    "FactualCorrectnessEvaluator",
    "FaithfulnessEvaluator",
    "NonLLMContextPrecisionEvaluator",
    "ResponseRelevancyEvaluator",
    "RougeEvaluator",
    "StringSimilarityEvaluator",
]

DISTANCE_MEASURES = ("levenshtein", "hamming", "jaro", "jaro_winkler")


def _tally(statements: Sequence[tuple[str, bool]], *, empty: str, held: str, failed: str) -> str:
    """The reason for a statement-level score: how many held, and the first few that did not.

    Raises:
        Unmeasured: With ``empty`` when the judge produced no statements (ragas would score 0 or NaN).
    """
    if not statements:
        raise Unmeasured(empty)
    failing = [text for text, ok in statements if not ok]
    reason = f"{len(statements) - len(failing)} of {len(statements)} {held}"
    if failing:
        reason += f"; {failed}: " + "; ".join(repr(text[:120]) for text in failing[:5])
    return reason


def _coverage(statements: Sequence[str], verdicts: Sequence[Any]) -> str | None:
    """Why the judge's verdicts do not cover the statements exactly once with 0 or 1, or None."""
    bad = [v.verdict for v in verdicts if v.verdict not in (0, 1)]
    if bad:
        return f"verdict value(s) {bad[:5]} outside 0 (unsupported) / 1 (supported)"
    if len(verdicts) != len(statements):
        return (f"verdicts for {len(verdicts)} of {len(statements)} statement(s) (each statement needs "
                "exactly one)")
    return None


@register_evaluator("faithfulness")
class FaithfulnessEvaluator(RagasLLMEvaluator):
    """Share of the output's statements that the retrieved contexts support (ragas Faithfulness).

    Judge calls: 2 (statements, then verdicts), plus re-asks on invalid JSON.
    """

    metric = "Faithfulness"

    def _missing(self, sample: Sample) -> str | None:
        if not sample.output.strip():
            return EMPTY_OUTPUT
        if not retrieved_of(sample):
            return NO_CONTEXTS.format(kind=self.kind)
        return None if self._question(sample) else self._no_question()

    async def _measure(self, sample: Sample, ctx: EvalContext, ledger: Ledger) -> tuple[float, str]:
        from ragas.metrics.collections import Faithfulness

        metric = Faithfulness(llm=self._llm(ctx, ledger))
        result = await metric.ascore(user_input=self._ask(sample), response=sample.output,
                                     retrieved_contexts=retrieved_of(sample))
        generated = [st for out in ledger.parsed("StatementGeneratorOutput") for st in out.statements]
        judged = [v for out in ledger.parsed("NLIStatementOutput") for v in out.statements]
        problem = _coverage(generated, judged)
        if problem is not None:
            # ragas divides by the verdicts it got: 1 verdict for 4 statements would score 1.0.
            raise Unmeasured(f"the judge's verdicts are unusable: {problem}")
        verdicts = [(v.statement, bool(v.verdict)) for v in judged]
        return float(result.value), _tally(verdicts, empty="the judge found no statements in the output to check",
                                           held="statements supported by the contexts", failed="unsupported")


@register_evaluator("response-relevancy")
class ResponseRelevancyEvaluator(RagasLLMEvaluator):
    """Does the output answer the question (ragas AnswerRelevancy / ResponseRelevancy).

    The judge writes ``strictness`` questions the output would answer; the score is their mean
    cosine similarity to the real question (0 when the judge finds the answer noncommittal).

    Args:
        strictness: Questions to generate (judge calls).
        embedding_model: ``auto`` (local MiniLM if installed), ``minilm``, a LiteLLM embedding
            model or alias, or (from Python) an :class:`~llmops.evaluators.embeddings.Embedder`.
            Without one the score is ``unmeasured``.
    """

    metric = "AnswerRelevancy"

    def __init__(self, *, strictness: int = 3, embedding_model: Any = "auto", **kw: Any) -> None:
        super().__init__(**kw)
        if not isinstance(strictness, int) or strictness < 1:
            raise EvalsetError(f"{self.kind}: strictness must be an integer >= 1", key="strictness")
        problem = check_spec(embedding_model)
        if problem is not None:
            raise EvalsetError(f"{self.kind}: {problem}", key="embedding_model")
        self.strictness = strictness
        self.embedding_model = embedding_model

    def _missing(self, sample: Sample) -> str | None:
        if not sample.output.strip():
            return EMPTY_OUTPUT
        return None if self._question(sample) else self._no_question()

    async def _measure(self, sample: Sample, ctx: EvalContext, ledger: Ledger) -> tuple[float, str]:
        from ragas.metrics.collections import AnswerRelevancy

        # Resolved before any judge call: without embeddings the judge's work would be wasted.
        embedder = resolve_embedder(self.embedding_model, self._client(ctx),
                                    {**ctx.metadata, "purpose": "embedding", "evaluator": self.name})
        metric = AnswerRelevancy(llm=self._llm(ctx, ledger), embeddings=as_ragas_embeddings(embedder),
                                 strictness=self.strictness)
        try:
            result = await metric.ascore(user_input=self._ask(sample), response=sample.output)
        finally:
            if isinstance(embedder, ClientEmbedder):
                ledger.cost_usd += embedder.cost_usd
        generated = ledger.parsed("AnswerRelevanceOutput")
        questions = [g.question for g in generated if g.question]
        if not questions:
            raise Unmeasured("the judge generated no questions from the output")
        if all(g.noncommittal for g in generated if g.question):
            return float(result.value), "the judge found the output noncommittal (evasive or vague)"
        ledger.embeddings = embedder.description
        return float(result.value), (f"mean cosine similarity of {len(questions)} questions generated from "
                                     f"the output to the question (embeddings: {embedder.name})")


@register_evaluator("context-precision")
class ContextPrecisionEvaluator(RagasLLMEvaluator):
    """Are the useful contexts ranked first: average precision of per-context judge verdicts.

    Judge calls: one per context. Usefulness is judged against the expected answer, or against
    the output with ``without_reference: true`` (ragas ContextPrecisionWith/WithoutReference).
    """

    metric = "ContextPrecisionWithReference"

    def __init__(self, *, without_reference: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.without_reference = bool(without_reference)
        if self.without_reference:
            self.metric = "ContextPrecisionWithoutReference"

    def _missing(self, sample: Sample) -> str | None:
        if not retrieved_of(sample):
            return NO_CONTEXTS.format(kind=self.kind)
        if self.without_reference and not sample.output.strip():
            return EMPTY_OUTPUT
        if not self.without_reference and not (sample.expected or "").strip():
            return NO_EXPECTED.format(kind=self.kind) + " (or set without_reference: true)"
        return None if self._question(sample) else self._no_question()

    async def _measure(self, sample: Sample, ctx: EvalContext, ledger: Ledger) -> tuple[float, str]:
        from ragas.metrics.collections import ContextPrecisionWithoutReference, ContextPrecisionWithReference

        contexts = retrieved_of(sample)
        llm = self._llm(ctx, ledger)
        if self.without_reference:
            result = await ContextPrecisionWithoutReference(llm=llm).ascore(
                user_input=self._ask(sample), response=sample.output, retrieved_contexts=contexts)
        else:
            result = await ContextPrecisionWithReference(llm=llm).ascore(
                user_input=self._ask(sample), reference=reference_of(sample), retrieved_contexts=contexts)
        # ragas adds 1e-10 to the denominator: 0.9999999999 for a perfect ranking would fail a
        # threshold of 1.0.
        value = round(float(result.value), 9)
        useful = [i + 1 for i, v in enumerate(ledger.parsed("ContextPrecisionOutput")) if v.verdict]
        if not useful:
            return value, f"none of the {len(contexts)} contexts was judged useful"
        return value, f"useful contexts at ranks {useful} of {len(contexts)}"


@register_evaluator("context-recall")
class ContextRecallEvaluator(RagasLLMEvaluator):
    """Share of the expected answer's statements that the contexts support (ragas ContextRecall).

    Judge calls: 1.
    """

    metric = "ContextRecall"

    def _missing(self, sample: Sample) -> str | None:
        if not retrieved_of(sample):
            return NO_CONTEXTS.format(kind=self.kind)
        if not (sample.expected or "").strip():
            return NO_EXPECTED.format(kind=self.kind)
        return None if self._question(sample) else self._no_question()

    async def _measure(self, sample: Sample, ctx: EvalContext, ledger: Ledger) -> tuple[float, str]:
        from ragas.metrics.collections import ContextRecall

        result = await ContextRecall(llm=self._llm(ctx, ledger)).ascore(
            user_input=self._ask(sample), retrieved_contexts=retrieved_of(sample), reference=reference_of(sample))
        classified = [(c.statement, bool(c.attributed)) for out in ledger.parsed("ContextRecallOutput")
                      for c in out.classifications]
        return float(result.value), _tally(
            classified, empty="the judge found no statements in the expected answer to attribute",
            held="expected statements found in the contexts", failed="not found")


@register_evaluator("factual-correctness")
class FactualCorrectnessEvaluator(RagasLLMEvaluator):
    """Claim-level agreement of the output with the expected answer (ragas FactualCorrectness).

    Args:
        mode: ``f1`` (default), ``precision`` (output claims supported by the expected) or
            ``recall`` (expected claims present in the output).
        beta: F-beta weight (>1 favours recall).
        atomicity: Claim decomposition granularity, ``low`` or ``high``.
        coverage: Claim decomposition coverage, ``low`` or ``high``.

    Judge calls: 2 with ``precision``, 4 otherwise. ragas rounds the value to 2 decimals.
    """

    metric = "FactualCorrectness"

    def __init__(self, *, mode: str = "f1", beta: float = 1.0, atomicity: str = "low", coverage: str = "low",
                 **kw: Any) -> None:
        super().__init__(**kw)
        for key, value, allowed in (("mode", mode, ("f1", "precision", "recall")),
                                    ("atomicity", atomicity, ("low", "high")),
                                    ("coverage", coverage, ("low", "high"))):
            if value not in allowed:
                raise EvalsetError(f"{self.kind}: {key} must be one of {', '.join(allowed)}, got {value!r}",
                                   key=key)
        if not isinstance(beta, int | float) or beta <= 0:
            raise EvalsetError(f"{self.kind}: beta must be a positive number", key="beta")
        self.mode, self.beta, self.atomicity, self.coverage = mode, float(beta), atomicity, coverage

    def _missing(self, sample: Sample) -> str | None:
        if not sample.output.strip():
            return EMPTY_OUTPUT
        if not (sample.expected or "").strip():
            return NO_EXPECTED.format(kind=self.kind)
        return None

    async def _measure(self, sample: Sample, ctx: EvalContext, ledger: Ledger) -> tuple[float, str]:
        from ragas.metrics.collections import FactualCorrectness

        metric = FactualCorrectness(llm=self._llm(ctx, ledger), mode=self.mode,  # type: ignore[arg-type]
                                    beta=self.beta, atomicity=self.atomicity,  # type: ignore[arg-type]
                                    coverage=self.coverage)  # type: ignore[arg-type]
        result = await metric.ascore(response=sample.output, reference=reference_of(sample))
        claims = ledger.parsed("ClaimDecompositionOutput")
        verdicts = ledger.parsed("NLIStatementOutput")
        if not any(c.claims for c in claims):
            raise Unmeasured("the judge extracted no claims from the output or the expected answer")
        parts = []
        labels = ("output claims supported by the expected answer", "expected claims found in the output")
        for label, out in zip(labels, verdicts, strict=False):
            supported = sum(1 for s in out.statements if s.verdict)
            parts.append(f"{supported}/{len(out.statements)} {label}")
        return float(result.value), f"{self.mode} {float(result.value):.2f}: " + ", ".join(parts)


# ---- non-LLM metrics ----------------------------------------------------------------------------
class _ReferenceEvaluator(RagasEvaluator):
    """A non-LLM metric of the output against the case's expected answer.

    An empty output is measured (it shares nothing with the reference, so it scores 0), not
    ``unmeasured``: the metric is well defined there and a model that goes silent must fail.
    """

    def _missing(self, sample: Sample) -> str | None:
        return NO_EXPECTED.format(kind=self.kind) if not (sample.expected or "").strip() else None

    def _make(self) -> Any:
        raise NotImplementedError

    def _describe(self, value: float) -> str:
        return f"{self.metric} {value:.3f} of the output against the expected answer"

    async def _measure(self, sample: Sample, ctx: EvalContext, ledger: Ledger) -> tuple[float, str]:
        result = await self._make().ascore(reference=reference_of(sample), response=sample.output)
        value = float(result.value)
        reason = self._describe(value)
        return value, (reason + " (empty output)" if not sample.output.strip() else reason)


@register_evaluator("rouge")
class RougeEvaluator(_ReferenceEvaluator):
    """ROUGE overlap of output and expected (ragas RougeScore, Porter stemming).

    Args:
        rouge_type: ``rougeL`` (longest common subsequence, default), ``rouge1`` or ``rouge2``.
        mode: ``fmeasure`` (default), ``precision`` or ``recall``.
    """

    metric = "RougeScore"
    requires: ClassVar[tuple[str, ...]] = ("ragas", "rouge_score")

    def __init__(self, *, rouge_type: str = "rougeL", mode: str = "fmeasure", **kw: Any) -> None:
        super().__init__(**kw)
        if rouge_type not in ("rouge1", "rouge2", "rougeL"):
            raise EvalsetError(f"rouge: rouge_type must be rouge1, rouge2 or rougeL, got {rouge_type!r}",
                               key="rouge_type")
        if mode not in ("fmeasure", "precision", "recall"):
            raise EvalsetError(f"rouge: mode must be fmeasure, precision or recall, got {mode!r}", key="mode")
        self.rouge_type, self.mode = rouge_type, mode

    def _make(self) -> Any:
        from ragas.metrics.collections import RougeScore

        return RougeScore(rouge_type=self.rouge_type, mode=self.mode)  # type: ignore[arg-type]

    def _describe(self, value: float) -> str:
        return f"{self.rouge_type} {self.mode} {value:.3f} against the expected answer"


@register_evaluator("bleu")
class BleuEvaluator(_ReferenceEvaluator):
    """Corpus BLEU (sacrebleu) of output against expected, sentence-aligned on ". " (ragas BleuScore)."""

    metric = "BleuScore"
    requires: ClassVar[tuple[str, ...]] = ("ragas", "sacrebleu")

    def _make(self) -> Any:
        from ragas.metrics.collections import BleuScore

        return BleuScore()


def _distance(kind: str, measure: str) -> str:
    if measure not in DISTANCE_MEASURES:
        raise EvalsetError(f"{kind}: distance_measure must be one of {', '.join(DISTANCE_MEASURES)}, "
                           f"got {measure!r}", key="distance_measure")
    return measure


@register_evaluator("string-similarity")
class StringSimilarityEvaluator(_ReferenceEvaluator):
    """1 - normalized edit distance of output and expected (ragas NonLLMStringSimilarity, rapidfuzz).

    Args:
        distance_measure: ``levenshtein`` (default), ``hamming``, ``jaro`` or ``jaro_winkler``.
    """

    metric = "NonLLMStringSimilarity"
    requires: ClassVar[tuple[str, ...]] = ("ragas", "rapidfuzz")

    def __init__(self, *, distance_measure: str = "levenshtein", **kw: Any) -> None:
        super().__init__(**kw)
        self.distance_measure = _distance(self.kind, distance_measure)

    def _make(self) -> Any:
        from ragas.metrics.collections import DistanceMeasure, NonLLMStringSimilarity

        return NonLLMStringSimilarity(distance_measure=DistanceMeasure(self.distance_measure))

    def _describe(self, value: float) -> str:
        return f"{self.distance_measure} similarity {value:.3f} to the expected answer"


@register_evaluator("non-llm-context-precision")
class NonLLMContextPrecisionEvaluator(RagasEvaluator):
    """Average precision of retrieved contexts matched to reference contexts by string similarity.

    A retrieved context counts as relevant when it is at least ``match_threshold`` similar to
    one of the reference contexts (ragas NonLLMContextPrecisionWithReference).

    Args:
        reference_contexts: The relevant passages (default: the case's metadata
            ``reference_contexts``).
        distance_measure: ``levenshtein`` (default), ``hamming``, ``jaro`` or ``jaro_winkler``.
        match_threshold: Similarity at which a retrieved context matches a reference one.
    """

    metric = "NonLLMContextPrecisionWithReference"
    requires: ClassVar[tuple[str, ...]] = ("ragas", "rapidfuzz")

    def __init__(self, *, reference_contexts: list[str] | None = None, distance_measure: str = "levenshtein",
                 match_threshold: float = 0.5, **kw: Any) -> None:
        super().__init__(**kw)
        if reference_contexts is not None and not isinstance(reference_contexts, list):
            raise EvalsetError(f"{self.kind}: reference_contexts must be a list of strings", key="reference_contexts")
        if not isinstance(match_threshold, int | float) or not 0 <= match_threshold <= 1:
            raise EvalsetError(f"{self.kind}: match_threshold must be in [0, 1]", key="match_threshold")
        self.reference_contexts = reference_contexts
        self.distance_measure = _distance(self.kind, distance_measure)
        self.match_threshold = float(match_threshold)

    def _references(self, sample: Sample) -> list[str]:
        refs = self.reference_contexts
        if refs is None:
            refs = sample.metadata.get("reference_contexts") or []
        return [str(r) for r in refs if str(r).strip()]

    def _missing(self, sample: Sample) -> str | None:
        if not retrieved_of(sample):
            return NO_CONTEXTS.format(kind=self.kind)
        if not self._references(sample):
            return (f"no reference contexts: {self.kind} needs reference_contexts (a parameter or the "
                    "case's metadata)")
        return None

    async def _measure(self, sample: Sample, ctx: EvalContext, ledger: Ledger) -> tuple[float, str]:
        # The collections API has no non-LLM context precision yet; the classic metric is pure
        # string arithmetic (no LLM, no embeddings), so it is safe to await directly.
        from ragas.dataset_schema import SingleTurnSample
        from ragas.metrics._context_precision import NonLLMContextPrecisionWithReference
        from ragas.metrics._string import DistanceMeasure, NonLLMStringSimilarity

        metric = NonLLMContextPrecisionWithReference(
            distance_measure=NonLLMStringSimilarity(distance_measure=DistanceMeasure(self.distance_measure)),
            threshold=self.match_threshold)
        retrieved = retrieved_of(sample)
        value = await metric.single_turn_ascore(
            SingleTurnSample(retrieved_contexts=retrieved, reference_contexts=self._references(sample)))
        # ragas adds 1e-10 to the denominator: 0.49999999995 for an exact 0.5 (see context-precision).
        value = round(float(value), 9)
        if value == 0:
            return value, f"none of the {len(retrieved)} retrieved contexts matches a reference context"
        return value, f"average precision of {len(retrieved)} retrieved contexts against the reference contexts"
