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
import itertools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, field_validator

from llmops.errors import EvalsetError, LLMOpsError
from llmops.evaluators.base import EvalContext, Evaluator, Sample, Score, register_evaluator
from llmops.evaluators.claims import (
    ANTONYMS,
    CURRENCY_SYMBOLS,
    IMPLICIT_NEGATIVES,
    LIGHT_WORDS,
    MONTHS,
    STOPWORDS,
    Features,
    Number,
    Slot,
    Span,
    analyze,
    antonym_flips,
    canon,
    is_checkable,
    normalize,
    proper_nouns,
    slots,
    split_claims,
    split_clauses,
    split_sentences,
    stem,
    tokenize,
)
from llmops.evaluators.embeddings import Embedder, cosine, get_embedder, is_local
from llmops.evaluators.judge import ask_judge, numbered
from llmops.llm.types import Message

Verdict = Literal["supported", "contradicted", "unsupported", "abstained"]


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
#
# Align first, then compare only aligned slots. Each claim is aligned with the context sentence
# (or pair of adjacent sentences) that holds the largest IDF-weighted share of the claim's content
# words that the contexts know at all, and of its numbers that some sentence gives with the same
# value (a wrong number matches none, so it cannot pull the claim towards the sentence that
# happens to hold it). Then only that sentence is compared with the claim: numbers with the words
# around them, months, names in the same position, who did what to whom, negation and opposite
# words. New names, numbers or mostly new words make a claim unsupported (an invented addition).
# A claim that aligns with no sentence well enough, or with only a few new common words, or whose
# only difference may be a paraphrase (a DOUBT reason), is abstained on ("abstained"), never
# guessed: a false alarm costs more than a claim left unchecked.


@dataclass(frozen=True)
class _Unit:
    """A context sentence, clause or pair of adjacent sentences."""

    text: str
    kind: str  # sentence, clause, window
    parent: int  # index of the sentence a clause belongs to (itself for a sentence; -1 for a window)
    slots: tuple[Slot, ...]
    feats: Features
    keys: frozenset[str]
    topic: frozenset[str] = frozenset()  # names of the contexts' first sentences ("it" may be them)


@dataclass(frozen=True)
class OfflineThresholds:
    """Decision thresholds of the offline verifier (chosen on the labelled splits; see docs/evaluators.md).

    Attributes:
        align: IDF-weighted share of the claim's known content words a context sentence must
            hold to be compared with the claim; below it the claim is abstained on.
        novel_share: Share of the claim's content words that no context uses at all from which
            the claim is unsupported (with ``novel_sure`` such words) or undecided (with
            ``novel_min``); more than half new words is an addition whatever their count.
        novel_min: Fewest unknown content words that leave a claim undecided (abstained: a
            paraphrase or an addition).
        novel_sure: Fewest unknown content words that make a claim unsupported.
        semantic_weight: Weight of embedding similarity in the alignment when the embedder is
            semantic (0 with the lexical fallback: TF-IDF adds nothing to word overlap).
        number_align: Alignment a sentence needs for a claim's number to be compared with its
            numbers when the claim's aligned sentence has none of that kind.
    """

    align: float = 0.6
    novel_share: float = 0.4
    novel_min: int = 2
    novel_sure: int = 3
    semantic_weight: float = 0.3
    number_align: float = 0.3


LEXICAL_THRESHOLDS = OfflineThresholds()
SEMANTIC_THRESHOLDS = OfflineThresholds()

_YEAR_LOW, _YEAR_HIGH = 1000, 2100
DOUBT = "doubt: "  # a conflict reason with this prefix is not sure enough to contradict: abstain
_NOT_YEARS = CURRENCY_SYMBOLS | {"%"}


# Units of measure: two numbers with different ones are different quantities. Any other word
# after a number is only a guess at its unit ("in 2012, Chen ..."), so it never decides.
_MEASURES = frozenset(canon(stem(u)) for u in (
    "%", "percent", "$", "€", "£", "¥", "am", "pm", "km", "kilometre", "metre", "m", "cm", "mm", "kg", "g", "mg",
    "ml", "l", "litre", "tonne", "ton", "c", "f", "degree", "second", "minute", "hour", "day", "week", "month", "year",
    "euro", "pound", "dollar", "yen", "mph", "kph", "gb", "mb", "tb", "w", "kw", "mw", "v"))


# Units of one dimension, as multiples of a base unit: "1.2 kilometres" is "1,200 metres".
_CONVERSIONS: dict[str, tuple[str, float]] = {canon(stem(u)): (dim, f) for u, dim, f in (
    ("kilometre", "length", 1000.0), ("metre", "length", 1.0), ("centimetre", "length", 0.01),
    ("millimetre", "length", 0.001), ("mile", "length", 1609.344),
    ("tonne", "mass", 1e6), ("kilogram", "mass", 1000.0), ("gram", "mass", 1.0), ("milligram", "mass", 0.001),
    ("litre", "volume", 1.0), ("millilitre", "volume", 0.001),
    ("second", "time", 1.0), ("minute", "time", 60.0), ("hour", "time", 3600.0), ("day", "time", 86400.0),
    ("week", "time", 604800.0),
)}


