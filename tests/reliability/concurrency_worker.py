"""Subprocess body for the concurrency test: run one suite into a shared store and cache.

Usage: ``concurrency_worker.py ROOT SUITE RUN_ID LOG``. The provider attempt is answered
in-process (no litellm import); the client's cache, the runner and the store are the real
ones. Every paid (non-cached) call is logged with its cache key.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from llmops.config import load_settings
from llmops.llm.client import CallRecord, LLMClient
from llmops.llm.types import Completion, Message, Usage
from llmops.runner.engine import run_suite


class LightClient(LLMClient):
    """Answers ``echo: <last message>`` after a short delay, without litellm."""

    async def _attempt(self, msgs: list[Message], requested: str, resolved: str, params: dict[str, Any],
                       seed: int) -> Completion:
        self.provider_calls += 1
        await asyncio.sleep(0.002)
        return Completion(text=f"echo: {msgs[-1].content}", model=requested, resolved_model=resolved,
                          usage=Usage(2, 3))


def main() -> None:
    root, suite, run_id, log_path = sys.argv[1:5]
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the process

    def observe(record: CallRecord) -> None:
        if record.completion is not None and not record.completion.cached:
            log.write(json.dumps({"key": record.completion.cache_key, "pid": os.getpid()}) + "\n")
            log.flush()

    settings = load_settings(root)
    client = LightClient(settings, observers=[observe], concurrency=8)
    run = run_suite(suite, settings=settings, client=client, progress=False, run_id=run_id)
    assert run.manifest.status == "completed"


if __name__ == "__main__":
    main()
