"""Run a coroutine from sync code, also when an event loop is already running.

Notebooks and pytest-asyncio run an event loop in the calling thread; ``asyncio.run`` would fail
there with "cannot be called from a running event loop". In that case the coroutine runs on a
fresh loop in a worker thread and the caller blocks on its result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result (safe inside a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Copy the context so tracing spans and settings stay visible in the worker thread.
    ctx = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmops-sync") as pool:
        return pool.submit(ctx.run, asyncio.run, coro).result()