def _base(n: Number) -> tuple[float, str | None]:
    """The value in its dimension's base unit, and the dimension (None when the unit converts to nothing)."""
    unit = _unit_word(n)
    if unit is not None and unit in _CONVERSIONS:
        dim, factor = _CONVERSIONS[unit]
        return n.value * factor, dim
    return n.value, None


def _kind_of(n: Number) -> str:
    if (n.kind == "cardinal" and not n.grouped and n.unit not in _NOT_YEARS and n.value == int(n.value)
            and _YEAR_LOW <= n.value <= _YEAR_HIGH and (n.unit is None or canon(n.unit) not in _MEASURES)):
        return "year"
    return n.kind


def _unit_word(n: Number) -> str | None:
    """The number's unit when it reads as one (a capitalised word after a year is a name, not a unit)."""
    if n.unit is None or (n.unit_text is not None and n.unit_text[:1].isupper()):
        return None
    return canon(n.unit)


def _comparable(a: Number, b: Number) -> bool:
    """Numbers of one kind and unit: "10 weeks" and "600,000 copies" are not two values of one slot."""
    ka, kb = _kind_of(a), _kind_of(b)
    if ka != kb and {ka, kb} != {"year", "decade"}:
        return False
    if ka == "year":
        return True
    ua, ub = _unit_word(a), _unit_word(b)
    if ua in _CONVERSIONS and ub in _CONVERSIONS:
        return _CONVERSIONS[ua][0] == _CONVERSIONS[ub][0]
    return ua is None or ub is None or ua == ub


def _same_quantity(a: Number, b: Number) -> bool:
    """The same value of the same kind, whatever unit word follows ("30 games" and "30 matches")."""
    ka, kb = _kind_of(a), _kind_of(b)
    return _same_value(a, b) and (ka == kb or {ka, kb} == {"year", "decade"})


def _same_value(a: Number, b: Number) -> bool:
    (va, da), (vb, db) = _base(a), _base(b)
    if da is None or da != db:
        va, vb = a.value, b.value
    return abs(va - vb) <= 1e-9 * max(1.0, abs(va))


def _near_words(items: Sequence[Slot], index: int, span: int = 2, *, names: bool = False
                ) -> tuple[set[str], set[str]]:
    """Canonical content words (and name parts, with ``names``) just before and just after ``index``."""
    kinds = ("word", "entity") if names else ("word",)
    before = {canon(s.key) for s in items[max(0, index - span):index] if s.kind in kinds}
    after = {canon(s.key) for s in items[index + 1:index + 1 + span] if s.kind in kinds}
    return before, after


def _prefix_known(key: str, pool: frozenset[str] | set[str]) -> bool:
    # Derivations share a stem prefix ("found"/"founder", "produc"/"production", "scor"/"scorer").
    if len(key) < 4 or key.startswith("#"):
        return False
    return any((len(p) >= 5 and len(key) >= 5 and p[:5] == key[:5])
               or (len(p) >= 4 and (key.startswith(p) or p.startswith(key))) for p in pool)


def _has(key: str, pool: frozenset[str] | set[str]) -> bool:
    return key in pool or _prefix_known(key, pool)


def _groups(items: Sequence[Slot]) -> dict[int, list[Slot]]:
    out: dict[int, list[Slot]] = {}
    for s in items:
        if s.kind == "entity" and s.key not in _MONTH_STEMS:
            out.setdefault(s.group, []).append(s)
    return out


_MONTH_STEMS = frozenset(stem(m) for m in MONTHS)


