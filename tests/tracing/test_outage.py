"""Langfuse down, failing or hanging: the traced call returns normally and stays fast."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from tracing_helpers import prime, record

from llmops.config import load_settings
from llmops.llm.client import LLMClient
from llmops.testing.langfuse_receiver import LangfuseReceiver, closed_port
from llmops.tracing import Tracer, TraceStore
from llmops.tracing.langfuse_exporter import LangfuseExporter

PAIRS = 300
INPUTS = {"question": "Capital of France?", "contexts": ["Paris is the capital of France."]}


async def _timed(client: LLMClient, pv_messages: Any, params: dict[str, Any]) -> float:
    start = time.perf_counter()
    await client.acomplete(pv_messages, "fake/echo", params)
    return time.perf_counter() - start


def measure(traced: LLMClient, plain: LLMClient) -> tuple[list[float], list[float]]:
    """Alternate traced and untraced calls (same cache, same work) and time each one."""
    from llmops.api import load_prompt

    pv = load_prompt("rag_answer@2", traced.settings)
    messages = pv.render(INPUTS)

    async def run() -> tuple[list[float], list[float]]:
        with_tracing: list[float] = []
        without: list[float] = []
        for i in range(PAIRS):
            first, second = (traced, plain) if i % 2 == 0 else (plain, traced)
            a = await _timed(first, messages, pv.meta.params)
            b = await _timed(second, messages, pv.meta.params)
            with_tracing.append(a if first is traced else b)
            without.append(b if first is traced else a)
            await asyncio.sleep(0.002)  # spread over >1 s so exports are attempted meanwhile
        return with_tracing, without

    return asyncio.run(run())


@pytest.mark.parametrize("outage", ["refused", "503", "hang"])
def test_outage_never_slows_or_breaks_the_call(outage: str, project: Path, receiver: LangfuseReceiver,
                                               monkeypatch: pytest.MonkeyPatch, make_tracer: Any) -> None:
    host = f"http://127.0.0.1:{closed_port()}" if outage == "refused" else receiver.url
    if outage != "refused":
        receiver.mode = outage  # type: ignore[assignment]
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", receiver.public_key)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", receiver.secret_key)
    monkeypatch.setenv("LANGFUSE_HOST", host)
    settings = load_settings(project)
    assert settings.langfuse is not None
    exporter = LangfuseExporter(settings.langfuse, environment=settings.environment, flush_interval_s=0.2,
                                export_timeout_s=1.0)
    tracer: Tracer = make_tracer(settings, exporter=exporter, batch_interval_s=0.1)
    traced = LLMClient(settings, observers=[tracer])
    plain = LLMClient(settings)
    prime(traced, "rag_answer@2", INPUTS, text="Paris.")

    with_tracing, without = measure(traced, plain)
    added_ms = (statistics.median(with_tracing) - statistics.median(without)) * 1000
    print(f"\n[{outage}] median call: traced {statistics.median(with_tracing) * 1e3:.3f} ms, "
          f"untraced {statistics.median(without) * 1e3:.3f} ms, added {added_ms:.3f} ms")
    assert added_ms < 1.0

    started = time.monotonic()
    stats = tracer.shutdown(timeout_s=1.5)
    assert time.monotonic() - started < 4.0  # a hanging server cannot hold the exit
    assert stats.recorded == PAIRS and stats.dropped == 0
    assert stats.export is not None and stats.export.delivered == 0
    assert stats.undelivered == PAIRS  # counted and reported...
    assert TraceStore(settings.path(settings.trace_path)).count() == (PAIRS, PAIRS)  # ...and kept locally
    if outage != "refused":
        assert receiver.requests, "the exporter did try to deliver"


def test_observer_cost_on_the_request_path(settings: Any, make_tracer: Any) -> None:
    tracer: Tracer = make_tracer(settings, batch_interval_s=0.2)
    rec = record(metadata={"prompt": "p@1", "prompt_name": "p", "prompt_version": 1})
    samples = []
    for _ in range(2000):
        start = time.perf_counter()
        tracer(rec)
        samples.append(time.perf_counter() - start)
    median_us = statistics.median(samples) * 1e6
    print(f"\nobserver median cost: {median_us:.1f} µs")
    assert median_us < 200


def test_a_broken_store_or_exporter_never_raises(project: Path, make_tracer: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "blocker").write_text("a file where the store's folder should be")
    monkeypatch.setenv("LLMOPS_TRACE_PATH", str(project / "blocker" / "traces.sqlite"))
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-broken")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk")
    monkeypatch.setenv("LANGFUSE_HOST", "not a url")
    settings = load_settings(project)
    tracer: Tracer = make_tracer(settings)
    for _ in range(3):
        tracer(record())
    tracer.flush(5)
    stats = tracer.stats()
    assert stats.recorded == 3 and stats.store_errors >= 1 and stats.stored == 0


EXIT_SCRIPT = """
import time
from llmops.tracing import get_tracer, span

with span("short-lived job", user_id="cron"):
    time.sleep(1.0)  # the job's work; the exporter warms up meanwhile
get_tracer().score("1" * 32, "check", 1.0)
print("done", flush=True)
"""


def test_process_exit_is_bounded_when_langfuse_hangs(project: Path, receiver: LangfuseReceiver) -> None:
    import os
    import subprocess
    import sys

    receiver.mode = "hang"
    env = {**os.environ, **receiver.env(), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], cwd=project, env=env, capture_output=True,
                         text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert out.returncode == 0 and "done" in out.stdout, out.stderr
    assert elapsed < 10, f"exit took {elapsed:.1f} s"
    # The span reached the local store before the process ended, and the miss was reported.
    store = TraceStore(project / ".llmops" / "traces.sqlite")
    assert store.count() == (1, 1)
    assert "could not be delivered" in out.stderr
    (delivery,) = store.deliveries()  # and recorded for `llmops traces status`
    assert delivery.exporter == "langfuse" and (delivery.spans, delivery.delivered) == (1, 0)
