"""Bounded retries: exponential backoff with equal jitter, honouring Retry-After.

A CI tool wants retries that end: at most ``max_retries`` extra attempts and at most
``max_total_s`` seconds spent waiting, whichever comes first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How failed provider calls are retried.

    Attributes:
        max_retries: Extra attempts after the first one.
        base_delay_s: First backoff step.
        max_delay_s: Cap of one wait (a Retry-After above it is capped too).
        max_total_s: Cap of all waits of one call together.
    """

    max_retries: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    max_total_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based).

        A provider's Retry-After wins over the computed backoff (plus a little jitter so that
        many waiting calls do not return in lockstep).
        """
        uniform = rng.uniform if rng is not None else random.uniform
        if retry_after is not None and retry_after >= 0:
            return min(self.max_delay_s, retry_after + uniform(0, 0.1 * max(retry_after, 0.1)))
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** max(0, attempt - 1))
        # "Equal jitter" (not full jitter): uniform in [step/2, step], so backoff still grows
        # while calls that failed together spread out.
        return ceiling / 2 + uniform(0, ceiling / 2)

    def allows(self, attempt: int, waited_s: float, next_delay_s: float) -> bool:
        """Whether retry number ``attempt`` may happen after ``waited_s`` seconds of waiting."""
        return attempt <= self.max_retries and waited_s + next_delay_s <= self.max_total_s
