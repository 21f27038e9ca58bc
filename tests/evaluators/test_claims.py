"""Claim splitting with spans, and the text features the offline verifier compares."""

from __future__ import annotations

import pytest

from llmops.errors import UserError
from llmops.evaluators.claims import (
    analyze,
    antonym_flips,
    is_checkable,
    proper_nouns,
    split_claims,
    split_sentences,
    stem,
)
from llmops.evaluators.embeddings import LexicalEmbedder, cosine, get_embedder, similarity_matrix


def test_spans_point_at_the_original_text() -> None:
    text = ("Dr. Lee is the lead surgeon; Dr. Patel manages the nursing staff. J. K. Rowling wrote it.\n"
            "- The Eiffel Tower was completed in 1889 and stands in Paris.\n- It is 3.5 km away.")
    claims = split_claims(text)
    assert [c.text for c in claims] == [
        "Dr. Lee is the lead surgeon", "Dr. Patel manages the nursing staff.", "J. K. Rowling wrote it.",
        "The Eiffel Tower was completed in 1889", "stands in Paris.", "It is 3.5 km away."]
    for c in claims:
        assert text[c.start:c.end] == c.text


@pytest.mark.parametrize(("sentence", "pieces"), [
    # Lists and noun phrases joined by "and" stay one claim.
    ("The Amazon flows through Peru, Colombia and Brazil.", 1),
    ("The treaty was signed between Germany and the Allied Powers.", 1),
    ("It needs flour, eggs, and milk.", 1),
    # Clauses with their own verb or subject are separate claims.
    ("The Amazon passes through Brazil and ends in the Atlantic Ocean.", 2),
    ("Revenue was $4.2 billion, and its CEO plans to expand into Asia.", 2),
    ("The software supports Windows, but it does not run on Linux.", 2),
])
def test_clause_splitting(sentence: str, pieces: int) -> None:
    assert len(split_claims(sentence)) == pieces


def test_sentences_keep_decimals_and_abbreviations() -> None:
    spans = split_sentences("Pi is 3.14 roughly. Mr. Smith agreed, e.g. on price! Really?")
    assert [s.text for s in spans] == ["Pi is 3.14 roughly.", "Mr. Smith agreed, e.g. on price!", "Really?"]


@pytest.mark.parametrize(("text", "checkable"), [
    ("Sure!", False), ("Do you want more details?", False), ("I don't know.", False),
    ("The context does not mention the price.", False), ("I hope this helps.", False),
    ("Paris.", True), ("The capital of France is Paris.", True),
])
def test_non_claims_are_skipped(text: str, checkable: bool) -> None:
    assert is_checkable(text) is checkable


def test_numbers_keep_value_unit_and_kind() -> None:
    feats = analyze("You need three cups of flour, $4.2 billion, 18% more, the 18th century, the 1950s, "
                    "a five-year warranty and 3.9 million people at 8 am.")
    got = {(n.value, n.unit, n.kind) for n in feats.numbers}
    assert {(3, "cup", "cardinal"), (4.2e9, "$", "cardinal"), (18, "%", "cardinal"),
            (18, "century", "ordinal"), (1950, None, "decade"), (5, "year", "cardinal"),
            (3.9e6, stem("people"), "cardinal"), (8, "am", "cardinal")} <= got


def test_entities_negation_and_months() -> None:
    nouns = proper_nouns(["The population of Iceland is small."])
    feats = analyze("Iceland has no army. The conference runs from May 3 to May 5.", nouns)
    assert {"iceland", "may"} <= feats.entities
    assert feats.negated
    assert not analyze("The clinic doesn't not open.").negated  # two negations cancel
    assert analyze("The clinic doesn't open.").negated


def test_stems_and_antonyms() -> None:
    assert stem("released") == stem("release") == stem("releases")
    assert stem("permitted") == stem("permit")
    assert stem("studies") == stem("studied") == "study"
    flips = antonym_flips(frozenset({stem("open")}), frozenset({stem("closed")}))
    assert flips and flips[0][0] == stem("open")
    assert antonym_flips(frozenset({"unsafe"}), frozenset({"safe"}))


def test_lexical_embeddings_rank_related_text_higher() -> None:
    emb = LexicalEmbedder()
    a, b, c = emb.embed_sync(["The Eiffel Tower was completed in 1889.",
                               "Finished in 1889, the Eiffel Tower stands in Paris.",
                               "Bananas are rich in potassium."])
    assert cosine(a, b) > 0.3 > cosine(a, c)
    sims = similarity_matrix([a, b, c])
    assert sims[0][1] == pytest.approx(cosine(a, b))
    assert sims[1][1] == pytest.approx(1.0)


def test_embedder_choice_is_explicit_about_the_fallback() -> None:
    auto = get_embedder("auto")
    if auto.semantic:  # pragma: no cover - only where the local-embeddings extra is installed
        pytest.skip("MiniLM is installed here")
    assert not auto.semantic and "lexical TF-IDF fallback" in auto.description
    assert "local-embeddings" in auto.description
    with pytest.raises(UserError, match="local-embeddings"):
        get_embedder("minilm")
    with pytest.raises(UserError, match="needs an LLM client"):
        get_embedder("openai/text-embedding-3-small")
