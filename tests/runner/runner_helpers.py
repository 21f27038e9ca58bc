"""Helpers shared by the runner tests."""

from __future__ import annotations

from collections.abc import Callable

from llmops.runner.results import UnitResult


def interrupt_after(n: int) -> tuple[Callable[[UnitResult], None], list[str]]:
    """An ``on_result`` callback that raises KeyboardInterrupt at the n-th result (a Ctrl-C mid-run).

    Returns:
        The callback and the list of result keys it has seen.
    """
    seen: list[str] = []

    def on_result(result: UnitResult) -> None:
        seen.append(result.key)
        if len(seen) == n:
            raise KeyboardInterrupt

    return on_result, seen
