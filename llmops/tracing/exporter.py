"""The contract between the tracer and where spans go besides the local store (Langfuse).

A leaf of the tracing package: the tracer drives an :class:`Exporter` and reads its
:class:`ExportStats`; exporters (``langfuse_exporter``, test doubles) implement it without
importing the tracer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from llmops.tracing.model import ScoreRecord, SpanRecord


@dataclass(frozen=True)
class ExportStats:
    """Delivery counters of an exporter.

    Attributes:
        sent: Spans handed to the exporter's delivery pipeline.
        delivered: Spans the server acknowledged.
        failed: Spans whose delivery failed for good (refused, error status, timeout).
        scores_sent: Scores handed to the exporter.
        cause: What stopped delivery most recently, in words (None: nothing did).
    """

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    scores_sent: int = 0
    cause: str | None = None

    @property
    def undelivered(self) -> int:
        """Spans not (yet) acknowledged: failed, dropped or still in flight."""
        return max(0, self.sent - self.delivered)


class Exporter(Protocol):
    """Where spans go besides the local store (Langfuse). Runs on the tracer's worker thread.

    An exporter may also offer ``take_delivered() -> list[str]``: the ids of spans its server
    acknowledged since the last call. The tracer then keeps every other span in the local
    store's outbox, which ``llmops traces push`` re-sends.
    """

    def start(self) -> None:
        """Prepare (import, connect lazily); called once on the worker thread before any export."""

    def export(self, spans: Sequence[SpanRecord]) -> None:
        """Hand over redacted spans; must not block on the network."""

    def score(self, scores: Sequence[ScoreRecord]) -> None:
        """Hand over redacted scores; must not block on the network."""

    def flush(self, timeout_s: float) -> bool:
        """Deliver what is pending, waiting at most ``timeout_s``. Never called on the request path."""

    def shutdown(self, timeout_s: float) -> None:
        """Flush and release resources, waiting at most ``timeout_s``."""

    def stats(self) -> ExportStats:
        """Delivery counters."""
