"""Traces from short-lived processes reach a healthy Langfuse (issue 16 §3).

A cached ``llmops complete``, a fully cached ``llmops run`` and a one-line script that calls
``llmops.complete`` and exits all end before the Langfuse SDK has even been imported by the
tracer's worker. Each runs here as a real subprocess against the local receiver; the test prints
how many spans the processes recorded and how many the receiver got.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_helpers import COUNTS, write_suite

from llmops.testing.langfuse_receiver import LangfuseReceiver, closed_port
from llmops.tracing import TraceStore

REPO = Path(__file__).resolve().parents[2]
SCRIPT = ("import llmops; print(llmops.complete('rag_answer@2', {'question': 'Capital of France?', "
          "'contexts': ['Paris is the capital of France.']}, model='fake/echo').text[:20])")


def _env(host: str, public_key: str, secret_key: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "LANGFUSE_PUBLIC_KEY": public_key,
            "LANGFUSE_SECRET_KEY": secret_key, "LANGFUSE_HOST": host, "COLUMNS": "80"}


def _run(argv: list[str], project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def _llmops(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmops", *args]


def _store(project: Path) -> TraceStore:
    return TraceStore(project / ".llmops" / "traces.sqlite")


def _stored_ids(project: Path) -> set[str]:
    store = _store(project)
    try:
        return {s.span_id for s in store.spans()}
    finally:
        store.close()


@pytest.fixture
def lf() -> LangfuseReceiver:
    import uuid

    with LangfuseReceiver(public_key=f"pk-lf-{uuid.uuid4().hex[:12]}") as r:
        yield r  # type: ignore[misc]


def test_short_processes_deliver_before_exit(project: Path, lf: LangfuseReceiver) -> None:
    """Cached complete, fully cached run, one-line script: every recorded span reaches Langfuse."""
    env = _env(lf.url, lf.public_key, lf.secret_key)
    suite = write_suite(project, "short", 3, "fake/echo")
    # Prime the cache (these calls reach the fake provider); then the short processes under test.
    _run(_llmops("complete", "rag_answer@2", "-m", "fake/echo", "-i", "question=Capital of France?", "-i",
                 'contexts=["Paris is the capital of France."]'), project, env)
    _run(_llmops("run", str(suite), "--no-progress"), project, env)
    primed = _stored_ids(project)
    results: dict[str, tuple[int, int]] = {}
    for name, argv in (
            ("cached llmops complete", _llmops("complete", "rag_answer@2", "-m", "fake/echo", "-i",
                                               "question=Capital of France?", "-i",
                                               'contexts=["Paris is the capital of France."]')),
            ("fully cached llmops run", _llmops("run", str(suite), "--no-progress")),
            ("one-line script", [sys.executable, "-c", SCRIPT])):
        before = _stored_ids(project)
        out = _run(argv, project, env)
        new = _stored_ids(project) - before
        assert new, f"{name}: recorded no span"
        # Delivered before the process exited: no waiting here beyond what the receiver holds now.
        got = {s.span_id for s in lf.spans}
        results[name] = (len(new), len(new & got))
        assert "failed to start" not in out.stderr, out.stderr
        assert "could not be delivered" not in out.stderr, out.stderr
    for name, (sent, delivered) in results.items():
        print(f"short process '{name}': spans sent {sent} / delivered {delivered}")
    total_sent = sum(s for s, _ in results.values())
    total_delivered = sum(d for _, d in results.values())
    print(f"short processes: spans sent {total_sent} / delivered {total_delivered}")
    COUNTS["short processes: spans sent"] += total_sent
    COUNTS["short processes: spans delivered"] += total_delivered
    assert total_delivered == total_sent, results
    assert primed <= {s.span_id for s in lf.spans}
    store = _store(project)
    try:
        assert store.undelivered_count() == 0  # nothing left for `llmops traces push`
    finally:
        store.close()


def test_undelivered_spans_are_pushed_later_and_status_names_the_cause(project: Path, lf: LangfuseReceiver) -> None:
    down = _env(f"http://127.0.0.1:{closed_port()}", lf.public_key, lf.secret_key)
    _run([sys.executable, "-c", SCRIPT], project, down)
    stored = _stored_ids(project)
    assert stored
    status = _run(_llmops("traces", "status"), project, down).stdout
    assert "refused the connection" in status, status
    assert f"{len(stored)} span(s) in the local store wait for delivery" in status, status
    # Langfuse is back: a push delivers exactly the spans it missed, and only once.
    up = _env(lf.url, lf.public_key, lf.secret_key)
    out = _run(_llmops("traces", "push"), project, up)
    assert f"pushed {len(stored)} span(s): {len(stored)} delivered, 0 still waiting" in out.stdout, out.stdout
    assert {s.span_id for s in lf.spans} == stored
    assert "nothing to push" in _run(_llmops("traces", "push"), project, up).stdout
    assert "wait for delivery" not in _run(_llmops("traces", "status"), project, up).stdout
    print(f"pushed later: spans sent {len(stored)} / delivered {len({s.span_id for s in lf.spans})}")
    COUNTS["pushed later: spans sent"] += len(stored)
    COUNTS["pushed later: spans delivered"] += len({s.span_id for s in lf.spans})


def test_push_against_an_unreachable_langfuse_exits_4_with_the_cause(project: Path, lf: LangfuseReceiver) -> None:
    down = _env(f"http://127.0.0.1:{closed_port()}", lf.public_key, lf.secret_key)
    _run([sys.executable, "-c", SCRIPT], project, down)
    out = subprocess.run(_llmops("traces", "push", "--timeout", "2"), cwd=project, env=down, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 4, out.stdout + out.stderr
    assert "refused the connection" in out.stdout and "still waiting" in out.stdout


SLOW_START = """
import concurrent.futures, concurrent.futures.thread, time
from llmops.config import load_settings
from llmops.tracing import create_tracer, set_tracer, span

class SlowExporter:
    name = "slow"
    def start(self):
        # Ready only once the interpreter has shut its thread pools down, as a slow SDK import is.
        while not concurrent.futures.thread._shutdown:
            time.sleep(0.01)
        concurrent.futures.ThreadPoolExecutor(1).submit(print)
    def export(self, spans): pass
    def score(self, scores): pass
    def flush(self, timeout_s): return True
    def shutdown(self, timeout_s): pass
    def stats(self):
        from llmops.tracing import ExportStats
        return ExportStats()

settings = load_settings()
tracer = create_tracer(settings, exporter=SlowExporter(), batch_interval_s=0.01)
set_tracer(tracer)
with span("job", tracer=tracer):
    pass
"""


def test_status_blames_interpreter_shutdown_not_the_host(project: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    _run([sys.executable, "-c", SLOW_START], project, env)
    status = _run(_llmops("traces", "status"), project, env).stdout
    assert "the process was exiting before the exporter was ready" in status, status
    assert "refused" not in status and "host down" not in status, status
