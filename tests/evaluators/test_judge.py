"""Judges you can trust: JSON extraction, one repair, unmeasured on garbage or failure, cost."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel

from llmops.errors import EvalsetError
from llmops.evaluators.base import EvalContext, Sample, Score, create_evaluator
from llmops.evaluators.judge import ask_judge, extract_json
from llmops.llm import fake
from llmops.llm.client import LLMClient
from llmops.llm.retry import RetryPolicy
from llmops.llm.types import Completion, Message


@pytest.mark.parametrize(("text", "value"), [
    ('{"verdict": "pass"}', {"verdict": "pass"}),
    ('Sure! ```json\n{"verdict": "fail", "reason": "x"}\n``` hope it helps', {"verdict": "fail", "reason": "x"}),
    ('My answer: {"a": {"b": [1, 2]}} and {"c": 3}', {"a": {"b": [1, 2]}}),
    ('{broken {"ok": true}', {"ok": True}),
])
def test_extract_json(text: str, value: Any) -> None:
    assert extract_json(text) == value


def test_extract_json_refuses_prose() -> None:
    with pytest.raises(ValueError, match="no JSON"):
        extract_json("The output is fine.")


class Verdict(BaseModel):
    verdict: str


def test_judge_calls_go_through_the_client_at_temperature_zero_with_the_seed(client: LLMClient) -> None:
    records: list[Any] = []
    client.observers.append(records.append)
    fake.script("fake/judge", '{"verdict": "pass"}')
    ctx = EvalContext(client=client, judge_model="fake/judge", seed=11, metadata={"run_id": "r1"})
    reply = asyncio.run(ask_judge(ctx, [Message("user", "judge this")], Verdict, evaluator="demo"))
    assert reply.ok and reply.value is not None and reply.value.verdict == "pass" and reply.calls == 1
    (record,) = records
    assert record.params["temperature"] == 0 and record.model == "fake/judge"
    assert record.metadata["purpose"] == "judge" and record.metadata["run_id"] == "r1"
    assert record.metadata["evaluator"] == "demo"
    # Cached: the same judgement is not paid twice.
    again = asyncio.run(ask_judge(ctx, [Message("user", "judge this")], Verdict))
    assert again.ok and len(fake.calls("fake/judge")) == 1


def test_check_failure_triggers_the_repair_turn(client: LLMClient) -> None:
    fake.script("fake/judge", '{"verdict": "maybe"}', '{"verdict": "pass"}')
    ctx = EvalContext(client=client, judge_model="fake/judge")

    def check(v: Verdict) -> str | None:
        return None if v.verdict in ("pass", "fail") else f"verdict must be pass or fail, got {v.verdict!r}"

    reply = asyncio.run(ask_judge(ctx, [Message("user", "x")], Verdict, check=check))
    assert reply.ok and reply.calls == 2 and reply.raw == ('{"verdict": "maybe"}', '{"verdict": "pass"}')
    assert "got 'maybe'" in fake.calls("fake/judge")[1][-1]["content"]


def test_provider_failure_after_retries_is_a_reason_not_an_exception(settings: Any) -> None:
    client = LLMClient(settings, retry=RetryPolicy(max_retries=1, base_delay_s=0.01, max_total_s=1),
                       cache_mode="off")
    fake.script("fake/judge", fake.FakeError(503), fake.FakeError(503))
    reply = asyncio.run(ask_judge(EvalContext(client=client, judge_model="fake/judge"),
                                  [Message("user", "x")], Verdict))
    assert not reply.ok and reply.error is not None and "judge call failed" in reply.error


# ---- the rubric judge ------------------------------------------------------------------------------


def rubric(client: LLMClient | None, output: str = "Paris is the capital of France.", **params: Any) -> Score:
    ev = create_evaluator("judge", **{"criteria": "answers the question correctly", **params})
    ctx = EvalContext(client=client, judge_model="fake/judge") if client else EvalContext()
    sample = Sample(case_id="c", output=output, inputs={"question": "Capital of France?"}, expected="Paris",
                    contexts=("Paris is the capital of France.",))
    return asyncio.run(ev.evaluate(sample, ctx))


def test_rubric_judge_binary_and_likert(client: LLMClient) -> None:
    fake.script("fake/judge", '{"reason": "correct", "verdict": "PASS"}')
    s = rubric(client)
    assert s.status == "pass" and s.value == 1.0 and s.reason == "correct"
    prompt = fake.calls("fake/judge")[0][-1]["content"]
    for part in ("Criteria: answers the question correctly", "question: Capital of France?", "[1] Paris",
                 "Expected output:\nParis", "Output to judge:"):
        assert part in prompt
    fake.script("fake/judge", '{"reason": "ok", "score": 4}')
    s = rubric(client, output="Paris.", scale="likert")
    assert s.value == pytest.approx(0.75) and s.status == "pass"


@pytest.mark.parametrize("replies", [("no idea", "still no idea"), ('{"score": 9}', '{"score": 0}')])
def test_rubric_judge_garbage_is_unmeasured(client: LLMClient, replies: tuple[str, ...]) -> None:
    fake.script("fake/judge", *replies)
    s = rubric(client, scale="likert")
    assert s.status == "unmeasured" and "after one repair" in s.reason
    assert s.details["judge_raw"] == list(replies)


def test_rubric_judge_failure_modes() -> None:
    assert rubric(None).status == "unmeasured"
    assert "empty output" in rubric(None, output=" ").reason
    with pytest.raises(EvalsetError, match="criteria"):
        create_evaluator("judge", criteria=" ")
    with pytest.raises(EvalsetError, match="scale"):
        create_evaluator("judge", criteria="x", scale="stars")
    with pytest.raises(EvalsetError, match="include"):
        create_evaluator("judge", criteria="x", include=["vibes"])


class PricedClient:
    """A stand-in client whose completions carry a cost (fake models are free)."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    async def acomplete(self, messages: Any, model: Any = None, params: Any = None, **kw: Any) -> Completion:
        return Completion(text=self.texts.pop(0), model=str(model), resolved_model=str(model), cost_usd=0.002)


def test_judge_cost_is_summed_over_the_repair() -> None:
    ev = create_evaluator("judge", criteria="correct")
    ctx = EvalContext(client=PricedClient("garbage", json.dumps({"verdict": "fail", "reason": "no"})),  # type: ignore[arg-type]
                      judge_model="m")
    s = asyncio.run(ev.evaluate(Sample(case_id="c", output="Lyon"), ctx))
    assert s.status == "fail" and s.cost_usd == pytest.approx(0.004)
