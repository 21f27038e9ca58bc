"""Opt-in: the same tracing path against a real Langfuse server.

Runs only when LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST (or LANGFUSE_BASE_URL)
are set in the environment that starts pytest; it talks to that server and nothing else.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from tracing_helpers import PROMPT_META, record

from llmops.config import load_settings
from llmops.tracing import create_tracer, span

# Read at import: the autouse isolation fixture removes LANGFUSE_* before each test runs.
LIVE = {k: os.environ[k] for k in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST",
                                   "LANGFUSE_BASE_URL") if os.environ.get(k)}
HAVE_KEYS = {"LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"} <= set(LIVE) and (
    "LANGFUSE_HOST" in LIVE or "LANGFUSE_BASE_URL" in LIVE)


@pytest.mark.live
@pytest.mark.skipif(not HAVE_KEYS, reason="set LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST")
def test_trace_and_score_reach_a_real_langfuse(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in LIVE.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(project)
    tracer = create_tracer(settings, batch_interval_s=0.05)
    with span("llmops-live-test", tracer=tracer, user_id="llmops-ci", tags=["llmops-live-test"]) as root:
        tracer(record(metadata=PROMPT_META, usage=(11, 4), cost=0.0003))
    tracer.score(root.trace_id, "live_check", 1.0, comment="llmops live test")
    assert tracer.flush(30)
    stats = tracer.shutdown(30)
    assert stats.export is not None and stats.export.delivered == 2, stats

    from llmops.tracing import langfuse_api

    deadline = time.monotonic() + 90  # ingestion is asynchronous on the server
    found = []
    while time.monotonic() < deadline and len(found) < 2:
        found = langfuse_api.fetch_traces(settings, [root.trace_id])[:1]
        found = found[0].spans if found else []
        time.sleep(3)
    assert {s.name for s in found} == {"llmops-live-test", "rag_answer@2"}
    gen = next(s for s in found if s.kind == "generation")
    assert (gen.prompt_tokens, gen.completion_tokens) == (11, 4)
    assert gen.user_id == "llmops-ci"