class OfflineVerifier:
    """Claim-to-sentence alignment, then slot comparison; no LLM.

    Args:
        embedder: Embeddings blended into the alignment when semantic (the lexical fallback
            adds nothing to word overlap and is not called).
        thresholds: Decision thresholds (default: by the embedder's kind).
    """

    name = "offline"

    def __init__(self, embedder: Embedder, thresholds: OfflineThresholds | None = None) -> None:
        self.embedder = embedder
        self.thresholds = thresholds or (SEMANTIC_THRESHOLDS if embedder.semantic else LEXICAL_THRESHOLDS)

    @staticmethod
    def _unit(text: str, kind: str, parent: int, nouns: frozenset[str]) -> _Unit:
        items = tuple(slots(text, nouns))
        # Numbers are keys too: a claim's number that a sentence gives as well ties the two (a wrong
        # number matches no sentence, so it cannot pull the claim anywhere).
        keys = frozenset(canon(s.key) for s in items)
        return _Unit(text, kind, parent, items, analyze(text, nouns), keys)

    def _units(self, contexts: Sequence[str], nouns: frozenset[str]) -> list[_Unit]:
        # The subject a passage opens with is what its later "it" / "the river" refers to.
        topic: set[str] = set()
        for context in contexts:
            for first in split_sentences(context)[:1]:
                groups = _groups(slots(first.text, nouns))
                if groups:  # the first name of the first sentence: its subject, as a rule
                    topic.update(canon(p.key) for p in groups[min(groups)])
        units = self._units_of(contexts, nouns)
        return [replace(u, topic=frozenset(topic)) if u.kind != "clause" else u for u in units]

    def _units_of(self, contexts: Sequence[str], nouns: frozenset[str]) -> list[_Unit]:
        units: list[_Unit] = []
        for context in contexts:
            sentences = split_sentences(context)
            first = len(units)
            for sentence in sentences:
                index = len(units)
                units.append(self._unit(sentence.text, "sentence", index, nouns))
                clauses = split_clauses(sentence)
                if len(clauses) > 1:
                    units.extend(self._unit(c.text, "clause", index, nouns) for c in clauses)
            starts = [i for i in range(first, len(units)) if units[i].kind == "sentence"]
            for a, b in itertools.pairwise(starts):
                units.append(self._unit(f"{units[a].text} {units[b].text}", "window", -1, nouns))
        return units

    async def verify(self, claims: Sequence[Span], contexts: Sequence[str], *,
                     output: str = "") -> list[ClaimVerdict]:
        """Label each claim against the contexts."""
        nouns = proper_nouns([*contexts, output])
        units = self._units(contexts, nouns)
        sentences = [u for u in units if u.kind == "sentence"]
        df: Counter[str] = Counter()
        for u in sentences:
            df.update(u.keys)
        n_sent = max(1, len(sentences))
        idf = {k: math.log((n_sent + 1) / (v + 0.5)) + 1.0 for k, v in df.items()}
        vocab = frozenset(df)
        numbers = [s.number for u in sentences for s in u.slots if s.number is not None]
        cos: list[list[float]] | None = None
        th = self.thresholds
        if self.embedder.semantic and th.semantic_weight > 0 and units:
            vectors = await self.embedder.embed([c.text for c in claims] + [u.text for u in units])
            cos = [[cosine(vectors[i], vectors[len(claims) + j]) for j in range(len(units))]
                   for i in range(len(claims))]
        return [self._verdict(claim, nouns, units, idf, vocab, numbers, cos[i] if cos else None)
                for i, claim in enumerate(claims)]

    def _verdict(self, claim: Span, nouns: frozenset[str], units: Sequence[_Unit], idf: dict[str, float],
                 vocab: frozenset[str], numbers: Sequence[Number], cos: Sequence[float] | None) -> ClaimVerdict:
        th = self.thresholds
        items = slots(claim.text, nouns)
        feats = analyze(claim.text, nouns)

        def make(verdict: Verdict, reason: str, unit: _Unit | None = None) -> ClaimVerdict:
            return ClaimVerdict(claim.text, claim.start, claim.end, verdict, reason,
                                unit.text if unit is not None else None)

        keys = list(dict.fromkeys(canon(s.key) for s in items if s.kind != "number"))
        claim_numbers = [s.number for s in items if s.number is not None]
        known = [k for k in keys if _has(k, vocab)]
        light = {canon(s.key) for s in items if s.kind == "word" and s.key in LIGHT_WORDS}
        novel = [k for k in keys if k not in known and k not in LIGHT_WORDS and k not in light]
        novel_names = [s for s in items if s.kind == "entity" and canon(s.key) in novel]
        known += list(dict.fromkeys(n.key() for n in claim_numbers if n.key() in vocab and not n.soft))
        novel_numbers = [n for n in claim_numbers if not n.soft and not any(_same_quantity(n, m) for m in numbers)]
        if not units:
            return make("unsupported", "no context text to compare with")
        best, share = self._align(known, units, idf, cos, ("sentence",))
        if best is None or share < th.align:
            # Only when no single sentence aligns: a pair of adjacent sentences ("It ...").
            pair, pair_share = self._align(known, units, idf, cos, ("window",))
            if pair is not None and pair_share > share:
                best, share = pair, pair_share
        aligned = best is not None and share >= th.align
        # A claim may join two sentences ("800,000 people visit Brackwater Zoo" from "Brackwater
        # Zoo is ..." and "... welcomes 800,000 visitors a year"): a number that another sentence
        # about the claim gives with the same value is supported there, not contradicted here.
        elsewhere = [n for n in claim_numbers if best is not None and any(
            u.kind == "sentence" and u.text not in best.text
            and any(t.number is not None and _same_quantity(n, t.number) and _comparable(n, t.number)
                    for t in u.slots)
            and self._align(known, [u], idf, None, ("sentence",))[1] >= th.align for u in units)]
        conflict = (self._conflict(claim.text, items, feats, best, units, idf, elsewhere, vocab)
                    if aligned and best is not None else None)
        if not conflict and aligned and best is not None:
            # A number the aligned sentence does not give ("The company employs ..." aligned by its
            # name elsewhere): compare it in the best-aligned sentence that gives numbers of its kind.
            for n in claim_numbers:
                # Given there, with the same value under another unit word ("800,000 people" for
                # "800,000 visitors") or a comparable one: nothing to look for elsewhere.
                if any(t.number is not None and (_comparable(n, t.number) or _same_quantity(n, t.number))
                       for t in best.slots):
                    continue
                holders = [u for u in units if u.kind == "sentence"
                           and any(t.number is not None and _comparable(n, t.number) for t in u.slots)]
                holder, holder_share = self._align(known, holders, idf, None, ("sentence",))
                if holder is not None and holder_share >= th.number_align:
                    conflict = _number_conflict(items, holder, elsewhere, claim.text)
                    if conflict:
                        best = holder
                        break
        if conflict and not conflict.startswith(DOUBT):
            return make("contradicted", conflict, best)
        novel_share = len(novel) / len(keys) if keys else 0.0
        what = ([f"'{feats.show(s.key)}'" for s in novel_names]
                + [n.label() for n in novel_numbers]
                + [f"'{feats.show(k)}'" for k in novel if k not in {canon(s.key) for s in novel_names}][:4])
        # New names or numbers, or mostly new words, are an addition. A few new common words in a
        # claim that is otherwise stated are as likely a paraphrase ("Nobody set a new course
        # record" / "The course record was not broken"): no verdict either way.
        if novel_names or novel_numbers or (keys and novel_share > 0.5 and len(novel) >= 2) \
                or (len(novel) >= th.novel_sure and novel_share >= th.novel_share):
            return make("unsupported", f"mentions {', '.join(what)}, which no context passage has", best)
        if (len(novel) >= th.novel_min and novel_share >= th.novel_share) or (keys and novel_share > 0.5):
            return make("abstained", f"mentions {', '.join(what)}, which no context passage has: a paraphrase or "
                                     "an addition, not decided", best)
        if conflict:
            return make("abstained", f"a difference that may be a paraphrase, not decided: {conflict[len(DOUBT):]}",
                        best)
        if not aligned or best is None:
            where = f" (best: \"{best.text[:80]}\", alignment {share:.2f})" if best is not None else ""
            return make("abstained", f"no context sentence aligns well enough to check it{where}", best)
        return make("supported", f"stated by the aligned context sentence (alignment {share:.2f})", best)

    @staticmethod
    def _align(known: Sequence[str], units: Sequence[_Unit], idf: dict[str, float],
               cos: Sequence[float] | None, kinds: tuple[str, ...],
               semantic_weight: float = 0.3) -> tuple[_Unit | None, float]:
        """The sentence (or adjacent pair) holding the most of the claim's known words, and that share."""
        total = sum(idf.get(k, 1.0) for k in known)
        best: tuple[float, int, int] | None = None
        for i, u in enumerate(units):
            if u.kind not in kinds:
                continue
            # An opposite word still aligns (it is the slot that differs), but less than the word itself.
            got = sum(idf.get(k, 1.0) * (1.0 if _has(k, u.keys) or k in u.topic
                                         else 0.75 if _flipped(k, u.keys) else 0.0)
                      for k in known)
            share = got / total if total else 0.0
            if cos is not None:
                share = (1 - semantic_weight) * share + semantic_weight * max(0.0, cos[i])
            # Ties go to a single sentence over a pair, then to the shorter text.
            rank = (round(share, 9), 1 if u.kind == "sentence" else 0, -len(u.slots))
            if best is None or rank > (best[0], best[1], best[2]):
                best = (rank[0], rank[1], rank[2])
                chosen = i
        if best is None:
            return None, 0.0
        return units[chosen], best[0]

    @staticmethod
    def _conflict(text: str, items: Sequence[Slot], feats: Features, unit: _Unit, units: Sequence[_Unit],
                  idf: dict[str, float], elsewhere: Sequence[Number] = (),
                  vocab: frozenset[str] = frozenset()) -> str | None:
        """Why the claim contradicts its aligned unit (None when no aligned slot differs).

        A reason starting with ``DOUBT`` is a conflict that may as well be a paraphrase: returned
        only when no check finds a sure one, and the claim is then abstained on.
        """
        names = [frozenset(canon(p.key) for p in parts) for u in units if u.kind == "sentence"
                 for parts in _groups(u.slots).values() if len(parts) > 1]
        doubt: str | None = None
        checks: tuple[Callable[[], str | None], ...] = (
            lambda: _number_conflict(items, unit, elsewhere, text), lambda: _month_conflict(items, unit),
            lambda: _name_conflict(items, feats, unit, names), lambda: _attribute_conflict(items, feats, unit, vocab),
            lambda: _role_conflict(items, feats, unit), lambda: _polarity_conflict(text, feats, unit, units, idf))
        for check in checks:
            found = check()
            if found and not found.startswith(DOUBT):
                return found
            doubt = doubt or found
        return doubt  # only doubtful conflicts (or none)


