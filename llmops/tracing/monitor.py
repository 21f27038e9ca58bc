"""Monitoring production: score a sample of traced calls, and watch quality drift per prompt version.

``score`` runs suite evaluators over production calls (local store or Langfuse) and writes the
scores back to the traces. ``drift`` cuts the calls of each prompt version into time windows and
reports quality (mean score per evaluator), latency, cost and error rate per window; the last
window is compared with the one before by a permutation test, and a change with p < alpha is
flagged with its direction.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from llmops.errors import UserError
from llmops.tracing.store import ScoreRow, SpanRow, TraceStore

if TYPE_CHECKING:
    from llmops.config import Settings
    from llmops.evaluators.base import Evaluator, Score
    from llmops.llm.client import LLMClient

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


# ---- parsing helpers (shared by the CLI) -------------------------------------------------------
def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``7d``, ``1w`` -> seconds.

    Raises:
        UserError: for anything else.
    """
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise UserError(f"invalid duration '{text}'", hint="use e.g. 30m, 2h, 7d or 1w")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def parse_since(text: str, now: float | None = None) -> float:
    """A point in time: a duration back from now (``24h``) or an ISO date/datetime (UTC if naive).

    Raises:
        UserError: for text that is neither.
    """
    now = time.time() if now is None else now
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"invalid time '{text}'", key="--since",
                        hint="use a duration back from now (24h, 7d) or a date (2026-01-31)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def prompt_filter(ref: str | None, settings: Settings | None = None) -> tuple[str | None, int | None]:
    """``name`` (all versions), ``name@3`` or ``name@label`` -> (name, version or None).

    A label is resolved with the local prompt registry (the version it points at now).
    """
    if ref is None:
        return None, None
    from llmops.prompts.registry import PromptRef, PromptRegistry

    parsed = PromptRef.parse(ref)
    if parsed.version is not None:
        return parsed.name, parsed.version
    if parsed.label is not None and parsed.label != "latest":
        if settings is None:
            from llmops.config import load_settings

            settings = load_settings()
        return PromptRegistry(settings.prompts_path).resolve(parsed)
    return parsed.name, None


def is_eval_run_call(span: SpanRow) -> bool:
    """A call llmops made itself while running a suite (its metadata names the run)."""
    return span.metadata.get("run_id") is not None


def is_case_call(span: SpanRow, *, include_eval_runs: bool = False) -> bool:
    """A production call of a prompt.

    Not a judge call, not an evaluator's regeneration and, unless ``include_eval_runs``, not a
    call of llmops's own eval runs.
    """
    return (span.kind == "generation" and span.metadata.get("purpose") not in ("judge", "regenerate")
            and (include_eval_runs or not is_eval_run_call(span)))


# ---- score -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoredCall:
    """The evaluators' scores of one traced call."""

    trace_id: str
    span_id: str
    prompt: str | None
    scores: list[Score]


def select_calls(calls: Sequence[SpanRow], *, sample: int | None = None, seed: int = 0,
                 include_eval_runs: bool = False) -> list[SpanRow]:
    """The successful production prompt calls among ``calls``, randomly sampled (seeded) down to ``sample``.

    llmops's own eval-run calls are production traffic only with ``include_eval_runs``.
    """
    usable = [c for c in calls if is_case_call(c, include_eval_runs=include_eval_runs) and c.status == "ok"
              and isinstance(c.output, str)]
    if sample is not None and len(usable) > sample:
        usable = sorted(random.Random(seed).sample(usable, sample), key=lambda c: c.start_time)
    return usable


def sample_of(call: SpanRow) -> Any:
    """The evaluator's view of a traced call (a :class:`~llmops.evaluators.base.Sample`)."""
    from llmops.evaluators.base import Sample
    from llmops.llm.types import Completion, Message, Usage

    inputs = call.metadata.get("prompt_inputs")
    inputs = dict(inputs) if isinstance(inputs, dict) else {}
    raw_contexts = inputs.get("contexts")
    contexts = tuple(str(c) for c in raw_contexts) if isinstance(raw_contexts, list) else ()
    messages = tuple(Message(role=str(m.get("role", "user")), content=str(m.get("content", "")))
                     for m in call.input if isinstance(m, dict)) if isinstance(call.input, list) else ()
    completion = Completion(text=str(call.output), model=call.model or "", resolved_model=call.resolved_model or "",
                            usage=Usage(call.prompt_tokens or 0, call.completion_tokens or 0),
                            cost_usd=call.cost_usd or 0.0, latency_s=call.duration_s, cached=call.cached)
    return Sample(case_id=f"trace-{call.trace_id[:12]}", output=str(call.output), inputs=inputs,
                  contexts=contexts, metadata={"trace_id": call.trace_id, "span_id": call.span_id},
                  completion=completion, messages=messages)


