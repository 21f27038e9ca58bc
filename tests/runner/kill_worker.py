"""Subprocess body for the SIGKILL tests: run or resume a suite against a slow fake model.

Every completed provider call is appended (with its cache key and whether it was a cache
hit) to a log file, so the parent can prove no completed call was ever made twice.

Usage: ``kill_worker.py ROOT LOG MODE [light]``. MODE is ``run``, ``resume``, or ``auto`` (resume
the run if the store has it, else start it). ``light`` answers the provider call in-process
instead of through LiteLLM (the cache, retries, runner and store are the real ones), so that
a test can kill and restart the worker many times without paying litellm's import each time.

The worker can also SIGKILL itself at a chosen point (a signal is a signal, whoever sends it;
this way the parent needs no polling): ``KILL_AFTER_SECONDS`` after start, right after the
``KILL_AFTER_RESULTS``-th unit result was committed, or right after the ``KILL_AFTER_CALLS``-th
completed call was cached but before its unit result is stored.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from typing import Any

from llmops.config import load_settings
from llmops.errors import UserError
from llmops.llm import fake
from llmops.llm.client import CallRecord, LLMClient
from llmops.llm.types import Completion, Message, Usage
from llmops.runner.engine import resume_run, run_suite
from llmops.runner.results import UnitResult
from llmops.runner.store import RunStore

ANSWER = "a0 a1 a2 a3 a4 a5 a6 a7"
RUN_ID = "killed-run"


class LightClient(LLMClient):
    """The real client with the provider attempt answered in-process (no litellm import)."""

    async def _attempt(self, msgs: list[Message], requested: str, resolved: str, params: dict[str, Any],
                       seed: int) -> Completion:
        self.provider_calls += 1
        await asyncio.sleep(float(os.environ.get("KILL_WORKER_DELAY", "0.02")))
        return Completion(text=ANSWER, model=requested, resolved_model=resolved, usage=Usage(3, 8))


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _after(variable: str) -> int | None:
    value = os.environ.get(variable)
    return int(value) if value else None


def main() -> None:
    root, log_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    light = sys.argv[4:5] == ["light"]
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the process
    if os.environ.get("KILL_AFTER_SECONDS"):
        timer = threading.Timer(float(os.environ["KILL_AFTER_SECONDS"]), _die)
        timer.daemon = True
        timer.start()
    calls, results = [0], [0]
    kill_after_calls, kill_after_results = _after("KILL_AFTER_CALLS"), _after("KILL_AFTER_RESULTS")

    def observe(record: CallRecord) -> None:
        if record.completion is not None:
            log.write(json.dumps({"key": record.completion.cache_key, "cached": record.completion.cached,
                                  "pid": os.getpid()}) + "\n")
            log.flush()
            calls[0] += 1
            if calls[0] == kill_after_calls:
                _die()

    def on_result(result: UnitResult) -> None:
        results[0] += 1
        if results[0] == kill_after_results:
            _die()

    fake.script("fake/slow", responder=lambda m, p: fake.FakeReply(ANSWER, delay_s=0.02))
    settings = load_settings(root)
    client = (LightClient if light else LLMClient)(settings, observers=[observe], concurrency=3)
    if mode == "auto":
        try:
            RunStore(settings.path(settings.store_path)).plan(RUN_ID)
            mode = "resume"
        except UserError:  # killed before the run was registered: start it
            mode = "run"
    if mode == "run":
        run_suite("evalsets/kill.yaml", settings=settings, client=client, progress=False, repeat=2,
                  run_id=RUN_ID, on_result=on_result)
    else:
        resume_run(RUN_ID, settings=settings, client=client, progress=False, on_result=on_result)


if __name__ == "__main__":
    main()
