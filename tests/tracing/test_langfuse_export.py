"""The real Langfuse SDK v5 against a local receiver: what arrives, decoded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tracing_helpers import PROMPT_META, prime, prime_messages, record

import llmops
from llmops.config import Settings
from llmops.errors import ProviderError
from llmops.evaluators.base import EvalContext, Evaluator, Sample, register_evaluator
from llmops.llm.types import Message
from llmops.testing.langfuse_receiver import LangfuseReceiver, ReceivedSpan
from llmops.tracing import Tracer, TraceStore, get_tracer, observe, set_redact_hook, span, trace_attributes


def arrived(receiver: LangfuseReceiver, tracer: Tracer, n: int) -> list[ReceivedSpan]:
    assert tracer.flush(10)
    assert receiver.wait_for(lambda: len(receiver.spans) >= n, 10), receiver.requests
    return list(receiver.spans)


def test_generation_attributes_ids_and_scores(lf_settings: Settings, receiver: LangfuseReceiver,
                                              make_tracer: Any) -> None:
    tracer: Tracer = make_tracer(lf_settings)
    with span("pipeline", tracer=tracer, input={"q": "Where is Paris?"}, user_id="u-7", session_id="s-3",
              tags=["beta"], trace_metadata={"tenant": "acme"}) as root:
        tracer(record(metadata=PROMPT_META, params={"temperature": 0.2, "max_tokens": 48, "stop": ["\n"]},
                      usage=(31, 9), cost=0.00123, messages=(Message("system", "be brief"),
                                                             Message("user", "Where is Paris?"))))
        root.update(output="France")
    tracer.score(root.trace_id, "faithfulness", 0.75, comment="one unsupported claim")
    spans = {s.name: s for s in arrived(receiver, tracer, 2)}
    assert receiver.wait_for(lambda: len(receiver.scores) >= 1, 10)

    gen, top = spans["rag_answer@2"], spans["pipeline"]
    # Same ids as the local store: a score written later by id lands on the right trace.
    local = TraceStore(lf_settings.path(lf_settings.trace_path)).trace(root.trace_id)
    assert {s.span_id for s in local.spans} == {gen.span_id, top.span_id}
    assert gen.trace_id == top.trace_id == root.trace_id and gen.parent_span_id == top.span_id
    assert top.parent_span_id is None
    assert gen.scope_name == "langfuse-sdk" and gen.scope_attributes["public_key"] == receiver.public_key
    a = gen.attributes
    assert gen.observation_type == "generation" and top.observation_type == "span"
    assert a["langfuse.observation.model.name"] == "openai/gpt-4o-mini"
    assert gen.json_attr("langfuse.observation.usage_details") == {"input": 31, "output": 9, "total": 40}
    assert gen.json_attr("langfuse.observation.cost_details") == {"total": 0.00123}
    assert a["langfuse.observation.prompt.name"] == "rag_answer" and a["langfuse.observation.prompt.version"] == 2
    assert gen.json_attr("langfuse.observation.model.parameters") == {"temperature": 0.2, "max_tokens": 48,
                                                                      "stop": ["\n"]}
    assert gen.json_attr("langfuse.observation.input") == [{"role": "system", "content": "be brief"},
                                                           {"role": "user", "content": "Where is Paris?"}]
    assert a["langfuse.observation.output"] == "hello"
    assert gen.metadata["prompt_hash"] == "ab" * 32 and gen.metadata["prompt_inputs"] == {"question": "Where is Paris?"}
    assert gen.end_ns - gen.start_ns == pytest.approx(0.25e9, rel=0.01)
    for s in (gen, top):  # trace attributes on every observation, as Langfuse v4+ expects
        assert s.attributes["user.id"] == "u-7" and s.attributes["session.id"] == "s-3"
        assert s.attributes["langfuse.trace.tags"] == ["beta"]
        assert s.attributes["langfuse.environment"] == "development"
        assert s.json_attr("langfuse.trace.metadata.tenant") == "acme"
    assert top.attributes["langfuse.trace.name"] == "pipeline"
    assert top.json_attr("langfuse.observation.input") == {"q": "Where is Paris?"}
    assert top.attributes["langfuse.observation.output"] == "France"

    score = receiver.scores[0]
    assert score["traceId"] == root.trace_id and score["name"] == "faithfulness" and score["value"] == 0.75
    assert score["dataType"] == "NUMERIC" and score["comment"] == "one unsupported claim"
    otlp = next(r for r in receiver.requests if r.path.endswith("/otel/v1/traces"))
    assert otlp.headers["x-langfuse-ingestion-version"] == "4"
    assert otlp.headers["content-type"] == "application/x-protobuf"
    stats = tracer.stats()
    assert stats.export is not None and stats.export.delivered == 2 and stats.undelivered == 0


def test_errors_cache_hits_and_langfuse_version_map(lf_settings: Settings, receiver: LangfuseReceiver,
                                                    make_tracer: Any) -> None:
    # `prompts push` recorded that our rag_answer v2 is Langfuse version 5.
    (lf_settings.prompts_path / "langfuse.json").write_text(json.dumps({"versions": {"rag_answer": {"2": 5}}}))
    tracer: Tracer = make_tracer(lf_settings)
    err = ProviderError("rate limited", model="openai/gpt-4o-mini", status_code=429, retryable=True)
    tracer(record(text=None, error=err, metadata=PROMPT_META))
    tracer(record(cached=True, cost=0.5, metadata={**PROMPT_META, "prompt": "x"}))
    failed, hit = sorted(arrived(receiver, tracer, 2), key=lambda s: s.name)
    assert failed.attributes["langfuse.observation.level"] == "ERROR"
    assert "rate limited" in failed.attributes["langfuse.observation.status_message"]
    assert failed.status_code == 2  # OTel ERROR
    assert failed.metadata["status_code"] == 429 and failed.metadata["error_type"] == "ProviderError"
    assert failed.attributes["langfuse.observation.prompt.version"] == 5
    assert hit.metadata["cached"] is True and hit.metadata["cached_cost_usd"] == 0.5
    assert hit.json_attr("langfuse.observation.cost_details") == {"total": 0.0}


@register_evaluator("test-judge")
class _Judge(Evaluator):
    """A judge that asks a (fake) model for a number, like the real judges do."""

    needs_llm = True

    async def score(self, sample: Sample, ctx: EvalContext) -> float:
        assert ctx.client is not None
        reply = await ctx.client.acomplete([Message("user", f"rate: {sample.output}")], ctx.judge_model,
                                           metadata=dict(ctx.metadata))
        return float(reply.text)


def test_eval_run_one_trace_per_unit_with_scores(lf_settings: Settings, receiver: LangfuseReceiver,
                                                 make_tracer: Any, project: Path) -> None:
    from llmops.llm.client import LLMClient
    from llmops.runner.engine import run_suite

    (project / "evalsets" / "t.yaml").write_text(
        "name: t\nprompt: rag_answer@2\nmodels: [fake/m]\nevaluators:\n  - contains: {name: has_answer}\n"
        "  - test-judge: {name: judged}\ncases:\n  - {id: c0, inputs: {question: q0}, expected: yes}\n"
        "  - {id: c1, inputs: {question: q1}, expected: yes}\n")
    # Answers and judge verdicts come from the cache: the run never imports litellm.
    client = LLMClient(lf_settings)
    for question, answer in (("q0", "yes indeed"), ("q1", "no idea")):
        prime(client, "rag_answer@2", {"question": question}, text=answer, model="fake/m")
        prime_messages(client, [Message("user", f"rate: {answer}")], "fake/judge", "0.9")
    tracer: Tracer = make_tracer(lf_settings)
    run = run_suite("t", settings=lf_settings, client=client, progress=False, tracer=tracer)
    assert client.provider_calls == 0
    spans = arrived(receiver, tracer, 6)
    assert receiver.wait_for(lambda: len(receiver.scores) >= 4, 10)
    roots = [s for s in spans if s.parent_span_id is None]
    assert sorted(r.name for r in roots) == ["eval t/c0", "eval t/c1"]
    for root in roots:
        children = [s for s in spans if s.parent_span_id == root.span_id]
        assert sorted(c.name for c in children) == ["judge", "rag_answer@2"]
        assert root.attributes["langfuse.trace.tags"] == ["suite:t", f"run:{run.run_id}"]
        manifest = root.metadata["manifest"]
        assert manifest["run_id"] == run.run_id and manifest["suite"] == "t"
        assert manifest["prompts"]["rag_answer@2"] == llmops.load_prompt("rag_answer@2").content_hash
        judge = next(c for c in children if c.name == "judge")
        assert judge.metadata["purpose"] == "judge" and judge.metadata["case_id"] == root.metadata["case_id"]
    by_trace: dict[str, dict[str, float]] = {}
    for sc in receiver.scores:
        by_trace.setdefault(sc["traceId"], {})[sc["name"]] = sc["value"]
    assert sorted(by_trace.values(), key=lambda d: d["has_answer"]) == [
        {"has_answer": 0.0, "judged": 0.9}, {"has_answer": 1.0, "judged": 0.9}]
    assert {sc["metadata"]["run_id"] for sc in receiver.scores} == {run.run_id}


SECRETS = ["sk-proj-PLANTEDplantedPLANTED0001", "hunter2-planted-pw", "ghp_PLANTEDplantedPLANTEDplanted000002",
           "ACME-INTERNAL-4242"]


def test_no_planted_secret_leaves_the_process(lf_settings: Settings, receiver: LangfuseReceiver,
                                              project: Path) -> None:
    set_redact_hook(lambda s: s.replace("ACME-INTERNAL-4242", "[internal id]"))
    try:
        client = llmops.default_client()
        inputs = {"question": f"my key is {SECRETS[0]} and ticket ACME-INTERNAL-4242",
                  "contexts": [f"db at postgres://app:{SECRETS[1]}@db:5432/x"]}
        prime(client, "rag_answer@2", inputs, text=f"Use token {SECRETS[2]}")

        @observe
        async def handler(api_key: str, note: str) -> str:
            with trace_attributes(user_id="u", metadata={"ticket": "ACME-INTERNAL-4242"}):
                out = await llmops.acomplete("rag_answer@2", inputs, model="fake/echo",
                                             metadata={"debug": f"Authorization: Bearer {SECRETS[0]}"})
            return out.text

        assert asyncio.run(handler(SECRETS[0], f"password={SECRETS[1]}")).startswith("Use token")
        tracer = get_tracer(lf_settings)
        err = ProviderError(f"invalid api key {SECRETS[0]}", model="openai/x", status_code=401)
        tracer(record(text=None, error=err, params={"api_base": f"https://u:{SECRETS[1]}@proxy/v1"},
                      metadata={**PROMPT_META, "prompt_inputs": {"q": SECRETS[2]}}))
        tracer.score("0" * 31 + "1", "judge", 0.5, comment=f"saw {SECRETS[0]}")
        arrived(receiver, tracer, 3)
        assert receiver.wait_for(lambda: len(receiver.scores) >= 1, 10)
        tracer.shutdown(5)
    finally:
        set_redact_hook(None)
    exported = b"".join(receiver.raw_bodies())
    store_files = b"".join(p.read_bytes() for p in (project / ".llmops").glob("traces.sqlite*"))
    assert len(exported) > 500 and len(store_files) > 500
    for secret in SECRETS:
        assert secret.encode() not in exported, secret
        assert secret.encode() not in store_files, secret
    assert b"[REDACTED]" in exported and b"[internal id]" in exported