async def ascore_calls(calls: Sequence[SpanRow], evaluators: Sequence[Evaluator], *,
                       client: LLMClient | None = None, judge_model: str | None = None, seed: int = 0,
                       concurrency: int = 4) -> list[ScoredCall]:
    """Run ``evaluators`` over traced calls (judge calls go through ``client``)."""
    from llmops.evaluators.base import EvalContext

    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(call: SpanRow) -> ScoredCall:
        async with limit:
            ctx = EvalContext(client=client, judge_model=judge_model, seed=seed,
                              metadata={"purpose": "judge", "trace_id": call.trace_id})
            sample = sample_of(call)
            scores = list(await asyncio.gather(*(e.evaluate(sample, ctx) for e in evaluators)))
            return ScoredCall(trace_id=call.trace_id, span_id=call.span_id, prompt=call.prompt_ref, scores=scores)

    return list(await asyncio.gather(*(one(c) for c in calls)))


def score_rows(scored: Sequence[ScoredCall], source: str = "traces-score") -> list[ScoreRow]:
    """Scores as store rows attached to the scored call (observation) of each trace."""
    from llmops.tracing.model import new_trace_id

    now = time.time()
    return [ScoreRow(score_id=new_trace_id(), trace_id=c.trace_id, span_id=c.span_id, name=s.name,
                     value=s.value, status=s.status, comment=s.reason or None, source=source,
                     metadata={"evaluator": s.evaluator, "version": s.version, "threshold": s.threshold},
                     created_at=now)
            for c in scored for s in c.scores]


# ---- drift -------------------------------------------------------------------------------------
Direction = Literal["worse", "better"]


