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


class _Boxed:
    """A task result with a cheap ``repr``.

    When ``asyncio.run`` restores the SIGINT handler, ``signal.signal`` reprs the old handler,
    which holds the finished main task and so its result: a whole run with every unit result
    (measured: 7% of a 2,000-unit replay, growing with the run).
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<result>"


async def _boxed(coro: Coroutine[Any, Any, T]) -> _Boxed:
    return _Boxed(await coro)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result (safe inside a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if not running:
        # Outside the except block: an exception re-raised inside the loop would otherwise get this
        # RuntimeError as its __context__, losing the chain that tells what really failed.
        result: T = asyncio.run(_boxed(coro)).value
        return result
    # Copy the context so tracing spans and settings stay visible in the worker thread.
    ctx = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmops-sync") as pool:
        return pool.submit(ctx.run, asyncio.run, coro).result()
