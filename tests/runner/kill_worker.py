"""Subprocess body for the SIGKILL test: run or resume a suite against a slow fake model.

Every completed provider call is appended (with its cache key and whether it was a cache
hit) to a log file, so the parent can prove no completed call was ever made twice.
"""

from __future__ import annotations

import json
import os
import sys

from llmops.config import load_settings
from llmops.llm import fake
from llmops.llm.client import CallRecord, LLMClient
from llmops.runner.engine import resume_run, run_suite


def main() -> None:
    root, log_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the process

    def observe(record: CallRecord) -> None:
        if record.completion is not None:
            log.write(json.dumps({"key": record.completion.cache_key, "cached": record.completion.cached,
                                  "pid": os.getpid()}) + "\n")
            log.flush()

    fake.script("fake/slow", responder=lambda m, p: fake.FakeReply("a0 a1 a2 a3 a4 a5 a6 a7", delay_s=0.02))
    settings = load_settings(root)
    client = LLMClient(settings, observers=[observe], concurrency=3)
    if mode == "run":
        run_suite("evalsets/kill.yaml", settings=settings, client=client, progress=False, repeat=2,
                  run_id="killed-run")
    else:
        resume_run("killed-run", settings=settings, client=client, progress=False)


if __name__ == "__main__":
    main()
