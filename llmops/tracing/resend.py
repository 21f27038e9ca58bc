"""``llmops traces push``: send the spans an exporter never got acknowledged, from the local store.

Every span meant for Langfuse waits in the trace store's outbox until Langfuse acknowledges it.
A process that exited before its exporter could deliver (a cached call, a one-line script), or
whose Langfuse was down, leaves its spans there; pushing replays them with their own ids, so a
span Langfuse already has is replaced by itself, never duplicated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmops.errors import ConfigError

if TYPE_CHECKING:
    from llmops.config import Settings
    from llmops.tracing.exporter import Exporter


@dataclass(frozen=True)
class PushResult:
    """What one push did.

    Attributes:
        pending: Spans waiting in the outbox before the push.
        sent: Spans handed to the exporter.
        delivered: Spans the server acknowledged.
        remaining: Spans still waiting after the push.
        cause: Why some were not delivered (None when all were).
    """

    pending: int
    sent: int
    delivered: int
    remaining: int
    cause: str | None = None


def push_undelivered(settings: Settings, *, timeout_s: float = 10.0, limit: int | None = None,
                     older_than_s: float = 0.0, exporter: Exporter | None = None) -> PushResult:
    """Re-send the local store's undelivered spans to Langfuse and wait (bounded) for them.

    Args:
        settings: Configuration (Langfuse credentials, trace store path).
        timeout_s: How long to wait for the server's acknowledgements.
        limit: Send at most this many spans (oldest first).
        older_than_s: Only spans that have waited at least this long (leave a running process's
            in-flight spans to it).
        exporter: Use this exporter (tests); default: Langfuse from the settings.

    Raises:
        ConfigError: Langfuse is not configured.
    """
    from llmops.tracing.store import TraceStore

    if exporter is None:
        if settings.langfuse is None:
            raise ConfigError("no Langfuse to push to: the Langfuse keys are not set", key="LANGFUSE_HOST",
                              hint="set LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST")
        from llmops.tracing.langfuse_exporter import LangfuseExporter

        exporter = LangfuseExporter(settings.langfuse, environment=settings.environment,
                                    release=settings.release, prompts_path=settings.prompts_path)
    store = TraceStore(settings.path(settings.trace_path))
    if not store.exists():
        return PushResult(pending=0, sent=0, delivered=0, remaining=0)
    try:
        rows = store.undelivered(before=time.time() - older_than_s, limit=limit)
        pending = store.undelivered_count()
        if not rows:
            return PushResult(pending=pending, sent=0, delivered=0, remaining=pending)
        exporter.start()
        exporter.export(rows)  # a stored row is the span record the exporter takes
        exporter.flush(timeout_s)
        exporter.shutdown(min(2.0, timeout_s))
        take = getattr(exporter, "take_delivered", None)
        acked = list(take()) if take is not None else []
        store.mark_delivered(acked)
        stats = exporter.stats()
        remaining = store.undelivered_count()
    finally:
        store.close()
    delivered = len(set(acked) & {r.span_id for r in rows})
    cause = None
    if delivered < len(rows):
        cause = stats.cause or f"not acknowledged within {timeout_s:g} s"
    return PushResult(pending=pending, sent=len(rows), delivered=delivered, remaining=remaining, cause=cause)
