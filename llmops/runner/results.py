"""What a run produces: one :class:`UnitResult` per unit of work, a manifest, a summary.

A unit of work is one case × prompt version × model × repeat. These models go to disk (run
store, baselines, reports), so they are pydantic models.
"""

from __future__ import annotations

import statistics
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmops.evaluators.base import Score

UnitStatus = Literal["pass", "fail", "unmeasured", "error", "skipped"]


def unit_key(case_id: str, prompt_ref: str, model: str, repeat: int) -> str:
    """Stable identity of a unit of work inside a run."""
    return f"{case_id}|{prompt_ref}|{model}|{repeat}"


class UnitResult(BaseModel):
    """The outcome of one unit of work.

    Attributes:
        status: ``pass`` (every measured score passed), ``fail`` (one failed), ``unmeasured``
            (no evaluator could decide), ``error`` (the call or every evaluator crashed),
            ``skipped`` (not run: budget exhausted).
    """

    model_config = ConfigDict(frozen=True)

    case_id: str
    prompt: str
    prompt_hash: str = ""
    model: str
    resolved_model: str = ""
    repeat: int = 0
    status: UnitStatus
    output: str | None = None
    error: str | None = None
    scores: list[Score] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    judge_cost_usd: float = 0.0
    latency_s: float | None = None
    cached: bool = False
    attempts: int = 0
    started_at: float = 0.0
    ended_at: float = 0.0

    @property
    def key(self) -> str:
        """The unit key."""
        return unit_key(self.case_id, self.prompt, self.model, self.repeat)

    @property
    def variant(self) -> str:
        """``prompt_ref × model``: the column this unit belongs to in comparisons."""
        return f"{self.prompt} × {self.model}"

    def score(self, name: str) -> Score | None:
        """The score of one evaluator, if present."""
        return next((s for s in self.scores if s.name == name), None)


def status_of(scores: list[Score]) -> UnitStatus:
    """Aggregate evaluator outcomes into a unit status."""
    measured = [s for s in scores if s.measured]
    if any(s.status == "fail" for s in measured):
        return "fail"
    if measured:
        return "pass"
    if not scores:
        return "pass"
    if any(s.status == "error" for s in scores):
        return "error"
    return "unmeasured"


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) with linear interpolation, None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class VariantSummary(BaseModel):
    """Aggregates over the units of one prompt × model."""

    prompt: str
    model: str
    units: int = 0
    passed: int = 0
    failed: int = 0
    unmeasured: int = 0
    errors: int = 0
    skipped: int = 0
    pass_rate: float | None = None
    means: dict[str, float | None] = Field(default_factory=dict)
    unmeasured_by_evaluator: dict[str, int] = Field(default_factory=dict)
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    judge_cost_usd: float = 0.0


def summarize(results: list[UnitResult]) -> list[VariantSummary]:
    """One summary per prompt × model, in first-seen order. Unmeasured scores never enter a mean."""
    groups: dict[tuple[str, str], list[UnitResult]] = {}
    for r in results:
        groups.setdefault((r.prompt, r.model), []).append(r)
    out: list[VariantSummary] = []
    for (prompt, model), units in groups.items():
        s = VariantSummary(prompt=prompt, model=model, units=len(units))
        s.passed = sum(u.status == "pass" for u in units)
        s.failed = sum(u.status == "fail" for u in units)
        s.unmeasured = sum(u.status == "unmeasured" for u in units)
        s.errors = sum(u.status == "error" for u in units)
        s.skipped = sum(u.status == "skipped" for u in units)
        decided = s.passed + s.failed
        s.pass_rate = s.passed / decided if decided else None
        names: list[str] = []
        for u in units:
            for sc in u.scores:
                if sc.name not in names:
                    names.append(sc.name)
        for name in names:
            values = [sc.value for u in units for sc in u.scores
                      if sc.name == name and sc.measured and sc.value is not None]
            s.means[name] = statistics.fmean(values) if values else None
            s.unmeasured_by_evaluator[name] = sum(
                1 for u in units for sc in u.scores if sc.name == name and not sc.measured)
        latencies = [u.latency_s for u in units if u.latency_s is not None and u.status != "skipped"]
        s.latency_p50_s = percentile(latencies, 0.5)
        s.latency_p95_s = percentile(latencies, 0.95)
        s.prompt_tokens = sum(u.prompt_tokens for u in units)
        s.completion_tokens = sum(u.completion_tokens for u in units)
        s.cost_usd = sum(u.cost_usd for u in units)
        s.judge_cost_usd = sum(u.judge_cost_usd for u in units)
        out.append(s)
    return out


class Manifest(BaseModel):
    """Everything needed to know what a run was (and to reproduce it)."""

    run_id: str
    suite: str
    suite_path: str
    llmops_version: str
    python_version: str
    git_commit: str | None = None
    git_dirty: bool | None = None
    prompts: dict[str, str] = Field(default_factory=dict, description="prompt ref -> content hash")
    models: dict[str, str] = Field(default_factory=dict, description="model -> resolved model")
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    repeat: int = 1
    evaluators: list[dict[str, Any]] = Field(default_factory=list)
    dataset_hash: str = ""
    cases: int = 0
    units: int = 0
    shard: str | None = None
    cache_mode: str = "read-write"
    cache_hits: int = 0
    cache_hit_rate: float | None = None
    provider_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    judge_cost_usd: float = 0.0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    status: Literal["running", "completed", "interrupted", "budget_exhausted"] = "running"
    merged_from: list[str] = Field(default_factory=list)


class RunResult(BaseModel):
    """A run: its manifest and every unit result."""

    manifest: Manifest
    results: list[UnitResult]

    @property
    def run_id(self) -> str:
        """The run id."""
        return self.manifest.run_id

    def summary(self) -> list[VariantSummary]:
        """Per prompt × model aggregates."""
        return summarize(self.results)

    def counts(self) -> dict[str, int]:
        """Units by status."""
        out = {"pass": 0, "fail": 0, "unmeasured": 0, "error": 0, "skipped": 0}
        for r in self.results:
            out[r.status] += 1
        return out