# Opposite pairs in synonym-group keys (the alignment compares those): "open" is in the group of
# "begin", "closed" in that of "finish", and the pair must still read as opposite there.
_CANON_OPPOSITES: dict[str, frozenset[str]] = {}
for _a, _b in ANTONYMS:
    for _mine, _theirs in ((_a, _b), (_b, _a)):
        for _w in _mine:
            if _w not in STOPWORDS:
                _CANON_OPPOSITES[canon(stem(_w))] = _CANON_OPPOSITES.get(canon(stem(_w)), frozenset()) | {
                    canon(stem(t)) for t in _theirs if t not in STOPWORDS}


def _flipped(key: str, pool: frozenset[str] | set[str]) -> bool:
    opposite = _CANON_OPPOSITES.get(key, frozenset()) - {key}
    return bool(antonym_flips(frozenset({key}), frozenset(pool))) or bool(opposite & pool)


def _lead_word(text: str, n: Number) -> str | None:
    """The word just before the (first) number of ``n``'s value in ``text`` ("from", "to", "by")."""
    tokens = tokenize(normalize(text))
    for i, tok in enumerate(tokens):
        if tok.number is not None and abs(tok.number - n.value) < 1e-9 * max(1.0, n.value) and i > 0:
            return tokens[i - 1].folded
    for i, tok in enumerate(tokens):  # "130 million": the token holds 130, the number 130,000,000
        if tok.number is not None and i > 0 and any(
                abs(tok.number * f - n.value) < 1e-9 * max(1.0, n.value) for f in (1e3, 1e6, 1e9, 1e12)):
            return tokens[i - 1].folded
    return None


