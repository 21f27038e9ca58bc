"""The Langfuse exporter stops replaying spans while its host is down, and probes its way back."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.tracing import langfuse_exporter
from llmops.tracing.langfuse_exporter import _Breaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(langfuse_exporter.time, "monotonic", fake)
    return fake


def test_a_refused_host_is_probed_once_per_growing_pause(clock: FakeClock) -> None:
    probes: list[float] = []
    up = [False]

    def probe() -> bool:
        probes.append(clock.now)
        return up[0]

    breaker = _Breaker(probe, pause_s=30.0, max_pause_s=100.0)
    assert not breaker.allow() and len(probes) == 1
    clock.now += 10
    assert not breaker.allow() and len(probes) == 1  # paused: no probe, no replay
    clock.now += 21
    assert not breaker.allow() and len(probes) == 2  # probed again, still down: pause doubles
    clock.now += 59
    assert not breaker.allow() and len(probes) == 2
    clock.now += 2
    up[0] = True
    assert breaker.allow() and len(probes) == 3
    assert breaker.allow() and len(probes) == 3  # up: no more probes


def test_failed_exports_open_it_and_a_success_resets_the_pause(clock: FakeClock) -> None:
    breaker = _Breaker(lambda: True, pause_s=30.0)
    assert breaker.allow()
    breaker.failure()
    assert not breaker.allow()
    clock.now += 31
    assert breaker.allow()  # the probe connects
    breaker.success()
    breaker.failure()
    clock.now += 31
    assert breaker.allow()  # the pause went back to 30 s after the success


def test_spans_for_a_down_host_are_counted_not_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops.config import LangfuseSettings
    from llmops.testing.langfuse_receiver import closed_port
    from llmops.tracing.model import SpanRecord

    exporter = langfuse_exporter.LangfuseExporter(
        LangfuseSettings(public_key="pk-lf-x", secret_key="sk-lf-x",  # type: ignore[arg-type]
                         host=f"http://127.0.0.1:{closed_port()}"))
    replayed: list[Any] = []
    monkeypatch.setattr(exporter, "_start", lambda s: replayed.append(s))
    span = SpanRecord(trace_id="a" * 32, span_id="b" * 16, parent_id=None, name="root", kind="span",
                      start_time=1.0, end_time=2.0)
    exporter.export([span])
    assert replayed == []
    stats = exporter.stats()
    assert stats.sent == 1 and stats.failed == 1 and stats.delivered == 0
