"""Run one suite in several processes that share the run store (``llmops run --workers N``).

On a machine with N cores, one process spends most of its time in LiteLLM's per-call CPU work
(~3 ms per call here) while the provider still has free slots. Worker processes split the units
of one run: this process takes every N-th unit and N-1 forked children take the others, each with
an equal share of the concurrency limit (so the provider never sees more than ``concurrency``
calls per model) and of the remaining budget. Every result is committed to the one SQLite store
(WAL) the moment it completes, exactly as in a single process, so a killed run resumes the same
way; the parent reads the run back when all are done and finishes its manifest.

Children are forked after LiteLLM is imported (they do not pay its import again) and before any
event loop, connection or call exists; they reopen SQLite themselves and trace with a tracer of
their own. A child that dies leaves its units to the parent, which runs what is missing.
Forking is used on Linux only; elsewhere (and inside a running event loop) the run falls back to
one process with a warning.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import traceback
import warnings
from typing import TYPE_CHECKING

from llmops._async import run_sync
from llmops.runner.results import Manifest, RunResult, UnitResult

if TYPE_CHECKING:
    from llmops.runner.engine import PartStats, Runner


def forking_possible() -> bool:
    """Whether worker processes can be forked here (else: warn and run in one process)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        warnings.warn("worker processes need Linux (fork); running in one process", RuntimeWarning,
                      stacklevel=3)
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    warnings.warn("worker processes cannot be forked inside a running event loop; running in one process",
                  RuntimeWarning, stacklevel=3)
    return False


def split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal positive shares (largest first)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def execute_in_processes(runner: Runner, run_id: str, manifest: Manifest, done: set[str],
                         processes: int) -> RunResult:
    """Run the units of a registered run not in ``done`` in ``processes`` processes.

    Args:
        runner: The run's runner (its client's concurrency is the total across processes).
        run_id: The run, already registered in the store.
        manifest: Its manifest.
        done: Keys of units that already have a result (resume).
        processes: Processes to use, this one included (at most one per concurrency slot).

    Returns:
        The whole run read back from the store, with its finished manifest.
    """
    from llmops.runner.engine import PartStats

    client = runner.client
    total_concurrency = client.concurrency
    processes = max(1, min(processes, total_concurrency))
    shares = split(total_concurrency, processes)
    budget = None
    if runner.max_cost_usd is not None:
        budget = max(0.0, runner.max_cost_usd - (runner.store.spent(run_id) if done else 0.0)) / processes
    client.before_fork()  # litellm imported once here: the children inherit it
    # No SQLite handle may cross a fork: both sides reopen theirs lazily.
    runner.store.close()
    if client.cache is not None:
        client.cache.close()
    sys.stdout.flush()
    sys.stderr.flush()
    children: list[tuple[int, int]] = []
    for index in range(2, processes + 1):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            os.close(read_fd)
            code = 1
            try:
                code = _child(runner, run_id, manifest, done, (index, processes), shares[index - 1], budget,
                              write_fd)
            finally:
                os._exit(code)
        os.close(write_fd)
        children.append((pid, read_fd))

    own_keys: set[str] = set()
    callback = runner.on_result

    def record(result: UnitResult) -> None:
        own_keys.add(result.key)
        if callback is not None:
            callback(result)

    runner.on_result = record
    client.concurrency = shares[0]
    parts: list[PartStats] = []
    failed = False
    try:
        parts.append(run_sync(runner.execute_part(run_id, manifest, done, (1, processes), max_cost_usd=budget,
                                                  progress_total=manifest.units)))
    finally:
        for pid, read_fd in children:
            data = _read_all(read_fd)
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) == 0 and data:
                fields = json.loads(data)
                fields["skipped"] = [tuple(s) for s in fields.get("skipped", [])]
                parts.append(PartStats(**fields))
            else:
                failed = True
        client.concurrency = total_concurrency
    try:
        if failed:  # a worker died: what it left undone runs here, like a resume
            finished = runner.store.done_units(run_id)
            remaining = None if budget is None else budget * processes - runner.store.spent(run_id)
            parts.append(run_sync(runner.execute_part(run_id, manifest, finished, None,
                                                      max_cost_usd=remaining)))
    finally:
        runner.on_result = callback
    if callback is not None:  # the children's results, now that they are in the store (streamed)
        for result in runner.store.iter_results(run_id):
            if result.key not in own_keys and result.key not in done:
                callback(result)
    return runner.finalize(run_id, manifest, parts)  # results read from the store, not held


def _child(runner: Runner, run_id: str, manifest: Manifest, done: set[str], part: tuple[int, int],
           concurrency: int, budget: float | None, write_fd: int) -> int:
    """Body of a forked worker: run its part, report its counters through the pipe."""
    try:
        client = runner.client
        client.after_fork(concurrency)
        runner.progress = False
        runner.on_result = None
        parent_tracer = runner.tracer
        own_tracer = None
        if parent_tracer is not None and parent_tracer.enabled:
            # The parent's tracer thread did not survive the fork: trace with a fresh one.
            from llmops.tracing.tracer import create_tracer

            client.observers = [o for o in client.observers if o is not parent_tracer]
            own_tracer = create_tracer(runner.settings)
            own_tracer.attach(client)
            runner.tracer = own_tracer
        stats = asyncio.run(runner.execute_part(run_id, manifest, done, part, max_cost_usd=budget))
        if own_tracer is not None:
            own_tracer.shutdown(timeout_s=10.0)
        runner.store.close()
        if client.cache is not None:
            client.cache.close()
        os.write(write_fd, json.dumps(dataclasses.asdict(stats)).encode("utf-8"))
        return 0
    except BaseException:  # reported, and the parent runs what this worker left undone
        traceback.print_exc()
        return 1
    finally:
        os.close(write_fd)
        sys.stdout.flush()
        sys.stderr.flush()


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
