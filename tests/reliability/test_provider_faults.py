"""Run-level fault injection: a whole ``run_suite`` against a faulty provider.

Client-level behaviour (one call, its retries) is tested in tests/llm. Here the promise is about
runs: whatever the provider does, every unit of work ends with exactly one stored record (a
result, or an explicit ``error`` / ``unmeasured`` record saying why), retries stay within their
bounds, and a later run never pays again for what already succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import ATTEMPTS, KEY, assert_one_record_per_unit, bounded_client, write_suite

from llmops.config import Settings
from llmops.llm import fake
from llmops.runner.engine import run_suite
from llmops.runner.store import RunStore
from llmops.testing import Fault, ProviderServer

N = 4


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as srv:
        yield srv


def _store(project: Path) -> RunStore:
    return RunStore(project / ".llmops" / "runs.sqlite")


# Every request of the run gets this fault: each unit must end in an error record after exactly
# ATTEMPTS attempts (all of these are retryable), and say what happened.
STORMS = {
    "429 storm, no Retry-After": (Fault.rate_limited(), "429"),
    "429 storm, Retry-After 1 h (capped by our policy)": (Fault.rate_limited(retry_after=3600), "429"),
    "429 storm, Retry-After as HTTP date": (Fault.rate_limited(retry_after="Wed, 21 Oct 2099 07:28:00 GMT"), "429"),
    "500": (Fault.error(500), "500"),
    "502": (Fault.error(502), "502"),
    "503": (Fault.error(503), "503"),
    "connection reset mid-response": (Fault.reset(), "connection failed"),
    "truncated JSON body": (Fault.truncated_json(), "Expecting"),
    "invalid JSON body": (Fault.invalid_json(), "Expecting value"),
    "empty choices": (Fault.empty_choices(), "no choices"),
}


@pytest.mark.parametrize("fault,needle", list(STORMS.values()), ids=list(STORMS))
def test_persistent_fault_ends_in_one_error_record_per_unit(project: Path, settings: Settings,
                                                            server: ProviderServer, fault: Fault,
                                                            needle: str) -> None:
    suite = write_suite(project, "storm", N, "oai")
    server.script(*[fault] * (N * ATTEMPTS + 5))
    client = bounded_client(settings, server_base=server.openai_base, cache_mode="read-write")
    started = time.monotonic()
    run = run_suite(suite, settings=settings, client=client, progress=False)
    assert time.monotonic() - started < 10  # a Retry-After of an hour is capped, not obeyed
    assert_one_record_per_unit(run, _store(project), N)
    assert {r.status for r in run.results} == {"error"}
    for r in run.results:
        assert needle in r.error  # type: ignore[operator]
        assert r.attempts == ATTEMPTS and f"gave up after {ATTEMPTS} attempts" in r.error  # type: ignore[operator]
        if fault.kind == "reset":  # no HTTP status was received: none is reported
            assert "HTTP" not in r.error  # type: ignore[operator]
    assert server.count == N * ATTEMPTS  # every unit retried to the bound, and not once more
    # The provider recovers: a new run pays only for the units that never got an answer.
    server.reset()
    again = run_suite(suite, settings=settings, client=client, progress=False)
    assert {r.status for r in again.results} == {"pass"} and server.count == N
    server.reset()
    third = run_suite(suite, settings=settings, client=client, progress=False)
    assert server.count == 0 and all(r.cached for r in third.results)  # never spends twice


@pytest.mark.parametrize("fault", [Fault.rate_limited(retry_after=0.05), Fault.error(503), Fault.reset(),
                                   Fault.truncated_json(), Fault.invalid_json(), Fault.empty_choices()],
                         ids=["429", "503", "reset", "truncated", "invalid", "empty"])
def test_transient_faults_are_absorbed_by_retries(project: Path, settings: Settings, server: ProviderServer,
                                                  fault: Fault) -> None:
    suite = write_suite(project, "transient", N, "oai")
    server.script(*[fault] * N)  # the first N requests fail, then service is normal
    client = bounded_client(settings, server_base=server.openai_base, cache_mode="off")
    run = run_suite(suite, settings=settings, client=client, progress=False)
    assert_one_record_per_unit(run, _store(project), N)
    assert {r.status for r in run.results} == {"pass"}
    assert server.count == 2 * N
    assert sum(r.attempts for r in run.results) == server.count
    assert all(r.output == f"echo: q{r.case_id[1:]}" for r in run.results)


def test_timeouts_end_in_error_records_within_the_deadline(project: Path, settings: Settings,
                                                           server: ProviderServer) -> None:
    suite = write_suite(project, "hang", N, "oai")
    server.script(*[Fault.hang()] * (N * ATTEMPTS))
    client = bounded_client(settings, server_base=server.openai_base, timeout_s=0.3, cache_mode="off")
    started = time.monotonic()
    run = run_suite(suite, settings=settings, client=client, progress=False)
    elapsed = time.monotonic() - started
    assert_one_record_per_unit(run, _store(project), N)
    assert {r.status for r in run.results} == {"error"}
    assert all("no answer within" in (r.error or "") or "imed out" in (r.error or "") for r in run.results)
    assert server.count == N * ATTEMPTS
    # Concurrency 4: the 4 units wait in parallel, each ATTEMPTS x (timeout + grace) + backoff.
    assert elapsed < ATTEMPTS * 0.375 + 3, elapsed


def test_random_chaos_never_loses_or_mixes_up_a_result(project: Path, settings: Settings,
                                                       server: ProviderServer) -> None:
    n = 24
    suite = write_suite(project, "chaos", n, "oai")
    server.error_rate, server.error_status = 0.25, 503
    server.rate_limit_rate, server.rate_limit_retry_after = 0.2, 0.01
    client = bounded_client(settings, server_base=server.openai_base, concurrency=8, cache_mode="read-write")
    run = run_suite(suite, settings=settings, client=client, progress=False)
    assert_one_record_per_unit(run, _store(project), n)
    assert server.count <= n * ATTEMPTS
    assert sum(r.attempts for r in run.results if r.status == "pass") <= server.count
    for r in run.results:  # an answer is never attributed to another unit
        if r.status == "pass":
            assert r.output == f"echo: q{r.case_id[1:]}"
        else:
            assert r.status == "error" and ("503" in (r.error or "") or "429" in (r.error or ""))
    assert sum(r.status == "pass" for r in run.results) >= n // 2
    # Heal the provider and run again: only the errored units are paid for.
    errored = sum(r.status == "error" for r in run.results)
    server.error_rate = server.rate_limit_rate = 0.0
    server.reset()
    again = run_suite(suite, settings=settings, client=client, progress=False)
    assert {r.status for r in again.results} == {"pass"} and server.count == errored


# ---- the scripted fake provider (no HTTP) -------------------------------------------------------
FAKE_STORMS = {
    "429 + Retry-After": fake.FakeError(429, retry_after=0.01),
    "429": fake.FakeError(429),
    "500": fake.FakeError(500),
    "502": fake.FakeError(502),
    "503": fake.FakeError(503),
    "timeout": fake.FakeTimeout(),
}


@pytest.mark.parametrize("step", list(FAKE_STORMS.values()), ids=list(FAKE_STORMS))
def test_fake_provider_storms(project: Path, settings: Settings, step: fake.Step) -> None:
    suite = write_suite(project, "fake", N, "fake/storm")
    fake.script("fake/storm", *[step] * (N * ATTEMPTS))
    hangs = isinstance(step, fake.FakeTimeout)
    client = bounded_client(settings, timeout_s=0.2 if hangs else 5.0, cache_mode="off")
    run = run_suite(suite, settings=settings, client=client, progress=False)
    assert_one_record_per_unit(run, _store(project), N)
    assert {r.status for r in run.results} == {"error"}
    # (A timed-out attempt may end before litellm's first-call setup reached the fake.)
    calls = len(fake.calls("fake/storm"))
    assert calls <= N * ATTEMPTS if hangs else calls == N * ATTEMPTS


def test_non_retryable_errors_are_not_retried(project: Path, settings: Settings, server: ProviderServer) -> None:
    suite = write_suite(project, "nonretry", N, "oai")
    server.script(*[Fault.error(400, "Unsupported value: 'temperature'")] * N)
    client = bounded_client(settings, server_base=server.openai_base, cache_mode="off")
    run = run_suite(suite, settings=settings, client=client, progress=False)
    assert_one_record_per_unit(run, _store(project), N)
    assert {r.status for r in run.results} == {"error"} and server.count == N
    assert all("temperature" in (r.error or "") for r in run.results)


# ---- judges that answer garbage -----------------------------------------------------------------
JUDGE_SUITE_EVALUATORS = "[{kind: judge, criteria: 'repeats the question'}]"
GARBAGE = {
    "prose": "I think it is pretty good overall!",
    "empty": "",
    "wrong schema": '{"score": "excellent", "why": 7}',
    "bad verdict": '{"reason": "x", "verdict": "maybe"}',
    "truncated json": '{"reason": "the output is',
    "deeply nested": "[" * 5000,
    "huge": "x" * 200_000,
    "null bytes": "\x00\x01{\x00}",
}


@pytest.mark.parametrize("reply", list(GARBAGE.values()), ids=list(GARBAGE))
def test_garbage_judge_output_is_unmeasured_after_one_repair(project: Path, settings: Settings, reply: str) -> None:
    suite = write_suite(project, "judged", N, "fake/echo", evaluators=JUDGE_SUITE_EVALUATORS)
    fake.script("fake/judge", responder=lambda messages, params: reply)
    client = bounded_client(settings, cache_mode="off")
    run = run_suite(suite, settings=settings, client=client, progress=False)
    assert_one_record_per_unit(run, _store(project), N)
    assert {r.status for r in run.results} == {"unmeasured"}
    for r in run.results:
        (score,) = r.scores
        assert score.status == "unmeasured" and score.value is None
        assert "unusable" in score.reason
    assert len(fake.calls("fake/judge")) == 2 * N  # the answer, then exactly one repair turn


@pytest.mark.parametrize("step", [fake.FakeError(500), fake.FakeError(429), fake.FakeTimeout()],
                         ids=["500", "429", "timeout"])
def test_failing_judge_is_unmeasured_not_a_crash(project: Path, settings: Settings, step: fake.Step) -> None:
    suite = write_suite(project, "judge_down", N, "fake/echo", evaluators=JUDGE_SUITE_EVALUATORS)
    fake.script("fake/judge", *[step] * (N * ATTEMPTS))
    hangs = isinstance(step, fake.FakeTimeout)
    client = bounded_client(settings, timeout_s=0.2 if hangs else 5.0, cache_mode="off")
    run = run_suite(suite, settings=settings, client=client, progress=False)
    assert_one_record_per_unit(run, _store(project), N)
    assert {r.status for r in run.results} == {"unmeasured"}
    assert all("judge call failed" in r.scores[0].reason for r in run.results)
    calls = len(fake.calls("fake/judge"))  # bounded retries, no repair turn after a failed call
    assert calls <= N * ATTEMPTS if hangs else calls == N * ATTEMPTS


def test_judge_recovers_after_one_repair(project: Path, settings: Settings) -> None:
    suite = write_suite(project, "judge_fix", 1, "fake/echo", evaluators=JUDGE_SUITE_EVALUATORS)
    fake.script("fake/judge", "no json here", '```json\n{"reason": "ok", "verdict": "PASS"}\n```')
    run = run_suite(suite, settings=settings, client=bounded_client(settings, cache_mode="off"), progress=False)
    assert run.results[0].status == "pass" and run.results[0].scores[0].value == 1.0


@pytest.mark.parametrize("reply", ["prose, no JSON at all", "[" * 5000, '{"verdicts": "all good"}'],
                         ids=["prose", "nested", "wrong schema"])
def test_garbage_judge_for_hallucination_and_bias_judges(project: Path, settings: Settings, reply: str) -> None:
    write_suite(project, "claims", 1, "fake/claims")  # for the echo prompt
    path = project / "evalsets" / "claims.yaml"
    path.write_text("prompt: echo@1\nmodels: [fake/claims]\n"
                    "evaluators: [{kind: hallucination, verifier: judge, self_consistency: 0}, bias-judge]\n"
                    "cases:\n" + "".join(
                        f"  - {{id: k{i}, inputs: {{q: 'q{i}'}}, contexts: ['Paris is the capital of France.']}}\n"
                        for i in range(N)), encoding="utf-8")
    fake.script("fake/claims", responder=lambda m, p: "Paris is the capital of France. It has 90 million people.")
    fake.script("fake/judge", responder=lambda messages, params: reply)
    run = run_suite(path, settings=settings, client=bounded_client(settings, cache_mode="off"), progress=False)
    assert_one_record_per_unit(run, _store(project), N)
    for r in run.results:
        assert r.status == "unmeasured", r
        assert {s.status for s in r.scores} == {"unmeasured"}, r.scores
    assert len(fake.calls("fake/judge")) <= 2 * 2 * N  # per evaluator: the answer and one repair at most
