from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmops.errors import EvalsetError
from llmops.evaluators.base import EvalContext, Sample, Score, create_evaluator, evaluator_kinds
from llmops.llm.types import Completion


def run(kind: str, output: str, expected: str | None = None, completion: Completion | None = None,
        **params: Any) -> Score:
    ev = create_evaluator(kind, **params)
    sample = Sample(case_id="c", output=output, expected=expected, completion=completion)
    return asyncio.run(ev.evaluate(sample, EvalContext()))


@pytest.mark.parametrize(("kind", "output", "params", "status"), [
    ("equals", " Paris ", {"value": "Paris"}, "pass"),
    ("equals", "paris", {"value": "Paris"}, "fail"),
    ("equals", "paris", {"value": "Paris", "ignore_case": True}, "pass"),
    ("contains", "It is PARIS.", {"value": "paris"}, "pass"),
    ("contains", "It is PARIS.", {"value": "paris", "ignore_case": False}, "fail"),
    ("contains", "Rome or Paris", {"values": ["Paris", "Rome"], "mode": "all"}, "pass"),
    ("contains", "only Paris", {"values": ["Paris", "Rome"], "mode": "all"}, "fail"),
    ("contains", "only Paris", {"values": ["Rome", "Paris"]}, "pass"),
    ("not-contains", "as an AI model", {"values": ["as an ai"]}, "fail"),
    ("not-contains", "Paris", {"values": ["Rome"]}, "pass"),
    ("regex", "Order 12345 shipped", {"pattern": r"\b\d{5}\b"}, "pass"),
    ("regex", "Order 12345 shipped", {"pattern": r"\d{5}", "full": True}, "fail"),
    ("starts-with", "  Positive, clearly", {"value": "positive"}, "pass"),
    ("starts-with", "It is positive", {"value": "positive"}, "fail"),
    ("is-json", '```json\n{"a": 1}\n```', {}, "pass"),
    ("is-json", "{'a': 1}", {}, "fail"),
    ("json-schema", '{"label": "positive"}',
     {"schema": {"type": "object", "required": ["label"], "properties": {"label": {"enum": ["positive"]}}}},
     "pass"),
    ("json-schema", '{"label": "meh"}',
     {"schema": {"type": "object", "properties": {"label": {"enum": ["positive"]}}}}, "fail"),
    ("length", "one two three", {"max": 2, "unit": "words"}, "fail"),
    ("length", "one two three", {"min": 3, "max": 20}, "pass"),
])
def test_assertions(kind: str, output: str, params: dict[str, Any], status: str) -> None:
    score = run(kind, output, **params)
    assert score.status == status, score.reason
    assert score.value == (1.0 if status == "pass" else score.value)
    assert score.reason and score.evaluator == kind and score.version


def test_contains_all_gives_a_fraction() -> None:
    score = run("contains", "a b", values=["a", "b", "c", "d"], mode="all")
    assert score.value == 0.5 and "missing" in score.reason


def test_expected_is_the_default_value() -> None:
    assert run("contains", "it's Tokyo", expected="tokyo").status == "pass"
    assert run("equals", "x").status == "error"  # neither value nor expected


def test_schema_reason_names_the_path() -> None:
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "integer"}}}}
    score = run("json-schema", '{"items": [1, "two"]}', schema=schema)
    assert score.status == "fail" and "items/1" in score.reason


def test_latency_and_cost_use_the_completion() -> None:
    c = Completion(text="x", model="m", resolved_model="m", latency_s=0.5, cost_usd=0.002)
    assert run("latency", "x", completion=c, max_s=1.0).status == "pass"
    assert run("latency", "x", completion=c, max_s=0.1).status == "fail"
    assert run("cost", "x", completion=c, max_usd=0.001).status == "fail"
    assert run("cost", "x", max_usd=0.001).status == "unmeasured"


def custom_ok(sample: Sample, word: str = "yes") -> tuple[float, str]:
    return (1.0 if word in sample.output else 0.25), f"looked for {word}"


async def custom_async(sample: Sample) -> bool:
    return sample.output.isupper()


def custom_bad(sample: Sample) -> str:
    return "not a score"


def test_custom_python_evaluators() -> None:
    here = __name__
    assert run("python", "yes!", function=f"{here}:custom_ok").status == "pass"
    low = run("python", "no", function=f"{here}.custom_ok", args={"word": "maybe"})
    assert low.value == 0.25 and low.status == "fail" and low.reason == "looked for maybe"
    assert run("python", "LOUD", function=f"{here}:custom_async").status == "pass"
    bad = run("python", "x", function=f"{here}:custom_bad")
    assert bad.status == "error" and "returned str" in bad.reason


@pytest.mark.parametrize(("kind", "params", "message"), [
    ("regex", {"pattern": "("}, "invalid pattern"),
    ("python", {"function": "no_such_module_xyz.f"}, "cannot import"),
    ("python", {"function": "os:not_there"}, "no callable"),
    ("contains", {"value": "a", "mode": "some"}, "mode"),
    ("length", {}, "min, max"),
    ("json-schema", {"schema": {"type": "nonsense"}}, "invalid schema"),
    ("contians", {}, "unknown evaluator"),
    ("contains", {"valeu": "x"}, "valeu"),
])
def test_bad_parameters_are_clear(kind: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(EvalsetError, match=message):
        create_evaluator(kind, **params)


def test_nan_becomes_unmeasured() -> None:
    ev = create_evaluator("contains", value="x")
    assert ev.measured(float("nan")).status == "unmeasured"
    assert "equals" in evaluator_kinds() and "regex" in evaluator_kinds()