def _number_conflict(items: Sequence[Slot], unit: _Unit, elsewhere: Sequence[Number] = (),
                     text: str = "") -> str | None:
    claim_values = [s.number for s in items if s.number is not None]
    theirs = [(i, s) for i, s in enumerate(unit.slots) if s.number is not None]
    for ci, s in enumerate(items):
        n = s.number
        if n is None or any(n is e for e in elsewhere):
            continue
        comparable = [(i, t) for i, t in theirs if t.number is not None and _comparable(n, t.number)]
        if not comparable:
            continue
        before, after = _near_words(items, ci)

        def anchor(pos: int, before: set[str] = before, after: set[str] = after) -> int:
            b, a = _near_words(unit.slots, pos)
            return 2 * len(before & b) + len(after & a)

        near = set().union(*_near_words(items, ci, names=True))

        def loose(pos: int, near: set[str] = near) -> int:
            return len(near & set().union(*_near_words(unit.slots, pos, names=True)))

        scored = sorted(comparable, key=lambda it: anchor(it[0]), reverse=True)
        top = anchor(scored[0][0])
        if top > 0:
            bound = [t for i, t in scored if anchor(i) == top]
            if any(t.number is not None and _same_value(n, t.number) for t in bound):
                continue
            other = bound[0].number
            assert other is not None
            if any(_same_value(other, v) for v in claim_values):
                continue  # the other number is stated too ("from 4.1% to 3.8%")
            reason = f"number {n.label()} vs {other.label()} in the context"
            # A paraphrase moves the words around a number ("at the airport it costs 50 euros" /
            # "35 euros when booked online and 50 euros at the airport"): when the claim's own value
            # is bound as tightly in any word order, which number it restates is a guess.
            top_loose = max(loose(i) for i, t in scored if anchor(i) == top)
            if any(t.number is not None and _same_value(n, t.number) and loose(i) >= top_loose for i, t in scored):
                return DOUBT + reason
            return reason
        if any(t.number is not None and _same_value(n, t.number) for _, t in comparable):
            continue
        unused = [t.number for _, t in comparable
                  if t.number is not None and not any(_same_value(t.number, v) for v in claim_values)]
        if unused:
            return f"number {n.label()} vs {unused[0].label()} in the context"
    # Two numbers in the claim in the opposite order around the same word ("61 votes to 217").
    pairs = [(i, s.number) for i, s in enumerate(items) if s.number is not None]
    for (i1, n1), (i2, n2) in itertools.combinations(pairs, 2):
        assert n1 is not None and n2 is not None
        p1 = [i for i, t in theirs if t.number is not None and _same_value(n1, t.number)]
        p2 = [i for i, t in theirs if t.number is not None and _same_value(n2, t.number)]
        if len(p1) == 1 and len(p2) == 1 and p1[0] > p2[0] and not _same_value(n1, n2):
            between = {canon(s.key) for s in items[i1 + 1:i2] if s.kind == "word"}
            theirs_between = {canon(s.key) for s in unit.slots[p2[0] + 1:p1[0]] if s.kind == "word"}
            t1, t2 = unit.slots[p1[0]].number, unit.slots[p2[0]].number
            assert t1 is not None and t2 is not None
            # The numbers' own unit words ("130 million dollars to 112 million" / "112 million
            # dollars from 130 million") say nothing about order; a word between them does, and
            # so do unit words that changed places ("31 players from 212 countries").
            units = {u for u in (_unit_word(n1), _unit_word(n2)) if u is not None}
            swapped = (_unit_word(n1) != _unit_word(t1) and _unit_word(n1) == _unit_word(t2)
                       and _unit_word(n2) == _unit_word(t1))
            # The little word before each number says its role: "from 130 million dollars to 112
            # million" is "to 112 million dollars from 130 million" read backwards.
            if text and all(_lead_word(text, n) is not None and _lead_word(text, n) == _lead_word(unit.text, n)
                            for n in (n1, n2)):
                continue
            if (between & theirs_between) - units or swapped:
                return f"{n1.label()} and {n2.label()} are the other way round in the context"
    return None


