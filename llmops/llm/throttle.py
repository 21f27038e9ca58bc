"""Adaptive pacing of one model's calls, so that a rate-limited provider's budget is used, not fought.

LiteLLM's Router fails fast on its own ``rpm`` limits, and a provider's 429s are the only
signal of its real limit that every provider sends, so the client paces itself from them:

- Nothing is paced until the first 429: an unlimited provider never pays for this.
- A 429 closes the gate for every call of the model until its ``Retry-After`` has passed,
  instead of each waiting call hitting the limit again.
- The first 429 also sets a start rate: the larger of what the provider accepted over the last
  second and one call per ``Retry-After`` (a token bucket says when its next token comes).
  Guessing high is cheap: a 429 comes back at once and the rate is cut again, straight down to
  the accepted rate (at most halving) when the guess was far off.
- Until the first cut the rate grows fast (slow start: +1 call/s per answered call, about
  doubling every second); each 429 for a call scheduled after the last cut cuts it by 15%;
  between cuts it grows by 5% per second: the AIMD sawtooth, which keeps a limit nearly busy
  (measured: bench/README.md).

A call's start slot is reserved before it waits; a 429 for a call reserved before the last cut
is not a new signal (the calls already on their way say nothing about the new rate).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

WINDOW_S = 1.0
CUT = 0.85
AVOIDANCE_GAIN = 0.05  # calls/s added per answered call: r answers per second grow the rate 5%/s
MIN_RATE = 0.2


class Pacer:
    """Start-time pacing of one model's calls, learned from the provider's 429s.

    Attributes:
        rate: Current start rate (calls per second), or None while no limit was learned.
        throttled_count: 429s reported so far.
        cuts: How often the rate was cut.
    """

    def __init__(self, clock: Callable[[], float] | None = None, max_wait_s: float = float("inf")) -> None:
        """Create a pacer.

        Args:
            clock: Monotonic clock (tests pass a fake one).
            max_wait_s: Cap of the pause one ``Retry-After`` imposes (the retry policy's cap of one
                wait: a provider asking for an hour must not stall the whole run for an hour).
        """
        self._clock = clock or time.monotonic
        self._max_wait_s = max_wait_s
        self.rate: float | None = None
        self.throttled_count = 0
        self.cuts = 0
        self._slow_start = True
        self._next_at = 0.0
        self._resume_at = 0.0
        self._last_cut = float("-inf")
        self._born = self._clock()
        self._window_start = self._born
        self._ok_now = 0
        self._ok_before = 0

    def reserve(self) -> tuple[float, float]:
        """Reserve the next start slot: (reservation time, seconds to wait before starting)."""
        now = self._clock()
        start = max(now, self._resume_at)
        if self.rate is not None:
            start = max(start, self._next_at)
            self._next_at = start + 1.0 / self.rate
        return now, start - now

    async def wait(self) -> float:
        """Wait for a start slot; returns the reservation time (pass it to :meth:`throttled`)."""
        reserved, pause = self.reserve()
        if pause > 0:
            await asyncio.sleep(pause)
        return reserved

    def _roll(self, now: float) -> None:
        elapsed = now - self._window_start
        if elapsed >= WINDOW_S:
            self._ok_before = self._ok_now if elapsed < 2 * WINDOW_S else 0
            self._ok_now = 0
            self._window_start = now

    def success(self) -> None:
        """A call was answered (not throttled)."""
        now = self._clock()
        self._roll(now)
        self._ok_now += 1
        if self.rate is not None:
            self.rate += 1.0 if self._slow_start else AVOIDANCE_GAIN

    def accepted_rate(self) -> float:
        """Answered calls per second over about the last second."""
        now = self._clock()
        self._roll(now)
        basis = min(WINDOW_S, max(0.1, now - self._born))
        into_window = now - self._window_start
        accepted = self._ok_before * max(0.0, WINDOW_S - into_window) / WINDOW_S + self._ok_now
        return accepted / basis

    def throttled(self, retry_after: float | None, reserved_at: float) -> None:
        """A call reserved at ``reserved_at`` got a 429 (``retry_after``: the provider's wait, if sent)."""
        now = self._clock()
        self.throttled_count += 1
        wait = min(self._max_wait_s, retry_after) if retry_after is not None and retry_after > 0 else 0.0
        self._resume_at = max(self._resume_at, now + wait)
        accepted = self.accepted_rate()
        if self.rate is None:
            guess = max(accepted, 1.0 / wait if wait > 0 else 0.0)
            if guess > 0:
                self.rate = max(MIN_RATE, guess)
                self._last_cut = now
            return
        if reserved_at > self._last_cut:
            cut = self.rate * CUT
            if self._slow_start and accepted > 0:  # a first guess far above what the provider takes
                cut = min(cut, max(accepted, self.rate * 0.5))
            self.rate = max(MIN_RATE, cut)
            self._slow_start = False
            self.cuts += 1
            self._last_cut = now
