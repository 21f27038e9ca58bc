"""Claim-level hallucination: which sentences of an output the contexts support, contradict, or never mention.

The output is split into atomic claims (sentences, then clauses) with character spans. Each
checkable claim is labelled against the contexts:

- ``supported`` — a context passage states it (paraphrase allowed);
- ``contradicted`` — a passage says something incompatible: another name, number, date, or
  the opposite (negation, antonym);
- ``unsupported`` — no passage covers it (an invented addition).

Two verifiers:

- ``offline`` (default) needs no LLM. It aligns each claim with context clauses by content-word
  coverage and embedding similarity (:mod:`llmops.evaluators.embeddings`; the lexical TF-IDF
  fallback unless MiniLM is installed) and compares entities, numbers with their units,
  negation and antonyms. Its accuracy on a labelled fixture set is guarded by a test.
- ``judge`` asks the judge model for one verdict per numbered claim in ONE call (claims are
  split by us, so spans stay exact), with JSON validation and one repair turn.

Without contexts the evaluator falls back to self-consistency: it re-runs the prompt N times at
a higher temperature and labels each claim by how many samples support it (the samples play
the role of the contexts). Outside a runner, without contexts, the score is ``unmeasured``.

Score value: ``1 - contradiction_rate - unsupported_weight * unsupported_rate`` (clipped to
[0, 1]); with the default weight 1.0 it is simply the share of claims the contexts support.
Unsupported claims are penalised (an invented addition is a hallucination in RAG), unlike
metrics that only count contradictions; a lower weight tolerates unverifiable additions. By
default any contradicted claim fails the output whatever the ratio (``fail_on_contradiction``).
Both raw rates, every claim with its span, and the offending claims are in details.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, field_validator

from llmops.errors import EvalsetError, LLMOpsError
from llmops.evaluators.base import EvalContext, Evaluator, Sample, Score, register_evaluator
from llmops.evaluators.claims import (
    Features,
    Number,
    Span,
    analyze,
    antonym_flips,
    is_checkable,
    proper_nouns,
    split_claims,
    split_clauses,
    split_sentences,
)
from llmops.evaluators.embeddings import Embedder, cosine, get_embedder, is_local
from llmops.evaluators.judge import ask_judge, numbered
from llmops.llm.types import Message

Verdict = Literal["supported", "contradicted", "unsupported"]


@dataclass(frozen=True)
class ClaimVerdict:
    """The verdict on one claim.

    Attributes:
        text: The claim as it appears in the output.
        start: Character offset of the claim in the output.
        end: End offset (``output[start:end] == text``).
        verdict: supported, contradicted or unsupported.
        reason: Why (which number, name or negation differs; what is missing).
        evidence: The context text the verdict rests on, if any.
        agreement: Self-consistency only: fraction of samples that support the claim.
    """

    text: str
    start: int
    end: int
    verdict: Verdict
    reason: str = ""
    evidence: str | None = None
    agreement: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data: dict[str, Any] = {"text": self.text, "start": self.start, "end": self.end,
                                "verdict": self.verdict, "reason": self.reason}
        if self.evidence is not None:
            data["evidence"] = self.evidence
        if self.agreement is not None:
            data["agreement"] = round(self.agreement, 3)
        return data


# ---- the offline verifier ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    """A piece of context a claim is compared with."""

    text: str
    kind: str  # clause, sentence, window, context, all
    context: int
    feats: Features


@dataclass(frozen=True)
class _Comparison:
    coverage: float
    shared: int
    aligned: float  # share of claim words present OR substituted (a conflicting number or name)
    max_run: int
    negation_conflict: str | None
    number_conflict: str | None
    entity_conflict: str | None
    missing_entities: tuple[str, ...]
    missing_numbers: tuple[str, ...]
    polarity_ok: bool

    @property
    def conflict(self) -> str | None:
        return self.number_conflict or self.entity_conflict or self.negation_conflict


def _compatible_kind(a: Number, b: Number) -> bool:
    # A decade and a year are comparable ("the 1950s" vs "1937"); ordinals only with ordinals.
    return a.kind == b.kind or {a.kind, b.kind} == {"cardinal", "decade"}


def _number_status(n: Number, claim_values: set[float], unit_numbers: Sequence[Number]) -> tuple[str, str]:
    """("ok" | "conflict" | "missing", the other number's label for reasons)."""
    same_value = [m for m in unit_numbers if abs(m.value - n.value) <= 1e-9 * max(1.0, abs(n.value))
                  and m.kind == n.kind]
    if any(m.unit == n.unit or m.unit is None or n.unit is None for m in same_value):
        return "ok", ""
    same_unit_other = [m for m in unit_numbers if n.unit is not None and m.unit == n.unit
                       and m.value not in claim_values]
    if same_unit_other:
        return "conflict", same_unit_other[0].label()
    if same_value:
        return "ok", ""  # the same quantity under another unit word ("$" vs "dollars")
    others = [m for m in unit_numbers if m.value not in claim_values and _compatible_kind(m, n)]
    if others:
        return "conflict", others[0].label()
    return "missing", ""


def _prefix_match(token: str, pool: frozenset[str]) -> bool:
    # Derivations share a stem prefix ("found"/"founder", "produc"/"production").
    if len(token) < 5 or token.startswith("#"):
        return False
    return any(len(p) >= 5 and p[:5] == token[:5] for p in pool)


def _compare(claim: Features, unit: Features) -> _Comparison:
    pool = unit.token_set | unit.words
    flips = antonym_flips(claim.words, unit.words)
    flipped = {a for a, _ in flips}
    tokens = list(dict.fromkeys(claim.tokens))
    matched = [t in pool or t in flipped or (t not in claim.entities and _prefix_match(t, pool))
               for t in tokens]
    shared = sum(matched)
    coverage = shared / len(tokens) if tokens else 0.0
    run = longest = 0
    for ok in matched:
        run = 0 if ok else run + 1
        longest = max(longest, run)
    polarity_differs = claim.negated != unit.negated
    if flips:
        polarity_differs = polarity_differs != (len(flips) % 2 == 1)
    negation = None
    if polarity_differs:
        negation = (f"'{claim.show(flips[0][0])}' vs '{unit.show(flips[0][1])}' in the context" if flips
                    else "negation differs from the context")
    claim_values = {n.value for n in claim.numbers}
    number_conflict = None
    missing_numbers: list[str] = []
    substituted = 0
    for n in claim.numbers:
        status, other = _number_status(n, claim_values, unit.numbers)
        if status == "conflict":
            substituted += 1
            if number_conflict is None:
                number_conflict = f"number {n.label()} vs {other} in the context"
        elif status == "missing":
            missing_numbers.append(n.label())
    missing_entities = tuple(claim.show(e) for e in sorted(claim.entities) if e not in pool)
    extra_entities = sorted(e for e in unit.entities if e not in claim.words and e not in claim.token_set)
    entity_conflict = None
    if missing_entities and extra_entities:
        entity_conflict = f"'{missing_entities[0]}' where the context has '{unit.show(extra_entities[0])}'"
        substituted += min(len(missing_entities), len(extra_entities))
    # A substituted number or name is an aligned position holding a different value: it counts
    # towards alignment for the contradiction test ("completed in 1925" vs "completed in 1889").
    aligned = min(1.0, (shared + substituted) / len(tokens)) if tokens else 0.0
    # A negated claim needs a negated (or antonym) statement to be supported.
    polarity_ok = not claim.negated or unit.negated or bool(flips)
    return _Comparison(coverage, shared, aligned, longest, negation, number_conflict, entity_conflict,
                       missing_entities, tuple(missing_numbers), polarity_ok)


@dataclass(frozen=True)
class OfflineThresholds:
    """Decision thresholds of the offline verifier (tuned on the dev split of the fixture set).

    Attributes:
        support_coverage: Share of the claim's content words a passage must contain.
        support_coverage_low: Lower share accepted when embedding similarity is high.
        support_cosine: Embedding similarity that allows the lower coverage.
        conflict_coverage: Share of content words a clause must share (or substitute) for its
            conflict to count.
        max_uncovered_run: Longest run of consecutive uncovered words a supported claim may have
            (invented additions show up as runs; paraphrases scatter their new words).
    """

    support_coverage: float = 0.6
    support_coverage_low: float = 0.45
    support_cosine: float = 0.45
    conflict_coverage: float = 0.5
    max_uncovered_run: int = 2


LEXICAL_THRESHOLDS = OfflineThresholds()
SEMANTIC_THRESHOLDS = OfflineThresholds(support_coverage_low=0.34, support_cosine=0.75)


class OfflineVerifier:
    """Sentence-level grounding without an LLM: entities, numbers, negations, similarity.

    Args:
        embedder: Embeddings for similarity (the lexical fallback when none is installed).
        thresholds: Decision thresholds (default: by the embedder's kind).
    """

    name = "offline"

    def __init__(self, embedder: Embedder, thresholds: OfflineThresholds | None = None) -> None:
        self.embedder = embedder
        self.thresholds = thresholds or (SEMANTIC_THRESHOLDS if embedder.semantic else LEXICAL_THRESHOLDS)

    def _units(self, contexts: Sequence[str], nouns: frozenset[str]) -> list[_Unit]:
        units: list[_Unit] = []
        for ci, context in enumerate(contexts):
            sentences = split_sentences(context)
            for si, sentence in enumerate(sentences):
                clauses = split_clauses(sentence)
                units.extend(_Unit(c.text, "clause", ci, analyze(c.text, nouns)) for c in clauses)
                if len(clauses) > 1:
                    units.append(_Unit(sentence.text, "sentence", ci, analyze(sentence.text, nouns)))
                if si + 1 < len(sentences):
                    pair = f"{sentence.text} {sentences[si + 1].text}"
                    units.append(_Unit(pair, "window", ci, analyze(pair, nouns)))
            if len(sentences) > 2:
                units.append(_Unit(context, "context", ci, analyze(context, nouns)))
        if len(contexts) > 1:
            joined = "\n".join(contexts)
            units.append(_Unit(joined, "all", -1, analyze(joined, nouns)))
        return units

    def _supports(self, comp: _Comparison, cos: float, kind: str) -> bool:
        th = self.thresholds
        if kind in ("clause", "sentence") and comp.conflict:
            return False
        if kind not in ("clause", "sentence") and comp.number_conflict:
            return False
        if comp.missing_entities or comp.missing_numbers or not comp.polarity_ok:
            return False
        if comp.max_run > th.max_uncovered_run:
            return False
        return comp.coverage >= th.support_coverage or (
            comp.coverage >= th.support_coverage_low and cos >= th.support_cosine)

    async def verify(self, claims: Sequence[Span], contexts: Sequence[str], *,
                     output: str = "") -> list[ClaimVerdict]:
        """Label each claim against the contexts."""
        nouns = proper_nouns([*contexts, output])
        units = self._units(contexts, nouns)
        vectors = await self.embedder.embed([c.text for c in claims] + [u.text for u in units])
        claim_vecs, unit_vecs = vectors[:len(claims)], vectors[len(claims):]
        return [self._verdict(claim, analyze(claim.text, nouns), claim_vecs[i], units, unit_vecs)
                for i, claim in enumerate(claims)]

    def _verdict(self, claim: Span, feats: Features, vec: Sequence[float], units: Sequence[_Unit],
                 unit_vecs: Sequence[Sequence[float]]) -> ClaimVerdict:
        th = self.thresholds
        n_tokens = len(set(feats.tokens))
        scored = [(u, _compare(feats, u.feats), cosine(vec, unit_vecs[i])) for i, u in enumerate(units)]
        clauses = [s for s in scored if s[0].kind == "clause"]
        strong_conflicts = [s for s in clauses if s[1].conflict and s[1].aligned >= th.conflict_coverage
                            and s[1].aligned * n_tokens >= min(2, n_tokens) and s[1].shared >= 1]
        local_supports = [s for s in clauses if self._supports(s[1], s[2], "clause")]
        supports = [s for s in scored if self._supports(s[1], s[2], s[0].kind)]

        def make(verdict: Verdict, reason: str, unit: _Unit | None) -> ClaimVerdict:
            return ClaimVerdict(claim.text, claim.start, claim.end, verdict, reason,
                                unit.text if unit is not None else None)

        if strong_conflicts:
            unit, comp, _ = max(strong_conflicts, key=lambda s: (s[1].aligned, s[2]))
            best_local = max((s[1].coverage for s in local_supports), default=-1.0)
            if best_local < comp.coverage:
                return make("contradicted", comp.conflict or "conflicts with the context", unit)
        if supports:
            unit, comp, cos = max(supports, key=lambda s: (s[1].coverage, s[2]))
            return make("supported", f"covered by the context (coverage {comp.coverage:.2f}, "
                                     f"similarity {cos:.2f})", unit)
        if not scored:
            return make("unsupported", "no context text to compare with", None)
        unit, comp, cos = max(scored, key=lambda s: (s[1].coverage, s[2]))
        if comp.missing_entities or comp.missing_numbers:
            what = [f"'{e}'" for e in comp.missing_entities] + list(comp.missing_numbers)
            reason = f"mentions {', '.join(what)}, which no context passage has"
        elif not comp.polarity_ok:
            reason = "the context never states the negation"
        else:
            reason = (f"no context passage covers it (best coverage {comp.coverage:.2f}, "
                      f"similarity {cos:.2f})")
        return make("unsupported", reason, unit if comp.coverage > 0 else None)


# ---- the judge verifier -------------------------------------------------------------------------


class _JudgeVerdict(BaseModel):
    claim: int
    verdict: Verdict
    reason: str = ""

    @field_validator("verdict", mode="before")
    @classmethod
    def _norm(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class _JudgeVerdicts(BaseModel):
    verdicts: list[_JudgeVerdict]


_JUDGE_SYSTEM = ("You are a meticulous fact checker. You compare claims with context passages and never "
                 "use outside knowledge. You answer in JSON.")
_JUDGE_TASK = """For every claim decide:
- "supported": the passages state it or directly imply it (paraphrases count);
- "contradicted": the passages state something incompatible with it (another name, number or date, or the opposite);
- "unsupported": the passages do not say whether it is true.

Reply with JSON only, one entry per claim number, in this form:
{"verdicts": [{"claim": 1, "verdict": "supported", "reason": "<short reason>"}]}"""


class JudgeVerifier:
    """One judge call labels every claim (claims are numbered; spans stay ours).

    Args:
        judge_model: Overrides the context's judge model.
        max_tokens: Judge completion budget.
    """

    name = "judge"

    def __init__(self, judge_model: str | None = None, max_tokens: int = 768) -> None:
        self.judge_model = judge_model
        self.max_tokens = max_tokens

    async def verify(self, claims: Sequence[Span], contexts: Sequence[str], ctx: EvalContext
                     ) -> tuple[list[ClaimVerdict] | None, str, float, dict[str, Any]]:
        """(verdicts or None, reason when None, judge cost, judge details)."""
        user = (f"Context passages:\n{numbered(contexts, prefix='[', limit=12000)}\n\n"
                f"Claims (from a model's answer):\n{numbered([c.text for c in claims])}\n\n{_JUDGE_TASK}")
        expected = set(range(1, len(claims) + 1))

        def check(value: _JudgeVerdicts) -> str | None:
            got = {v.claim for v in value.verdicts}
            missing = sorted(expected - got)
            extra = sorted(got - expected)
            if missing:
                return f"no verdict for claim(s) {missing}; give one entry for each of 1..{len(claims)}"
            if extra:
                return f"claim numbers {extra} do not exist; use 1..{len(claims)}"
            return None

        reply = await ask_judge(ctx, [Message("system", _JUDGE_SYSTEM), Message("user", user)],
                                _JudgeVerdicts, check=check, judge_model=self.judge_model,
                                max_tokens=self.max_tokens, evaluator="hallucination")
        if reply.value is None:
            return None, reply.error or "judge reply unusable", reply.cost_usd, reply.details()
        by_id = {v.claim: v for v in reply.value.verdicts}
        verdicts = [ClaimVerdict(c.text, c.start, c.end, by_id[i].verdict, by_id[i].reason)
                    for i, c in enumerate(claims, 1)]
        return verdicts, "", reply.cost_usd, reply.details()


# ---- the evaluator ---------------------------------------------------------------------------------

_VERIFIERS = ("offline", "judge")


@register_evaluator("hallucination")
class Hallucination(Evaluator):
    """Claim-level hallucination against the case's contexts (see module docstring).

    Params:
        verifier: ``offline`` (default, no LLM) or ``judge``.
        unsupported_weight: Weight of the unsupported rate in the value (default 1.0).
        fail_on_contradiction: Fail when any claim is contradicted, whatever the value (default true).
        self_consistency: Samples drawn when the case has no contexts (default 3; 0 = off,
            then a case without contexts is unmeasured).
        temperature: Sampling temperature of the self-consistency samples (default 0.8).
        embeddings: ``auto`` (default), ``lexical`` or ``minilm`` (offline verifier).
        judge_model: Overrides the configured judge model (judge verifier).
        max_claims: Claims checked per output at most (default 40; the rest are ignored and counted).
    """

    version = "1"
    default_threshold: ClassVar[float | None] = 0.7

    def __init__(self, *, verifier: str = "offline", unsupported_weight: float = 1.0,
                 fail_on_contradiction: bool = True,
                 self_consistency: int = 3, temperature: float = 0.8, embeddings: str = "auto",
                 judge_model: str | None = None, max_claims: int = 40, **kw: Any) -> None:
        super().__init__(**kw)
        if verifier not in _VERIFIERS:
            raise EvalsetError(f"hallucination: verifier must be one of {', '.join(_VERIFIERS)}, "
                               f"got {verifier!r}", key="verifier")
        if not 0 <= unsupported_weight <= 1:
            raise EvalsetError("hallucination: unsupported_weight must be in [0, 1]", key="unsupported_weight")
        if self_consistency < 0 or self_consistency == 1:
            raise EvalsetError("hallucination: self_consistency must be 0 (off) or at least 2 samples",
                               key="self_consistency")
        self.verifier = verifier
        self.unsupported_weight = unsupported_weight
        self.fail_on_contradiction = fail_on_contradiction
        self.self_consistency = self_consistency
        self.temperature = temperature
        self.embeddings = embeddings
        self.judge_model = judge_model
        self.max_claims = max_claims
        # Local embedders are resolved now (a bad name fails when the suite loads); a LiteLLM
        # embedding model needs the run's client, so it is resolved per score.
        self._embedder: Embedder | None = get_embedder(embeddings) if is_local(embeddings) else None

    async def _verify(self, claims: Sequence[Span], contexts: Sequence[str], output: str, ctx: EvalContext
                      ) -> tuple[list[ClaimVerdict] | None, str, float, dict[str, Any]]:
        if self.verifier == "judge":
            return await JudgeVerifier(self.judge_model).verify(claims, contexts, ctx)
        try:
            embedder = self._embedder or get_embedder(self.embeddings, client=ctx.client,
                                                      metadata={**ctx.metadata, "purpose": "embedding"})
            before = float(getattr(embedder, "cost_usd", 0.0))
            verdicts = await OfflineVerifier(embedder).verify(claims, contexts, output=output)
        except LLMOpsError as err:  # embedding model missing, failing or timing out
            return None, f"embeddings unavailable: {err.message}", 0.0, {}
        cost = float(getattr(embedder, "cost_usd", 0.0)) - before
        return verdicts, "", cost, {"embeddings": embedder.description}

    async def score(self, sample: Sample, ctx: EvalContext) -> Score:
        """Split, verify, and score the output's claims."""
        if not sample.output.strip():
            return self.unmeasured("empty output: no claims to check")
        claims = split_claims(sample.output)
        checkable = [c for c in claims if is_checkable(c.text)]
        skipped = [c.text for c in claims if not is_checkable(c.text)]
        ignored = max(0, len(checkable) - self.max_claims)
        checkable = checkable[:self.max_claims]
        base: dict[str, Any] = {"verifier": self.verifier, "skipped": skipped}
        if ignored:
            base["ignored_claims"] = ignored
        if not checkable:
            return self.measured(1.0, "no factual claims to check (only questions, filler or refusals)",
                                 details={**base, "claims": [], "n_claims": 0})
        contexts = [c for c in sample.contexts if c.strip()]
        if contexts:
            verdicts, problem, cost, extra = await self._verify(checkable, contexts, sample.output, ctx)
            details = {**base, "method": "contexts", **extra}
            if verdicts is None:
                return self.unmeasured(problem, details=details, cost_usd=cost)
            return self._result(verdicts, details, cost)
        return await self._self_consistency(sample, ctx, checkable, base)

    async def _self_consistency(self, sample: Sample, ctx: EvalContext, claims: list[Span],
                                base: dict[str, Any]) -> Score:
        if self.self_consistency == 0:
            return self.unmeasured("no contexts to check the claims against (self_consistency is off)",
                                   details=base)
        if ctx.regenerate is None:
            return self.unmeasured("no contexts, and self-consistency needs to re-run the prompt, which is "
                                   "only possible inside a suite run", details=base)
        regenerate = ctx.regenerate
        try:
            completions = await asyncio.gather(*(
                regenerate(dict(sample.inputs), sample=i, params={"temperature": self.temperature})
                for i in range(self.self_consistency)))
        except LLMOpsError as err:
            return self.unmeasured(f"self-consistency sampling failed: {err.message}", details=base)
        cost = sum(c.cost_usd for c in completions)
        samples = [c.text for c in completions if c.text.strip()]
        details = {**base, "method": "self-consistency", "samples": samples,
                   "sampling_cost_usd": cost}
        if len(samples) < 2:
            return self.unmeasured("self-consistency: fewer than 2 non-empty samples", details=details,
                                   cost_usd=cost)
        if len(set(samples)) == 1:
            # Identical samples are one resample, not N: the check is weaker than it looks.
            details["samples_identical"] = True
        per_sample: list[list[ClaimVerdict]] = []
        for text in samples:
            verdicts, problem, judge_cost, extra = await self._verify(claims, [text], sample.output, ctx)
            cost += judge_cost
            details.update(extra)
            if verdicts is None:
                return self.unmeasured(f"self-consistency: {problem}", details=details, cost_usd=cost)
            per_sample.append(verdicts)
        merged: list[ClaimVerdict] = []
        n = len(per_sample)
        for i, claim in enumerate(claims):
            labels = [vs[i].verdict for vs in per_sample]
            agree = labels.count("supported") / n
            against = labels.count("contradicted")
            if agree >= 0.5:
                verdict: Verdict = "supported"
            elif against * 2 > n:
                verdict = "contradicted"
            else:
                verdict = "unsupported"
            reason = f"{labels.count('supported')}/{n} samples support it, {against}/{n} contradict it"
            merged.append(ClaimVerdict(claim.text, claim.start, claim.end, verdict, reason, agreement=agree))
        score = self._result(merged, details, cost)
        if details.get("samples_identical"):
            score = replace(score, reason=score.reason + " (note: all samples were identical; the model may "
                                                         "be deterministic for these inputs)")
        return score

    def _result(self, verdicts: list[ClaimVerdict], details: dict[str, Any], cost: float) -> Score:
        n = len(verdicts)
        contradicted = [v for v in verdicts if v.verdict == "contradicted"]
        unsupported = [v for v in verdicts if v.verdict == "unsupported"]
        c_rate, u_rate = len(contradicted) / n, len(unsupported) / n
        value = round(max(0.0, 1.0 - c_rate - self.unsupported_weight * u_rate), 6)
        offending = contradicted + unsupported
        details = {**details, "n_claims": n, "contradiction_rate": c_rate, "unsupported_rate": u_rate,
                   "claims": [v.to_dict() for v in verdicts],
                   "offending": [v.to_dict() for v in offending]}
        if not offending:
            reason = f"all {n} claim(s) supported"
        else:
            shown = "; ".join(f'{v.verdict} "{v.text}" [{v.start}:{v.end}]: {v.reason}' for v in offending[:3])
            more = f" (+{len(offending) - 3} more)" if len(offending) > 3 else ""
            reason = f"{len(contradicted)} contradicted, {len(unsupported)} unsupported of {n}: {shown}{more}"
        score = self.measured(value, reason, details=details, cost_usd=cost)
        if self.fail_on_contradiction and contradicted and score.status == "pass":
            # A contradiction is a hard error: a high share of good claims must not hide it.
            score = replace(score, status="fail", reason="a claim contradicts the context; " + reason)
        return score