def _month_conflict(items: Sequence[Slot], unit: _Unit) -> str | None:
    mine = {s.key for s in items if s.key in _MONTH_STEMS}
    theirs = {s.key for s in unit.slots if s.key in _MONTH_STEMS}
    if mine and theirs and not mine & theirs:
        return f"month {sorted(mine)[0].capitalize()} vs {sorted(theirs)[0].capitalize()} in the context"
    return None


def _name_conflict(items: Sequence[Slot], feats: Features, unit: _Unit,
                   names: Sequence[frozenset[str]] = ()) -> str | None:
    """A name of the claim in the slot where the aligned sentence has another name.

    ``names`` are the full names of the contexts: "Tanaka" and "Tomas" are one person where the
    contexts say "Tomas Tanaka".
    """
    claim_keys = {canon(s.key) for s in items}
    theirs = _groups(unit.slots)
    unmatched_theirs = {g: parts for g, parts in theirs.items() if not any(canon(p.key) in claim_keys for p in parts)}
    if not unmatched_theirs:
        return None
    for parts in _groups(items).values():
        if any(_has(canon(p.key), unit.keys) for p in parts) or {canon(p.key) for p in parts} <= unit.topic:
            continue  # present, or the passage's subject that the sentence calls "it" / "the company"
        left, right = _near_words(items, parts[0].index)[0], _near_words(items, parts[-1].index)[1]
        for other in unmatched_theirs.values():
            o_left, o_right = _near_words(unit.slots, other[0].index)[0], _near_words(unit.slots, other[-1].index)[1]
            same_person = any({canon(p.key) for p in parts} & n and {canon(p.key) for p in other} & n
                              for n in names)
            if not same_person and ((left & o_left) or (right & o_right)):
                mine = " ".join(feats.show(p.key) for p in parts)
                return f"'{mine}' where the context has '{unit.feats.show(other[0].key)}'"
    return None


def _runs(items: Sequence[Slot], inside: frozenset[str]) -> list[tuple[int, int]]:
    """(start, end) of maximal runs of word slots whose key is not in ``inside``."""
    out: list[tuple[int, int]] = []
    start = -1
    for i, s in enumerate([*items, Slot("end", "", len(items))]):
        foreign = s.kind == "word" and not _has(canon(s.key), inside) and not _flipped(canon(s.key), inside)
        if foreign and start < 0:
            start = i
        elif not foreign and start >= 0:
            out.append((start, i))
            start = -1
    return out


_COMMON_VERBS = frozenset(stem(v) for v in (
    "contain", "include", "have", "lie", "sit", "stand", "come", "go", "take", "make", "give", "keep", "offer",
    "provide", "serve", "use", "need", "show", "get", "put", "run", "become", "remain", "seem", "feature"))


def _attribute_conflict(items: Sequence[Slot], feats: Features, unit: _Unit, vocab: frozenset[str]) -> str | None:
    """Other words in the same place, between the same words on both sides.

    "maker of garden sensors in Europe" where the context says "maker of industrial scanners in
    Europe".
    """
    mine_keys = frozenset(canon(s.key) for s in items if s.kind != "number")

    def key_at(seq: Sequence[Slot], i: int) -> str | None:
        return canon(seq[i].key) if 0 <= i < len(seq) and seq[i].kind != "number" else None

    if unit.kind == "window":
        return None  # two sentences glued: the words between two anchors may span the boundary
    for a, b in _runs(items, unit.keys):
        first = feats.show(items[a].key).lower()
        # Verbs are paraphrased freely ("located" for "lies"): only nouns and adjectives count.
        if b - a > 2 or first.endswith(("ed", "ing")) or stem(first) in _COMMON_VERBS or items[a].key in LIGHT_WORDS:
            continue
        left, right = key_at(items, a - 1), key_at(items, b)
        for c, d in _runs(unit.slots, mine_keys):
            if d - c > 2:
                continue
            o_left, o_right = key_at(unit.slots, c - 1), key_at(unit.slots, d)
            same_left = left is not None and left == o_left
            same_right = right is not None and right == o_right
            if same_left and same_right:
                mine = " ".join(feats.show(s.key) for s in items[a:b])
                theirs = " ".join(unit.feats.show(s.key) for s in unit.slots[c:d])
                reason = f"'{mine}' where the context has '{theirs}'"
                # Words no context uses anywhere may be a paraphrase ("spans" for "crosses") as
                # well as another attribute: only a word the contexts use elsewhere is surely other.
                if not any(_has(canon(s.key), vocab) for s in items[a:b]):
                    return DOUBT + reason
                return reason
    return None


