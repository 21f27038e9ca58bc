"""Spans, nesting and the local store (no network)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from tracing_helpers import PROMPT_META, prime, record

import llmops
from llmops.config import Settings, load_settings
from llmops.errors import ProviderError, UserError
from llmops.tracing import Tracer, TraceStore, get_tracer, observe, span, trace_attributes
from llmops.tracing.store import SpanRow


def spans_by_name(tracer: Tracer, store: TraceStore) -> dict[str, SpanRow]:
    assert tracer.flush(5)
    return {s.name: s for s in store.spans()}


@pytest.fixture
def local(settings: Settings, make_tracer: Any) -> tuple[Tracer, TraceStore]:
    tracer = make_tracer(settings)
    assert tracer.store is not None
    return tracer, tracer.store


def test_sync_nesting_and_trace_attributes_reach_the_root(local: tuple[Tracer, TraceStore]) -> None:
    tracer, store = local

    @observe(tracer=tracer)
    def inner(x: int) -> int:
        tracer(record(metadata=PROMPT_META))
        return x * 2

    @observe(name="pipeline", tracer=tracer)
    def outer() -> int:
        with trace_attributes(user_id="u-1", session_id="s-1", tags=["beta"]):
            return inner(21)

    assert outer() == 42
    got = spans_by_name(tracer, store)
    root, mid, gen = got["pipeline"], got["test_sync_nesting_and_trace_attributes_reach_the_root.<locals>.inner"], \
        got["rag_answer@2"]
    assert root.parent_id is None and mid.parent_id == root.span_id and gen.parent_id == mid.span_id
    assert {root.trace_id, mid.trace_id, gen.trace_id} == {root.trace_id}
    assert mid.input == {"x": 21} and mid.output == 42 and root.output == 42
    # Set deep inside, the user and session still describe the whole trace.
    assert root.user_id == mid.user_id == gen.user_id == "u-1"
    assert root.session_id == "s-1" and root.tags == ["beta"]
    assert gen.kind == "generation" and gen.prompt_name == "rag_answer" and gen.prompt_version == 2
    assert gen.metadata["prompt_inputs"] == {"question": "Where is Paris?"}
    assert root.environment == "development"


def test_async_nesting_survives_tasks_and_keeps_concurrent_traces_apart(local: tuple[Tracer, TraceStore]) -> None:
    tracer, store = local

    @observe(tracer=tracer)
    async def leaf(i: int) -> int:
        await asyncio.sleep(0.01)
        tracer(record(metadata={"case": i}))
        return i

    @observe(tracer=tracer)
    async def request(n: int) -> list[int]:
        # Children started as separate tasks still nest under this span.
        return list(await asyncio.gather(*(asyncio.create_task(leaf(n * 10 + i)) for i in range(3))))

    async def main() -> list[list[int]]:
        return list(await asyncio.gather(request(1), request(2)))

    assert asyncio.run(main()) == [[10, 11, 12], [20, 21, 22]]
    assert tracer.flush(5)
    spans = store.spans()
    roots = [s for s in spans if s.parent_id is None]
    assert len(roots) == 2 and len({r.trace_id for r in roots}) == 2
    for root in roots:
        leaves = [s for s in spans if s.trace_id == root.trace_id and s.name.endswith("leaf")]
        gens = [s for s in spans if s.trace_id == root.trace_id and s.kind == "generation"]
        assert len(leaves) == 3 and all(leaf.parent_id == root.span_id for leaf in leaves)
        assert {g.parent_id for g in gens} == {leaf.span_id for leaf in leaves}
        n = root.input["n"]
        assert sorted(g.metadata["case"] for g in gens) == [n * 10, n * 10 + 1, n * 10 + 2]


def test_errors_are_recorded_and_reraised_unchanged(local: tuple[Tracer, TraceStore]) -> None:
    tracer, store = local

    @observe(tracer=tracer, capture_input=False)
    def boom(secret_arg: str) -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        boom("x")
    err = ProviderError("overloaded", model="openai/gpt-4o-mini", status_code=503, retryable=True)
    tracer(record(text=None, error=err, metadata=PROMPT_META))
    got = spans_by_name(tracer, store)
    failed = next(s for n, s in got.items() if n.endswith("boom"))
    assert failed.status == "error" and failed.error_type == "ValueError" and failed.error == "bad input"
    assert failed.input is None
    gen = got["rag_answer@2"]
    assert gen.status == "error" and gen.status_code == 503 and gen.error_type == "ProviderError"
    assert gen.output is None and gen.cost_usd is None


def test_complete_through_default_client_is_traced(settings: Settings) -> None:
    client = llmops.default_client()
    inputs = {"question": "Capital of France?", "contexts": ["Paris is the capital of France."]}
    prime(client, "rag_answer@production", inputs, text="Paris.", cost=0.0021)

    @observe(name="handler")
    async def handler() -> str:
        with trace_attributes(user_id="alice", environment="production", release="1.2.3"):
            return (await llmops.acomplete("rag_answer@production", inputs, model="fake/echo")).text

    assert asyncio.run(handler()) == "Paris."
    tracer = get_tracer(settings)
    assert tracer.flush(5)
    detail = TraceStore(settings.path(settings.trace_path)).trace("latest")
    root, gen = detail.root, detail.generations[0]
    assert root.name == "handler" and gen.parent_id == root.span_id
    assert gen.prompt_ref == "rag_answer@2"
    assert gen.prompt_hash == llmops.load_prompt("rag_answer@2").content_hash
    assert gen.metadata["prompt_inputs"] == inputs
    assert gen.cached and gen.cost_usd == 0.0 and gen.metadata["cached_cost_usd"] == pytest.approx(0.0021)
    assert (gen.prompt_tokens, gen.completion_tokens) == (12, 3)
    assert gen.params == {"temperature": 0, "max_tokens": 48}
    assert gen.input[0]["role"] == "system" and "Capital of France?" in gen.input[1]["content"]
    assert gen.user_id == "alice" and gen.environment == "production" and gen.release == "1.2.3"


def test_tracing_off_records_nothing(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_TRACING", "off")
    settings = load_settings(project)
    client = llmops.default_client()
    assert client.observers == []
    prime(client, "summarize", {"text": "a b c"})
    llmops.complete("summarize", {"text": "a b c"}, model="fake/echo")

    @observe
    def f() -> int:
        return 1

    assert f() == 1
    assert not settings.path(settings.trace_path).exists()


def test_metadata_keys_set_trace_attributes_per_call(local: tuple[Tracer, TraceStore]) -> None:
    tracer, store = local
    tracer(record(metadata={**PROMPT_META, "user_id": "bob", "session_id": "chat-9", "tags": ["vip"]}))
    gen = spans_by_name(tracer, store)["rag_answer@2"]
    assert (gen.user_id, gen.session_id, gen.tags) == ("bob", "chat-9", ["vip"])
    assert "user_id" not in gen.metadata


def test_eval_unit_is_its_own_trace_with_scores(local: tuple[Tracer, TraceStore]) -> None:
    from llmops.evaluators.base import Score
    from llmops.runner.results import UnitResult

    tracer, store = local
    with span("outer", tracer=tracer), tracer.eval_unit(
            run_id="r1", suite="smoke", case_id="c1", prompt="rag_answer@2", model="fake/echo",
            inputs={"question": "q"}, manifest={"run_id": "r1", "suite": "smoke"}) as unit:
        tracer(record(metadata={**PROMPT_META, "run_id": "r1", "case_id": "c1"}))
        tracer(record(metadata={"purpose": "judge", "run_id": "r1"}))
        unit.set_result(UnitResult(case_id="c1", prompt="rag_answer@2", model="fake/echo", status="fail",
                                   output="answer", scores=[
                                       Score(name="has_answer", value=0.0, status="fail", reason="missing"),
                                       Score(name="judge", value=None, status="unmeasured", reason="garbage")]))
    assert tracer.flush(5)
    detail = store.trace(unit.trace_id)
    root = detail.root
    assert root.name == "eval smoke/c1" and root.parent_id is None  # not nested under "outer"
    assert root.tags == ["suite:smoke", "run:r1"] and root.metadata["manifest"]["suite"] == "smoke"
    assert root.trace_metadata == {"run_id": "r1", "suite": "smoke", "case_id": "c1"}
    assert {g.name for g in detail.generations} == {"rag_answer@2", "judge"}
    assert all(g.parent_id == root.span_id for g in detail.generations)
    scores = {s.name: s for s in detail.scores}
    assert scores["has_answer"].value == 0.0 and scores["has_answer"].comment == "missing"
    assert scores["judge"].value is None and scores["judge"].status == "unmeasured"
    assert root.output == "answer" and root.metadata["status"] == "fail"


def test_store_queries(local: tuple[Tracer, TraceStore]) -> None:
    tracer, store = local
    v1 = {**PROMPT_META, "prompt": "rag_answer@1", "prompt_version": 1}
    for meta in (PROMPT_META, v1, {"prompt": "summarize@1", "prompt_name": "summarize", "prompt_version": 1}):
        with span("req", tracer=tracer, tags=["t-" + meta["prompt"]]):
            tracer(record(metadata=meta))
    tracer(record(text=None, error=ProviderError("down", model="m", status_code=500), metadata=PROMPT_META))
    assert tracer.flush(5)
    assert len(store.traces()) == 4
    assert len(store.traces(prompt_name="rag_answer")) == 3
    assert len(store.traces(prompt_name="rag_answer", prompt_version=1)) == 1
    assert len(store.traces(errors_only=True)) == 1
    assert len(store.traces(tag="t-summarize@1")) == 1
    assert store.traces(since=time.time() + 60) == []
    summary = store.traces(prompt_name="summarize")[0]
    assert summary.name == "req" and summary.generations == 1 and summary.prompts == ["summarize@1"]
    assert store.resolve_id(summary.trace_id[:10]) == summary.trace_id
    with pytest.raises(UserError, match="no trace"):
        store.resolve_id("ffffffffffffff")
    with pytest.raises(UserError, match="ambiguous"):
        store.resolve_id("")


def test_full_queue_drops_and_counts(settings: Settings, make_tracer: Any) -> None:
    tracer = make_tracer(settings, max_queue=2, batch_interval_s=0.5)
    for _ in range(5):
        tracer(record())
    stats = tracer.stats()
    assert stats.recorded == 2 and stats.dropped == 3
    assert tracer.flush(5) and tracer.stats().stored == 2


def test_import_does_not_pull_langfuse_or_litellm() -> None:
    import subprocess
    import sys

    code = ("import sys, llmops.tracing, llmops.cli; llmops.cli.build_parser(); "
            "print(sorted(m for m in ('langfuse', 'litellm', 'opentelemetry') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
