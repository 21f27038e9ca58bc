"""A spending cap that is never crossed: every paid call reserves its worst-case cost first.

A run's ``max_cost_usd`` is a :class:`Budget`. While one is active (:func:`spending`), the client
asks it for a reservation before each call that goes to a provider (answers from the response
cache cost nothing and reserve nothing). The reservation is the most the call can cost:

    prompt bound × input price + output bound × output price

- prompt bound: the UTF-8 bytes of every message's text plus 8 tokens per message and 8 for the
  request (a BPE token is at least one byte, so no tokenizer counts more tokens than bytes; the
  per-message allowance covers role and format tokens);
- output bound: the call's ``max_tokens`` (or ``max_completion_tokens``); without one, the
  model's ``max_output_tokens`` from LiteLLM's price map; else :data:`DEFAULT_OUTPUT_BOUND`;
- prices: the alias's own ``input_cost_per_token`` / ``output_cost_per_token``, else LiteLLM's
  local price map (free models reserve 0).

A call whose reservation fits only once the calls in flight have settled waits for them; when
it cannot fit even then (limit − spent < reservation), it is refused with
:class:`~llmops.errors.BudgetExceededError` before anything is sent, and the budget is marked
exhausted (the run stops scheduling; ``--resume`` with a larger budget finishes it). When the
call ends, its reservation is replaced by its real cost (a failed call costs 0: providers do
not bill an error). So concurrent calls can never together cross the cap, and
``max_cost_usd = 0`` makes no paid call at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from llmops.errors import BudgetExceededError

if TYPE_CHECKING:
    from llmops.llm.types import Message

#: Output tokens assumed for a call without ``max_tokens`` whose model's limit is unknown.
DEFAULT_OUTPUT_BOUND = 4096
_PER_MESSAGE = 8


class Budget:
    """A USD cap shared by every call made while it is active (see the module docstring).

    Args:
        limit: The cap in USD; None: unlimited (calls are still counted).
        spent: What was already spent (e.g. by the finished part of a resumed run).
    """

    def __init__(self, limit: float | None, spent: float = 0.0) -> None:
        self.limit = limit
        self.spent = spent
        self.reserved = 0.0
        self.exhausted = False
        self.refused = 0
        self._lock = threading.Lock()  # worker threads of one process may share it

    @property
    def left(self) -> float | None:
        """What can still be reserved (None: unlimited)."""
        if self.limit is None:
            return None
        return self.limit - self.spent - self.reserved

    def reserve(self, amount: float, what: str = "a call") -> float:
        """Reserve ``amount`` USD for a call about to be sent.

        Returns:
            The amount reserved (pass it to :meth:`settle`).

        Raises:
            BudgetExceededError: when the reservation does not fit; the budget is then exhausted.
        """
        with self._lock:
            if self.limit is not None and amount > 0 and self.spent + self.reserved + amount > self.limit:
                self.exhausted = True
                self.refused += 1
                watcher = _REFUSALS.get()
                if watcher is not None:
                    watcher.append(what)
                raise BudgetExceededError(
                    f"budget: {what} could cost up to ${amount:.6f}, more than the ${max(0.0, self.left or 0.0):.6f} "
                    f"left of max_cost_usd ${self.limit:g}",
                    hint="raise --max-cost-usd (and --resume the run), or lower max_tokens")
            self.reserved += amount
            return amount

    async def acquire(self, amount: float, what: str = "a call") -> float:
        """Reserve ``amount``, waiting while calls in flight hold what it needs.

        A call that would fit once the calls in flight have settled (their real cost is usually
        far below their worst case) waits for them instead of stopping the run; a call that
        cannot fit even then is refused.

        Raises:
            BudgetExceededError: when ``spent + amount`` exceeds the limit.
        """
        while True:
            with self._lock:
                fits_later = self.limit is None or amount <= 0 or self.spent + amount <= self.limit
                fits_now = fits_later and (self.limit is None or amount <= 0
                                           or self.spent + self.reserved + amount <= self.limit)
                if fits_now or not fits_later or self.reserved <= 0:
                    break
            await asyncio.sleep(0.005)  # the calls in flight settle soon; polling keeps this loop-agnostic
        return self.reserve(amount, what)

    def settle(self, reserved: float, cost: float) -> None:
        """Replace a reservation by the call's real cost."""
        with self._lock:
            self.reserved -= reserved
            self.spent += cost


_ACTIVE: ContextVar[Budget | None] = ContextVar("llmops_budget", default=None)
_REFUSALS: ContextVar[list[str] | None] = ContextVar("llmops_budget_refusals", default=None)


def active_budget() -> Budget | None:
    """The budget calls made here reserve from (None: no cap)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def spending(budget: Budget | None) -> Iterator[Budget | None]:
    """Make ``budget`` the one that calls in this context (and tasks started from it) reserve from."""
    token = _ACTIVE.set(budget)
    try:
        yield budget
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def watching_refusals() -> Iterator[list[str]]:
    """Collect the calls the budget refuses in this context (a unit's own call and its judges').

    An evaluator turns a failed judge call into an ``error`` score; this list is how the runner
    still knows that the unit was cut short by the budget (and leaves it for a resume).
    """
    refused: list[str] = []
    token = _REFUSALS.set(refused)
    try:
        yield refused
    finally:
        _REFUSALS.reset(token)


def prompt_token_bound(messages: list[Message]) -> int:
    """Most tokens the messages can be (see the module docstring)."""
    # The whole serialised message (role, text parts, tool calls) is a superset of its text.
    return _PER_MESSAGE + sum(_PER_MESSAGE + len(json.dumps(m.to_dict(), ensure_ascii=False).encode("utf-8"))
                              for m in messages)


def output_token_bound(resolved: str, params: dict[str, Any]) -> int:
    """Most output tokens a call can produce (see the module docstring)."""
    for key in ("max_tokens", "max_completion_tokens"):
        value = params.get(key)
        if isinstance(value, int) and value > 0:
            return value
    from llmops.llm.pricing import model_output_limit

    return model_output_limit(resolved) or DEFAULT_OUTPUT_BOUND


def worst_case_cost(resolved: str, messages: list[Message], params: dict[str, Any]) -> float:
    """The most a call can cost in USD (0 for free models)."""
    from llmops.llm.pricing import cost_of
    from llmops.llm.types import Usage

    return cost_of(resolved, Usage(prompt_token_bound(messages), output_token_bound(resolved, params)), params)