@dataclass(frozen=True)
class WindowStats:
    """The calls of one prompt version in one time window.

    Attributes:
        start: Window start (unix time).
        end: Window end.
        calls: Number of calls.
        errors: Failed calls.
        latency_p50_s: Median latency.
        latency_mean_s: Mean latency.
        cost_mean_usd: Mean cost per call.
        quality: Mean score per score name (measured scores only).
        quality_n: Number of measured scores per name.
    """

    start: float
    end: float
    calls: int
    errors: int
    latency_p50_s: float | None
    latency_mean_s: float | None
    cost_mean_usd: float | None
    quality: dict[str, float | None] = field(default_factory=dict)
    quality_n: dict[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        """Errors / calls."""
        return self.errors / self.calls if self.calls else None


@dataclass(frozen=True)
class DriftFlag:
    """A significant change between the previous and the last window."""

    prompt: str
    metric: str
    before: float
    after: float
    p_value: float
    direction: Direction


@dataclass(frozen=True)
class VersionDrift:
    """Windows and flags of one prompt version."""

    prompt: str
    windows: list[WindowStats]
    flags: list[DriftFlag]


@dataclass(frozen=True)
class DriftReport:
    """``llmops traces drift``."""

    window_s: float
    alpha: float
    versions: list[VersionDrift]

    @property
    def flags(self) -> list[DriftFlag]:
        """Every flag of every version."""
        return [f for v in self.versions for f in v.flags]


def _values(calls: list[SpanRow], scores: dict[str, list[ScoreRow]]) -> dict[str, list[float]]:
    """Per-call values of each metric in a window (quality: one value per scored call)."""
    out: dict[str, list[float]] = {
        "latency_s": [c.duration_s for c in calls],
        # An errored call's cost is unknown, not zero: zeros would read as "cost better".
        "cost_usd": [c.cost_usd for c in calls if c.cost_usd is not None],
        "error_rate": [1.0 if c.status == "error" else 0.0 for c in calls],
    }
    for c in calls:
        trace_scores = scores.get(c.trace_id, [])
        own = [s for s in trace_scores if s.span_id == c.span_id] or [s for s in trace_scores if s.span_id is None]
        latest: dict[str, float] = {}
        for s in own:  # the newest score of each name counts (re-scoring replaces)
            if s.value is not None and s.status in ("pass", "fail") and math.isfinite(s.value):
                latest[s.name] = s.value
        for name, value in latest.items():
            out.setdefault(f"quality:{name}", []).append(value)
    return out


def _window(calls: list[SpanRow], values: dict[str, list[float]], start: float, end: float) -> WindowStats:
    lat = values["latency_s"]
    cost = values["cost_usd"]
    quality = {k.split(":", 1)[1]: (statistics.fmean(v) if v else None)
               for k, v in values.items() if k.startswith("quality:")}
    return WindowStats(start=start, end=end, calls=len(calls), errors=int(sum(values["error_rate"])),
                       latency_p50_s=statistics.median(lat) if lat else None,
                       latency_mean_s=statistics.fmean(lat) if lat else None,
                       cost_mean_usd=statistics.fmean(cost) if cost else None,
                       quality=quality,
                       quality_n={k.split(":", 1)[1]: len(v) for k, v in values.items() if k.startswith("quality:")})


def _test(a: list[float], b: list[float], n_resamples: int, seed: int) -> float:
    """Two-sided p-value that two windows' values share a distribution (difference of means)."""
    if len(set(a) | set(b)) <= 1:
        return 1.0
    rng = random.Random(seed)
    # Permutation tests cost O(n) per resample: cap each window at 1000 values (sampled, seeded).
    a = rng.sample(a, 1000) if len(a) > 1000 else a
    b = rng.sample(b, 1000) if len(b) > 1000 else b
    try:
        from llmops.stats import permutation_test
    except ImportError:  # pragma: no cover - the regression package ships with llmops
        return _permutation_p(a, b, n_resamples, seed)
    return float(permutation_test(a, b, n=n_resamples, seed=seed).p_value)


def _permutation_p(a: list[float], b: list[float], n: int, seed: int) -> float:
    rng = random.Random(seed)
    observed = abs(statistics.fmean(b) - statistics.fmean(a))
    pool = a + b
    extreme = 0
    for _ in range(n):
        rng.shuffle(pool)
        if abs(statistics.fmean(pool[len(a):]) - statistics.fmean(pool[:len(a)])) >= observed - 1e-12:
            extreme += 1
    return (extreme + 1) / (n + 1)


def drift(store: TraceStore, *, prompt_name: str | None = None, prompt_version: int | None = None,
          window_s: float = 86400.0, windows: int = 2, now: float | None = None, alpha: float = 0.05,
          min_calls: int = 5, n_resamples: int = 2000, seed: int = 0,
          environment: str | None = None, include_eval_runs: bool = False) -> DriftReport:
    """Quality, latency, cost and error rate per prompt version over the last ``windows`` windows.

    Args:
        store: The trace store.
        prompt_name: Only this prompt (default: every prompt).
        prompt_version: Only this version.
        window_s: Window length in seconds.
        windows: Number of windows, ending now.
        now: End of the last window (default: now).
        alpha: Significance level of the last-vs-previous comparison.
        min_calls: Minimum values in each of the two windows for a comparison.
        n_resamples: Permutations per test.
        seed: Seed of the permutations.
        environment: Only calls from this environment.
        include_eval_runs: Count llmops's own eval-run calls too (default: production only).
    """
    if windows < 1:
        raise UserError("--windows must be at least 1", key="--windows")
    end = time.time() if now is None else now
    begin = end - windows * window_s
    calls = [c for c in store.spans(kind="generation", prompt_name=prompt_name, prompt_version=prompt_version,
                                    since=begin, until=end, environment=environment)
             if is_case_call(c, include_eval_runs=include_eval_runs) and c.prompt_name]
    scores: dict[str, list[ScoreRow]] = {}
    for s in store.scores(sorted({c.trace_id for c in calls})):
        scores.setdefault(s.trace_id, []).append(s)
    by_version: dict[str, list[SpanRow]] = {}
    for c in calls:
        by_version.setdefault(c.prompt_ref or "?", []).append(c)
    versions: list[VersionDrift] = []
    for ref in sorted(by_version):
        buckets: list[list[SpanRow]] = [[] for _ in range(windows)]
        for c in by_version[ref]:
            index = min(windows - 1, int((c.start_time - begin) // window_s))
            buckets[index].append(c)
        values = [_values(b, scores) for b in buckets]
        stats = [_window(b, v, begin + i * window_s, begin + (i + 1) * window_s)
                 for i, (b, v) in enumerate(zip(buckets, values, strict=True))]
        flags: list[DriftFlag] = []
        if windows >= 2:
            before, after = values[-2], values[-1]
            for metric in sorted(set(before) & set(after)):
                a, b = before[metric], after[metric]
                if len(a) < min_calls or len(b) < min_calls:
                    continue
                p = _test(a, b, n_resamples, seed)
                if p < alpha:
                    ma, mb = statistics.fmean(a), statistics.fmean(b)
                    higher_is_better = metric.startswith("quality:")
                    worse = mb < ma if higher_is_better else mb > ma
                    flags.append(DriftFlag(prompt=ref, metric=metric, before=ma, after=mb, p_value=p,
                                           direction="worse" if worse else "better"))
        versions.append(VersionDrift(prompt=ref, windows=stats, flags=flags))
    return DriftReport(window_s=window_s, alpha=alpha, versions=versions)


def format_window(start: float, window_s: float) -> str:
    """A short label for a window start (date for day-sized windows, else date and time)."""
    fmt = "%Y-%m-%d" if window_s >= 86400 else "%Y-%m-%d %H:%M"
    return time.strftime(fmt, time.gmtime(start))

