"""Attempts and provider calls are counted as the retry policy predicts, across processes too.

The provider double answers HTTP 500 to 30% of requests, drawn from a seeded generator in
arrival order. With one call in flight at a time the whole run is then predictable: replaying
the same draws through the retry policy (at most ``max_retries + 1`` attempts, a 500 retried)
says which units end in an error, how many attempts each unit takes and how many calls the
server answers. The run must match that exactly, and report it: attempts per result row, the
manifest's provider calls, the terminal summary. A run killed (or interrupted) and resumed
reports the calls of both processes, counted in the run store as each call was sent.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import COUNTS, KEY, assert_one_record_per_unit, echo_prompt, write_suite
from rich.console import Console

from llmops.config import ModelAlias, Settings
from llmops.llm.client import LLMClient
from llmops.llm.retry import RetryPolicy
from llmops.reports.terminal import print_run
from llmops.runner.engine import run_suite
from llmops.runner.store import RunStore
from llmops.testing import Fault, ProviderServer

UNITS = 200
ERROR_RATE = 0.3
SEED = 2  # its draws make 2 of 200 units fail 5 times in a row (~0.49 expected: 200 x 0.3^5)
POLICY = RetryPolicy(max_retries=4, base_delay_s=0.001, max_delay_s=0.01, max_total_s=60.0)  # the default's 5 attempts


def _predicted(seed: int, units: int, policy: RetryPolicy) -> list[int | None]:
    """Per unit in order: the attempts its success took, or None when the policy gave up."""
    rng = random.Random(seed)  # the server's draws, one per request, in arrival order
    outcome: list[int | None] = []
    for _ in range(units):
        for attempt in range(1, policy.max_retries + 2):
            if rng.random() >= ERROR_RATE:
                outcome.append(attempt)
                break
        else:
            outcome.append(None)
    return outcome


def _client(settings: Settings, server: ProviderServer, concurrency: int, policy: RetryPolicy) -> LLMClient:
    alias = ModelAlias(model="openai/gpt-4o-mini", params={"api_base": server.openai_base, "api_key": KEY})
    return LLMClient(settings.model_copy(update={"models": {"oai": alias}}), retry=policy, concurrency=concurrency,
                     cache_mode="off", timeout_s=30)


def _terminal(run: object) -> str:
    buffer = io.StringIO()
    print_run(Console(file=buffer, width=80, color_system=None), run)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_attempts_and_calls_are_what_the_retry_policy_predicts(project: Path, settings: Settings) -> None:
    predicted = _predicted(SEED, UNITS, POLICY)
    suite = write_suite(project, "flaky", UNITS, "oai")
    with ProviderServer(api_key=KEY, error_rate=ERROR_RATE, error_status=500, seed=SEED) as server:
        run = run_suite(suite, settings=settings, client=_client(settings, server, 1, POLICY), progress=False)
        answered = server.count
    assert_one_record_per_unit(run, RunStore(project / ".llmops" / "runs.sqlite"), UNITS)
    calls = sum(a if a is not None else POLICY.max_retries + 1 for a in predicted)
    errors = sum(a is None for a in predicted)
    assert errors == 2 and answered == calls  # what the policy predicts from the server's draws
    by_case = {r.case_id: r for r in run.results}
    for i, attempts in enumerate(predicted):  # one call in flight: units run in case order
        r = by_case[f"c{i}"]
        if attempts is None:
            assert r.status == "error" and r.attempts == POLICY.max_retries + 1, r
            assert "HTTP 500" in (r.error or "") and "gave up after 5 attempts" in (r.error or "")
        else:
            assert r.status == "pass" and r.attempts == attempts, (i, r)
    # The reported counts: the rows' attempts, the manifest, the terminal summary.
    assert sum(r.attempts for r in run.results) == answered
    assert run.manifest.provider_calls == answered
    shown = _terminal(run)
    assert f"provider calls {answered}" in shown and shown.count("gave up after 5 attempts") == errors
    COUNTS["retry: units run against 30% HTTP 500"] += UNITS
    COUNTS["retry: units ended in error (predicted by the policy)"] += errors
    COUNTS["retry: provider calls answered by the server"] += answered
    COUNTS["retry: provider calls reported (manifest)"] += run.manifest.provider_calls


def test_concurrent_retries_keep_count_and_back_off(project: Path, settings: Settings) -> None:
    policy = RetryPolicy(max_retries=4, base_delay_s=0.02, max_delay_s=1.0, max_total_s=60.0)
    suite = write_suite(project, "flaky8", UNITS, "oai")
    with ProviderServer(api_key=KEY, error_rate=ERROR_RATE, error_status=500, seed=SEED + 1) as server:
        run = run_suite(suite, settings=settings, client=_client(settings, server, 8, policy), progress=False)
        answered, requests = server.count, server.requests
    assert_one_record_per_unit(run, RunStore(project / ".llmops" / "runs.sqlite"), UNITS)
    assert sum(r.attempts for r in run.results) == answered == run.manifest.provider_calls
    errors = [r for r in run.results if r.status == "error"]
    assert all(r.attempts == 5 for r in errors)
    # 200 x 0.3^5 = 0.49 expected; 6 or more has probability ~1e-5 under the policy.
    assert len(errors) <= 5, [r.error for r in errors]
    # Per unit, the arrivals of its attempts are spaced by at least the policy's lower bound
    # (equal jitter: half the step base x 2^(k-1)), and no unit is tried more than 5 times.
    arrivals: dict[str, list[tuple[float, int | None]]] = defaultdict(list)
    for req in requests:
        arrivals[req.body["messages"][-1]["content"]].append((req.received_at, req.status))
    assert len(arrivals) == UNITS
    for question, seen in arrivals.items():
        assert 1 <= len(seen) <= 5 and all(status == 500 for _, status in seen[:-1]), (question, seen)
        for k in range(1, len(seen)):
            step = policy.base_delay_s * 2 ** (k - 1)
            assert seen[k][0] - seen[k - 1][0] >= step / 2, (question, k, seen)


# ---- provider calls counted across processes: kill (or Ctrl-C) and resume -----------------------
N_UNITS = 6


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as srv:
        yield srv


def _llmops(project: Path, *args: str, popen: bool = False) -> subprocess.Popen[str] | subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "LANGFUSE_"))}
    env.update(COLUMNS="80", NO_COLOR="1")
    argv = [sys.executable, "-m", "llmops", *args]
    if popen:  # with the SIGINT a terminal user has (a CI runner may hand it down ignored)
        return subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def _wait_for(condition: object, what: str, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s  # a hang guard, not a timing assertion
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"waited too long for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_provider_calls_are_counted_across_a_kill_and_a_resume(project: Path, server: ProviderServer,
                                                               how: signal.Signals) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('cache = "read-write"', 'cache = "off"') +
                         "\n[tool.llmops.models.remote]\nmodel = \"openai/gpt-4o-mini\"\n"
                         f'params = {{api_base = "{server.openai_base}", api_key = "{KEY}"}}\n', encoding="utf-8")
    echo_prompt(project)
    write_suite(project, "resumable", N_UNITS, "remote")
    # Three answers, then the server sleeps on every request: the first process is stopped while
    # two calls are in flight (sent, counted, never answered).
    server.script(Fault.ok(), Fault.ok(), Fault.ok(), *[Fault.hang()] * 2)
    first = _llmops(project, "run", "evalsets/resumable.yaml", "--no-progress", "--concurrency", "2",
                    "--timeout", "600", popen=True)
    assert isinstance(first, subprocess.Popen)
    _wait_for(lambda: server.count == 5, "the two hanging calls")
    first.send_signal(how)
    _, stderr = first.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    if how == signal.SIGINT:
        assert first.returncode == 130 and "5 provider calls" in stderr, stderr
    listed = _llmops(project, "runs", "list", "--json")
    assert isinstance(listed, subprocess.CompletedProcess)
    run_id = json.loads(listed.stdout)[0]["run_id"]
    before = server.count
    resumed = _llmops(project, "run", "--resume", run_id, "--no-progress", "--json")
    assert isinstance(resumed, subprocess.CompletedProcess)
    assert resumed.returncode == 0, resumed.stderr
    # The resume ran the 3 units without a result; the server answered 5 + 3 calls in all.
    assert server.count - before == N_UNITS - 3 and server.count == 8
    manifest = json.loads(resumed.stdout)["run"]["manifest"]
    assert manifest["provider_calls"] == server.count  # not 3, the resuming process's own
    report = _llmops(project, "runs", "show", run_id)
    assert isinstance(report, subprocess.CompletedProcess)
    assert re.search(rf"provider calls {server.count}\b", report.stdout), report.stdout
    COUNTS["calls across processes: answered by the server"] += server.count
    COUNTS["calls across processes: reported (manifest)"] += manifest["provider_calls"]