def _role_conflict(items: Sequence[Slot], feats: Features, unit: _Unit) -> str | None:
    """Two names of the claim in exchanged roles around the same verb ("B acquired A")."""
    mine = _groups(items)
    theirs = _groups(unit.slots)

    def find(parts: list[Slot]) -> list[Slot] | None:
        keys = {canon(p.key) for p in parts}
        hits = [g for g in theirs.values() if keys & {canon(p.key) for p in g}]
        return hits[0] if len(hits) == 1 else None

    located = [(parts, find(parts)) for parts in mine.values()]
    pairs = [(a, b) for a, b in located if b is not None]
    for (a1, b1), (a2, b2) in itertools.combinations(pairs, 2):
        assert b1 is not None and b2 is not None
        if b1 is b2:
            continue
        lo, hi = sorted((a1[-1].index, a2[0].index))
        between = {canon(s.key) for s in items[lo + 1:hi] if s.kind == "word"}
        t_lo, t_hi = sorted((b1[-1].index, b2[0].index) if b1[0].index < b2[0].index else (b2[-1].index, b1[0].index))
        theirs_between = {canon(s.key) for s in unit.slots[t_lo + 1:t_hi] if s.kind == "word"}
        # Roles are read off a short span in one sentence ("A acquired B", "B was bought by A").
        if unit.kind == "window" or t_hi - t_lo > 5 or hi - lo > 5 or not between & theirs_between:
            continue

        def agent_first(x: list[Slot], y: list[Slot]) -> bool:
            # Is x the agent? "by X" marks the agent of a passive; otherwise the earlier name.
            if x[0].after_by != y[0].after_by:
                return x[0].after_by
            return x[0].index < y[0].index

        if agent_first(a1, a2) != agent_first(b1, b2):
            return (f"'{feats.show(a1[0].key)}' and '{feats.show(a2[0].key)}' have each other's roles "
                    "in the context")
    return None


# Verbs that carry a "not" of their own: "does not stop them" says they can.
_CANCELS_NOT = frozenset(stem(w) for w in (
    "stop", "stops", "stopped", "prevent", "prevents", "prevented", "fail", "fails", "failed", "refuse", "refused",
    "deny", "denied", "avoid", "avoided", "cease", "ceased", "lack", "lacks", "lacked", "miss", "missed", "block",
    "blocked", "hinder", "forbid", "forbids", "forbidden", "ban", "banned", "prohibit", "prohibited", "lose", "lost"))

_RELATIONS = frozenset(stem(w) for w in (
    "before", "after", "earlier", "later", "more", "less", "fewer", "higher", "lower", "larger", "smaller",
    "bigger", "older", "younger", "longer", "shorter", "faster", "slower", "cheaper", "dearer", "busier",
    "quieter", "above", "below", "over", "under", "greater"))


def _sides(text: str, word: str) -> tuple[set[str], set[str]] | None:
    """Content words before and after the first ``word`` (stemmed) in ``text``."""
    seq = [stem(t.folded) for t in tokenize(normalize(text)) if t.number is None]
    if word not in seq:
        return None
    at = seq.index(word)

    def content(part: Sequence[str]) -> set[str]:
        return {canon(w) for w in part if w not in STOPWORDS and len(w) > 1}

    return content(seq[:at]), content(seq[at + 1:])


def _converse(claim: str, mine: str, context: str, theirs: str) -> bool:
    """Whether the two sides of the relation word are exchanged.

    "quiet for 140 years before it erupted" against "erupted after 140 years of quiet".
    """
    a, b = _sides(claim, mine), _sides(context, theirs)
    if a is None or b is None:
        return False
    same = len(a[0] & b[0]) + len(a[1] & b[1])
    swapped = len(a[0] & b[1]) + len(a[1] & b[0])
    return swapped > same


