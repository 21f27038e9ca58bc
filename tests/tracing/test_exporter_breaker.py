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


DOWN_FROM_THE_START = """
import sys, threading
from llmops.config import LangfuseSettings
from llmops.testing.langfuse_receiver import closed_port
from llmops.tracing.langfuse_exporter import LangfuseExporter
from llmops.tracing.model import ScoreRecord, SpanRecord

before = threading.active_count()
exporter = LangfuseExporter(LangfuseSettings(public_key="pk-lf-x", secret_key="sk-lf-x",
                                             host=f"http://127.0.0.1:{closed_port()}"))
exporter.start()
for i in range(50):
    exporter.export([SpanRecord(trace_id=f"{i:032x}", span_id=f"{i + 1:016x}", parent_id=None, name="root",
                                kind="span", start_time=1.0, end_time=2.0)])
exporter.score([ScoreRecord(score_id="s1", trace_id=f"{1:032x}", name="ok", value=1.0)])
exporter.shutdown(1.0)
loaded = [m for m in ("langfuse", "opentelemetry.sdk.trace") if m in sys.modules]
print(exporter.client is None, loaded, threading.active_count() - before, exporter.stats().failed)
"""


def test_a_host_down_from_the_start_never_loads_the_sdk() -> None:
    # A process of its own: other tests import the SDK into this one.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", DOWN_FROM_THE_START], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "[]", "0", "50"]  # no client, no SDK, no thread; all counted


def test_the_client_is_built_when_a_probe_finds_the_host_back(clock: FakeClock) -> None:
    from llmops.config import LangfuseSettings
    from llmops.testing.langfuse_receiver import LangfuseReceiver
    from llmops.tracing.model import SpanRecord

    with LangfuseReceiver(public_key="pk-lf-back", secret_key="sk-lf-back") as receiver:
        exporter = langfuse_exporter.LangfuseExporter(
            LangfuseSettings(public_key=receiver.public_key, secret_key=receiver.secret_key,  # type: ignore[arg-type]
                             host=receiver.url), flush_interval_s=0.05)
        up = [False]
        exporter._breaker = _Breaker(lambda: up[0], pause_s=30.0)
        exporter.start()
        assert exporter.client is None  # down at the start: nothing built

        def span(i: int) -> SpanRecord:
            return SpanRecord(trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}", parent_id=None, name=f"root{i}",
                              kind="span", start_time=1.0, end_time=2.0)

        exporter.export([span(0)])
        assert exporter.client is None and exporter.stats().failed == 1
        up[0] = True
        clock.now += 31  # the pause is over: the next batch probes, finds the host, builds the client
        exporter.export([span(1)])
        assert exporter.client is not None
        try:
            assert exporter.flush(10.0)
            assert receiver.wait_for(lambda: any(s.name == "root1" for s in receiver.spans))
            assert not any(s.name == "root0" for s in receiver.spans)  # the outage's span stays local
        finally:
            exporter.shutdown(3.0)
