"""Which traces and calls ``llmops traces export`` / ``score`` work on, and where scores go back.

The rules live here (not in the CLI) so the library and the command line select the same
traces: from the local store or from Langfuse, by ids, prompt, time window, errors and score
thresholds; production scores are written back to the source they were read from, and to
Langfuse too when it is configured and tracing is not local-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from llmops.errors import UserError

if TYPE_CHECKING:
    from llmops.config import Settings
    from llmops.tracing.store import ScoreRow, SpanRow, TraceDetail, TraceStore

Source = Literal["local", "langfuse"]


def parse_thresholds(items: Sequence[str]) -> list[tuple[str, float]]:
    """``NAME=VALUE`` pairs of ``--below``.

    Raises:
        UserError: for a malformed pair.
    """
    thresholds = []
    for item in items:
        key, sep, raw = item.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = None
        if not sep or not key or value is None:
            raise UserError(f"--below expects NAME=VALUE, got '{item}'", key="--below")
        thresholds.append((key, value))
    return thresholds


def _local_store(settings: Settings) -> TraceStore:
    from llmops.tracing.store import TraceStore

    store = TraceStore(settings.path(settings.trace_path))
    if not store.exists():
        raise UserError(f"no trace store at {store.path}", hint="traced calls create it")
    return store


def select_traces(settings: Settings, *, source: Source = "local", ids: Sequence[str] | None = None,
                  prompt_name: str | None = None, prompt_version: int | None = None, since: float | None = None,
                  until: float | None = None, errors_only: bool = False, below: Sequence[str] = (),
                  limit: int = 50) -> list[TraceDetail]:
    """The traces a selection names, newest first.

    Args:
        settings: Configuration.
        source: The local trace store or Langfuse.
        ids: These traces (ids or unique prefixes); the other filters are ignored.
        prompt_name: Only traces with a call of this prompt.
        prompt_version: Only calls of this version.
        since: Only traces that started at or after this time.
        until: Only traces that started before this time.
        errors_only: Only traces with a failed call.
        below: ``NAME=VALUE``: only traces whose score NAME is below VALUE (local store only).
        limit: At most this many traces.

    Raises:
        UserError: no local store, a malformed threshold, or thresholds with ``source="langfuse"``.
    """
    if source == "langfuse":
        from llmops.tracing import langfuse_api

        if below:
            raise UserError("--below works with the local store (--source local)", key="--below")
        if ids:
            return langfuse_api.fetch_traces(settings, list(ids))
        calls = langfuse_api.fetch_calls(settings, since=since, until=until, prompt_name=prompt_name,
                                         prompt_version=prompt_version, limit=10 * limit)
        if errors_only:
            calls = [c for c in calls if c.status == "error"]
        picked = list(dict.fromkeys(c.trace_id for c in reversed(calls)))[:limit]
        return langfuse_api.fetch_traces(settings, picked)
    store = _local_store(settings)
    if ids:
        return [store.trace(i) for i in ids]
    thresholds = parse_thresholds(below)
    summaries = store.traces(prompt_name=prompt_name, prompt_version=prompt_version, since=since, until=until,
                             errors_only=errors_only, limit=10_000)

    def under(scores: dict[str, float | None]) -> bool:
        return all((got := scores.get(k)) is not None and got < v for k, v in thresholds)

    return [store.trace(s.trace_id) for s in [s for s in summaries if under(s.scores)][:limit]]


def call_pool(settings: Settings, *, source: Source = "local", prompt_name: str | None = None,
              prompt_version: int | None = None, since: float | None = None, until: float | None = None,
              limit: int = 500) -> list[SpanRow]:
    """The traced generations ``traces score`` samples from (see :func:`monitor.select_calls`)."""
    if source == "langfuse":
        from llmops.tracing import langfuse_api

        return langfuse_api.fetch_calls(settings, since=since, until=until, prompt_name=prompt_name,
                                        prompt_version=prompt_version, limit=limit)
    return _local_store(settings).spans(kind="generation", prompt_name=prompt_name, prompt_version=prompt_version,
                                        since=since, until=until)


def write_back(settings: Settings, rows: Sequence[ScoreRow], *, source: Source = "local") -> list[str]:
    """Store production scores where the calls came from; returns where they went.

    Scores of calls read from the local store go back into it; Langfuse gets them too when it is
    configured and tracing is not local-only (and always for calls read from Langfuse).
    """
    sent_to: list[str] = []
    if source == "local":
        _local_store(settings).add(scores=rows)
        sent_to.append(str(settings.path(settings.trace_path)))
    if settings.langfuse is not None and (source == "langfuse" or settings.tracing != "local"):
        from llmops.tracing import langfuse_api

        langfuse_api.write_scores(settings, rows)
        sent_to.append("Langfuse")
    return sent_to
