"""Pacing from 429s (llmops.llm.throttle) and the provider double's rate limit it is tested against."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import httpx
import pytest

from llmops.config import load_settings
from llmops.llm.client import LLMClient
from llmops.llm.throttle import CUT, Pacer
from llmops.testing import ProviderServer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_pacing_until_a_429() -> None:
    clock = Clock()
    pacer = Pacer(clock)
    for _ in range(100):
        assert pacer.reserve()[1] == 0.0
        pacer.success()
    assert pacer.rate is None


def test_a_429_closes_the_gate_for_its_retry_after() -> None:
    clock = Clock()
    pacer = Pacer(clock)
    reserved, _ = pacer.reserve()
    pacer.throttled(0.5, reserved)
    assert pacer.reserve()[1] == pytest.approx(0.5)  # everyone waits, not only the refused call
    assert pacer.rate == pytest.approx(2.0)  # one call per retry-after: the first guess of the limit


def test_rate_starts_from_what_was_accepted_then_cuts_once_per_signal() -> None:
    clock = Clock()
    pacer = Pacer(clock)
    for _ in range(40):  # 40 answers within the first second
        clock.now += 0.02
        pacer.success()
    old_reservation, _ = pacer.reserve()
    pacer.throttled(None, old_reservation)
    assert pacer.rate == pytest.approx(40 / 0.8)
    first = pacer.rate
    pacer.throttled(None, old_reservation)  # scheduled before the rate was set: no new signal
    assert pacer.rate == first and pacer.cuts == 0
    clock.now += 0.01
    fresh, _ = pacer.reserve()
    pacer.throttled(None, fresh)
    assert pacer.rate == pytest.approx(first * CUT) and pacer.cuts == 1
    # Slow start is over: answers grow the rate gently now.
    rate = pacer.rate
    pacer.success()
    assert rate < pacer.rate < rate + 0.1


def test_paced_slots_are_spaced_by_the_rate() -> None:
    clock = Clock()
    pacer = Pacer(clock)
    pacer.throttled(0.1, clock.now)  # a token bucket's retry-after: the next token in 0.1 s
    assert pacer.rate == pytest.approx(10.0)
    waits = [pacer.reserve()[1] for _ in range(3)]
    assert waits == pytest.approx([0.1, 0.2, 0.3])


def test_the_double_enforces_its_allowed_rate_with_retry_after() -> None:
    with ProviderServer(api_key=None, rate_limit_rps=5, rate_limit_burst=2) as server, httpx.Client() as http:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        codes = [http.post(server.openai_base + "/chat/completions", json=body) for _ in range(4)]
        assert [r.status_code for r in codes[:2]] == [200, 200]
        refused = codes[2]
        assert refused.status_code == 429 and 0 < float(refused.headers["retry-after-ms"]) <= 200
        assert refused.headers["retry-after"] == "1"
        stats = json.loads(urllib.request.urlopen(server.base_url + "/_double/stats").read())
        assert stats["throttled"] >= 1 and stats["requests"] == 4  # control paths are not counted
        urllib.request.urlopen(urllib.request.Request(server.base_url + "/_double/reset", data=b"", method="POST"))
        assert server.count == 0


def test_a_rate_limited_run_is_answered_in_full(project: Path) -> None:
    with ProviderServer(api_key="sk-rl", latency_s=0.02, rate_limit_rps=40) as server:
        models = {"srv": {"model": "openai/gpt-4o-mini", "params": {"api_base": server.openai_base,
                                                                    "api_key": "sk-rl"}}}
        client = LLMClient(load_settings(project, overrides={"models": models, "cache": "off"}), concurrency=32)

        async def many() -> list[str]:
            calls = [client.acomplete([{"role": "user", "content": f"q{i}"}], "srv") for i in range(60)]
            return [c.text for c in await asyncio.gather(*calls)]

        answers = asyncio.run(many())
        assert answers == [f"echo: q{i}" for i in range(60)]  # none ran out of retries
        stats = server.stats()
        assert stats.by_status[200] == 60
        assert stats.throttled < 60  # the client paced itself instead of retrying every call
        assert client.pacers["openai/gpt-4o-mini"].rate is not None


def test_retry_after_pause_is_capped_by_max_wait() -> None:
    pacer = Pacer(Clock(), max_wait_s=2.0)
    reserved, _ = pacer.reserve()
    pacer.throttled(3600.0, reserved)  # a provider asking for an hour
    _, pause = pacer.reserve()
    assert pause <= 2.0
    assert pacer.rate is not None and pacer.rate >= 0.5  # one call per capped wait, not per hour
