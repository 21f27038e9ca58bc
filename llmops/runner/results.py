"""What a run produces: one :class:`UnitResult` per unit of work, a manifest, a summary.

A unit of work is one case × prompt version × model × repeat. These models go to disk (run
store, baselines, reports), so they are pydantic models.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_serializer, field_validator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from llmops.evalsets.models import DatasetPin
from llmops.evaluators.base import Score
from llmops.llm.agent import Step

UnitStatus = Literal["pass", "fail", "unmeasured", "error", "skipped"]


def unit_key(case_id: str, prompt_ref: str, model: str, repeat: int) -> str:
    """Stable identity of a unit of work inside a run."""
    return f"{case_id}|{prompt_ref}|{model}|{repeat}"


def group_key(result: UnitResult) -> str:
    """The unit key without the repeat: sorted by it, the repeats of a case × prompt × model are adjacent.

    Unit keys (what the run store orders by) sort the same way, so stored and in-memory results merge.
    """
    return f"{result.case_id}|{result.prompt}|{result.model}|"


def by_group(results: Iterable[UnitResult]) -> Iterator[UnitResult]:
    """``results`` with the repeats of each case × prompt × model adjacent (see :func:`group_key`).

    Results backed by the run store are read in that order from SQLite; others are sorted.
    """
    ordered = getattr(results, "by_unit", None)
    if callable(ordered):
        yield from ordered()
    else:
        yield from sorted(results, key=group_key)


def with_status(results: Iterable[UnitResult], *statuses: str) -> Iterator[UnitResult]:
    """The results with one of ``statuses``, in order.

    Results backed by the run store are filtered in SQLite (the others are never parsed).
    """
    where = getattr(results, "with_status", None)
    if callable(where):
        yield from where(*statuses)
    else:
        yield from (r for r in results if r.status in statuses)


class ExactSum:
    """A running float sum equal to ``math.fsum`` of everything added (Shewchuk's partials).

    It keeps a few partials instead of every value, so a mean over a huge run is the same
    correctly rounded number, in any order, without a list of all values.
    """

    __slots__ = ("_partials", "_special")

    def __init__(self) -> None:
        self._partials: list[float] = []
        self._special: list[float] = []

    def add(self, x: float) -> None:
        """Add one value."""
        if not math.isfinite(x):  # fsum has its own rules for inf/nan: let it apply them at the end
            self._special.append(x)
            return
        i = 0
        partials = self._partials
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def value(self) -> float:
        """The correctly rounded sum."""
        return math.fsum(self._partials + self._special)


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
    recorded_cost_usd: float = Field(default=0.0, description="for a cached answer: what it cost when recorded")
    latency_s: float | None = None
    cached: bool = False
    attempts: int = 0
    started_at: float = 0.0
    ended_at: float = 0.0
    trajectory: list[Step] = Field(default_factory=list)
    ttft_s: float | None = None

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

    @property
    def steps(self) -> int:
        """Model calls this unit made (1 without an agent loop, 0 if none was made)."""
        return sum(1 for s in self.trajectory if s.kind == "model") or (1 if self.output is not None else 0)

    @property
    def tool_names(self) -> list[str]:
        """The names of the tools the model called, in order."""
        return [str(c.get("name")) for s in self.trajectory if s.kind == "model" for c in s.tool_calls]


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


class StatusCounts(BaseModel):
    """Units by status and their pass rate, as :class:`Tally` counts them (errors apart from unmeasured).

    One declaration for the run summary, the verdict and the baseline's records, so they count alike.

    Attributes:
        units: Units counted (every status).
        passed: Units that passed.
        failed: Units that failed.
        unmeasured: Units no evaluator could decide.
        errors: Units whose call or evaluators crashed.
        skipped: Units not run (budget).
        pass_rate: passed / (passed + failed); None when nothing was decided.
    """

    units: int = Field(default=0, ge=0)
    passed: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    unmeasured: int = Field(default=0, ge=0)
    errors: int = Field(default=0, ge=0)
    skipped: int = Field(default=0, ge=0)
    pass_rate: float | None = Field(default=None, ge=0, le=1,
                                    description="passed / (passed + failed); None when nothing was decided")

    @property
    def decided(self) -> int:
        """Units with a pass or fail status."""
        return self.passed + self.failed


class VariantKey(BaseModel):
    """Which prompt × model a summary or verdict is about (its first keys in JSON).

    Attributes:
        prompt: The prompt reference.
        model: The model as named in the suite.
    """

    prompt: str
    model: str


# Bases in this order put the variant's name first, then the counts (pydantic takes the fields
# of the last base first): the JSON keeps the order users read.
class VariantSummary(StatusCounts, VariantKey):
    """Aggregates over the units of one prompt × model (the counts: :class:`StatusCounts`)."""

    means: dict[str, float | None] = Field(default_factory=dict)
    unmeasured_by_evaluator: dict[str, int] = Field(
        default_factory=dict, description="scores without a measured value (unmeasured or errored) per evaluator")
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    judge_cost_usd: float = 0.0
    agent_units: int = Field(default=0, description="units that ran as an agent loop (a case with scripted tools)")
    tool_calls: int | None = Field(default=None, description="tool calls the model made in the agent units "
                                                             "(None: no agent unit)")
    steps_per_task: float | None = Field(default=None, description="mean model calls per agent unit")
    ttft_p50_s: float | None = Field(default=None, description="median time to first token of the streamed units")
    ttft_p95_s: float | None = None


#: The counter each unit status adds to, in summaries and verdict records.
STATUS_COUNT_FIELD: dict[str, str] = {"pass": "passed", "fail": "failed", "unmeasured": "unmeasured",
                                      "error": "errors", "skipped": "skipped"}


class ScoreTally:
    """One evaluator's scores over a set of units: the exact sum of measured values and three counts.

    The rule, the same in run summaries, verdicts and baselines: a score is *measured* when it
    has a pass/fail status and a value (only those enter a mean); *errors* when the evaluator
    crashed; *unmeasured* otherwise (it could not decide). Errors are never unmeasured.
    """

    __slots__ = ("errors", "measured", "total", "unmeasured")

    def __init__(self) -> None:
        self.total = ExactSum()
        self.measured = self.unmeasured = self.errors = 0

    def add(self, score: Score) -> None:
        """Count one score."""
        if score.measured and score.value is not None:
            self.measured += 1
            self.total.add(score.value)
        elif score.status == "error":
            self.errors += 1
        else:
            self.unmeasured += 1

    @property
    def mean(self) -> float | None:
        """Mean of the measured values (``math.fsum`` / n), None when nothing was measured."""
        return self.total.value() / self.measured if self.measured else None


class Tally:
    """Streaming totals of unit results: the one way results are counted.

    The run summary, the verdict and the baseline all count with it, one unit at a time and
    nothing kept per unit (except latencies, when asked for). Each unit counts once under its
    status (``passed``, ``failed``, ``unmeasured``, ``errors``, ``skipped``); the pass rate is
    ``passed / (passed + failed)``: unmeasured, errored and skipped units never enter it (errors
    are gated by ``max_errors``; what was not measured is reported, and never makes a pass).
    Scores count as :class:`ScoreTally` says.

    Args:
        latencies: Keep every latency (8 bytes per unit) for percentiles.
    """

    def __init__(self, *, latencies: bool = False) -> None:
        # Plain counters, copied into pydantic models once at the end: assigning to a model's
        # fields per unit costs more than the rest of the pass.
        self.counts = {"units": 0, "passed": 0, "failed": 0, "unmeasured": 0, "errors": 0, "skipped": 0}
        self.scores: dict[str, ScoreTally] = {}  # evaluator name -> tally, first-seen order
        self.prompt_tokens = self.completion_tokens = 0
        self.cost_usd = self.judge_cost_usd = 0.0
        self.latencies: array[float] | None = array("d") if latencies else None

    def add(self, u: UnitResult) -> None:
        """Count one unit result."""
        counts = self.counts
        counts["units"] += 1
        counts[STATUS_COUNT_FIELD[u.status]] += 1
        scores = self.scores
        for sc in u.scores:
            tally = scores.get(sc.name)
            if tally is None:
                tally = scores[sc.name] = ScoreTally()
            tally.add(sc)
        if self.latencies is not None and u.latency_s is not None and u.status != "skipped":
            self.latencies.append(u.latency_s)
        self.prompt_tokens += u.prompt_tokens
        self.completion_tokens += u.completion_tokens
        self.cost_usd += u.cost_usd
        self.judge_cost_usd += u.judge_cost_usd

    @property
    def units(self) -> int:
        """Units counted."""
        return self.counts["units"]

    @property
    def decided(self) -> int:
        """Units that passed or failed."""
        return self.counts["passed"] + self.counts["failed"]

    @property
    def pass_rate(self) -> float | None:
        """``passed / (passed + failed)``; None when nothing was decided."""
        decided = self.decided
        return self.counts["passed"] / decided if decided else None

    def means(self) -> dict[str, float | None]:
        """Mean measured value per evaluator."""
        return {name: t.mean for name, t in self.scores.items()}

    def not_measured(self) -> dict[str, int]:
        """Scores without a measured value per evaluator (unmeasured + errors)."""
        return {name: t.unmeasured + t.errors for name, t in self.scores.items()}


class _VariantAcc(Tally):
    """Running aggregates of one prompt × model: a pass over the results, nothing kept per unit."""

    def __init__(self, prompt: str, model: str) -> None:
        super().__init__(latencies=True)
        self.prompt, self.model = prompt, model
        self.agent_units = self.agent_steps = self.tool_calls = 0
        self.ttfts: list[float] = []

    def add(self, u: UnitResult) -> None:
        """Count one unit result, with its agent steps and time to first token."""
        super().add(u)
        if u.trajectory:
            self.agent_units += 1
            for step in u.trajectory:
                if step.kind == "model":
                    self.agent_steps += 1
                    self.tool_calls += len(step.tool_calls)
        if u.ttft_s is not None:
            self.ttfts.append(u.ttft_s)

    def finish(self) -> VariantSummary:
        latencies = list(self.latencies or ())
        agents = self.agent_units
        return VariantSummary(
            prompt=self.prompt, model=self.model, **self.counts, prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens, cost_usd=self.cost_usd,
            judge_cost_usd=self.judge_cost_usd, pass_rate=self.pass_rate,
            # statistics.fmean is fsum / n: the exact sum gives the same mean.
            means=self.means(), unmeasured_by_evaluator=self.not_measured(),
            latency_p50_s=percentile(latencies, 0.5), latency_p95_s=percentile(latencies, 0.95),
            agent_units=agents, tool_calls=self.tool_calls if agents else None,
            steps_per_task=self.agent_steps / agents if agents else None,
            ttft_p50_s=percentile(self.ttfts, 0.5), ttft_p95_s=percentile(self.ttfts, 0.95))


def summarize(results: Iterable[UnitResult]) -> list[VariantSummary]:
    """One summary per prompt × model, in first-seen order. Unmeasured scores never enter a mean.

    One streaming pass: a run's results (possibly read from the run store) are never all held.
    """
    groups: dict[tuple[str, str], _VariantAcc] = {}
    for r in results:
        acc = groups.get((r.prompt, r.model))
        if acc is None:
            acc = groups[(r.prompt, r.model)] = _VariantAcc(r.prompt, r.model)
        acc.add(r)
    return [acc.finish() for acc in groups.values()]


class CaseRecord(BaseModel):
    """A case as it was run: what reports show next to its outputs."""

    id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    expected: str | None = None
    contexts: list[str] = Field(default_factory=list)


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
    prompt_source: str = Field("local", description="where labels resolved (the prompt_source setting)")
    models: dict[str, str] = Field(default_factory=dict, description="model -> resolved model")
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    repeat: int = 1
    evaluators: list[dict[str, Any]] = Field(default_factory=list)
    dataset_hash: str = ""
    dataset: DatasetPin | None = Field(default=None, description="for a cases_from: suite: the Langfuse dataset "
                                       "items it ran (name, version, item ids, content hashes)")
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
    recorded_cost_usd: float = Field(default=0.0, description="what the cached answers cost when recorded "
                                                              "(not spent by this run)")
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    status: Literal["running", "completed", "interrupted", "budget_exhausted"] = "running"
    merged_from: list[str] = Field(default_factory=list)
    case_data: list[CaseRecord] = Field(
        default_factory=list,
        description="Each case's inputs, expected output and contexts as run: reports read them here, so a "
                    "report of an old run stays right after the suite file changed or moved")


class RunResult(BaseModel):
    """A run: its manifest and every unit result.

    Attributes:
        manifest: What the run was.
        results: Its unit results. A run made or loaded by the runner reads them from the run
            store as they are used (:class:`llmops.runner.store.StoredResults`) instead of
            holding them all; it behaves like a list (``len``, iteration, indexing, slicing).
            ``list(run.results)`` materialises them.
    """

    manifest: Manifest
    results: Sequence[UnitResult]

    @field_validator("results", mode="wrap")
    @classmethod
    def _keep_lazy(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # A store-backed sequence is kept as is: validating it would read every row into a list.
        if getattr(value, "by_unit", None) is not None and isinstance(value, Sequence):
            return value
        return list(handler(value))

    @field_serializer("results", mode="wrap")
    def _dump_results(self, value: Sequence[UnitResult], handler: SerializerFunctionWrapHandler) -> Any:
        return handler(value if isinstance(value, list) else list(value))

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