def _polarity_conflict(text: str, feats: Features, unit: _Unit, units: Sequence[_Unit],
                       idf: dict[str, float]) -> str | None:
    """Negation or an opposite word that differs between the claim and its closest clause."""
    # The clause of the aligned sentence that the claim is about ("closed on Sundays" rather
    # than the whole "open on weekdays and closed on Sundays").
    candidates = ([u for u in units if u.kind == "clause" and u.text in unit.text]
                  or [u for u in units if u.kind == "sentence" and u.text in unit.text])
    mine = {canon(w) for w in feats.tokens if not w.startswith("#")}

    def closeness(c: _Unit) -> float:
        # The word itself binds closer than its opposite: "closed 3" is about "closed 3 during the
        # quarter", not "opened 14 stores".
        return sum(idf.get(k, 1.0) * (1.0 if _has(k, c.keys) else 0.5 if _flipped(k, c.keys) else 0.0)
                   for k in mine)

    closest = max(candidates, key=closeness, default=unit)
    # "A before B" says what "B after A" says: an opposite relation word with its two sides
    # exchanged is the converse, not a contradiction.
    flips = [f for f in antonym_flips(feats.words, closest.feats.words)
             if not (f[0] in _RELATIONS and _converse(text, f[0], closest.text, f[1]))]
    differs = feats.negated != closest.feats.negated
    if flips:
        differs = differs != (len(flips) % 2 == 1)
    if not differs:
        return None
    polar = {canon(w) for w in feats.words if w in {f[0] for f in flips} or _flipped(canon(w), closest.keys)}

    def support(c: _Unit) -> float:
        return sum(idf.get(k, 1.0) for k in mine - polar if _has(k, c.keys))

    if not flips:
        # A "not" on one side may restate a word that means "not" on the other ("no longer
        # supported" / "support was dropped"; "did not change" / "unchanged"), or cancel one on
        # its own side ("does not stop them" / "can still"); a negated comparison is a bound
        # ("not cooler than 25 °C" / "above 25 °C"). None of these is the plain opposite.
        plain, negated = (unit.feats, feats) if feats.negated else (feats, closest.feats)
        if any(w in IMPLICIT_NEGATIVES or (w.startswith("un") and len(w) > 5) for w in plain.words):
            return None
        other_side = {canon(w) for w in plain.words | (closest.feats.words if negated is feats else feats.words)}
        if {canon(w) for w in negated.words & _CANCELS_NOT} - other_side or "than" in negated.words:
            return None
    if flips:
        reason = f"'{feats.show(flips[0][0])}' vs '{closest.feats.show(flips[0][1])}' in the context"
        # The aligned sentence also says the claim's own word ("open Tuesday to Sunday and closed on
        # Mondays"): the opposite counts only when the claim's other words tie it to the opposite
        # clause ("open on Mondays") more than to any clause with its own word ("closes at 5 pm"
        # against "open from 8 am to 5 pm ... closed on Sundays" is a guess: no verdict).
        own = {w for w, _ in flips}
        if own & unit.feats.words:
            rivals = [c for c in candidates if c is not closest and own & c.feats.words]
            if not rivals or support(closest) <= max(support(c) for c in rivals):
                return DOUBT + reason
        return reason
    return "negation differs from the context" + (" (the context says it is not so)" if closest.feats.negated
                                                   else " (the context states it)")


# ---- the judge verifier -------------------------------------------------------------------------


class _JudgeVerdict(BaseModel):
    claim: int
    verdict: Literal["supported", "contradicted", "unsupported"]
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

    version = "3"
    # Any contradicted or unsupported claim fails the output: an invented addition in a long
    # answer is a hallucination, however many true sentences surround it.
    default_threshold: ClassVar[float | None] = 1.0

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
        abstained = [v for v in verdicts if v.verdict == "abstained"]
        decided = [v for v in verdicts if v.verdict != "abstained"]
        contradicted = [v for v in decided if v.verdict == "contradicted"]
        unsupported = [v for v in decided if v.verdict == "unsupported"]
        offending = contradicted + unsupported
        details = {**details, "claims": [v.to_dict() for v in verdicts],
                   "offending": [v.to_dict() for v in offending],
                   "abstained": [v.to_dict() for v in abstained]}
        if abstained and not offending:
            # Nothing wrong was found, but some claims could not be checked: no verdict, not a pass.
            shown = "; ".join(f'"{v.text}" [{v.start}:{v.end}]: {v.reason}' for v in abstained[:3])
            more = f" (+{len(abstained) - 3} more)" if len(abstained) > 3 else ""
            return self.unmeasured(f"claims not checked (not aligned with any context sentence, or a difference "
                                   f"that may be a paraphrase), {len(abstained)} of "
                                   f"{len(verdicts)}: {shown}{more}",
                                   details={**details, "n_claims": len(verdicts)}, cost_usd=cost)
        n = len(decided)
        c_rate, u_rate = len(contradicted) / n, len(unsupported) / n
        value = round(max(0.0, 1.0 - c_rate - self.unsupported_weight * u_rate), 6)
        details = {**details, "n_claims": n, "contradiction_rate": c_rate, "unsupported_rate": u_rate}
        if not offending:
            reason = f"all {n} claim(s) supported"
        else:
            shown = "; ".join(f'{v.verdict} "{v.text}" [{v.start}:{v.end}]: {v.reason}' for v in offending[:3])
            more = f" (+{len(offending) - 3} more)" if len(offending) > 3 else ""
            reason = f"{len(contradicted)} contradicted, {len(unsupported)} unsupported of {n}: {shown}{more}"
            if abstained:
                reason += f" ({len(abstained)} more claim(s) could not be aligned and were not counted)"
        score = self.measured(value, reason, details=details, cost_usd=cost)
        if self.fail_on_contradiction and contradicted and score.status == "pass":
            # A contradiction is a hard error: a high share of good claims must not hide it.
            score = replace(score, status="fail", reason="a claim contradicts the context; " + reason)
        return score
