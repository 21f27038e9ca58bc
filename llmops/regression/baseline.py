"""Baseline files: what a run achieved, per case, committed next to the suite.

A baseline (``evalsets/baselines/<suite>.json``) keeps per case × prompt × model: the status
counts over repeats, the pass rate and the per-evaluator means. That is exactly what a paired
comparison needs, and nothing that changes from run to run without meaning (run ids, clock
times, latencies, costs, model outputs), so that a baseline diff in a pull request shows only
real changes. Keys are sorted, floats are written as Python's shortest round-trip repr, and
every aggregate is computed independently of the order in which units finished.
"""

from __future__ import annotations

import errno
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmops._files import atomic_write_text, os_error_text
from llmops.credentials import public_params
from llmops.errors import StoreError
from llmops.runner.results import StatusCounts, Tally
from llmops.stats import Flakiness, flakiness_from_counts

if TYPE_CHECKING:
    from llmops.config import Settings
    from llmops.runner.results import RunResult, UnitResult

FORMAT_VERSION: Final = 1
# Suite params are call parameters (temperature, max_tokens...), but a user could put a key in
# them; anything that looks like a credential never reaches a committed file.


class ScoreStats(BaseModel):
    """One evaluator's results over the repeats of one case (or one variant).

    Attributes:
        mean: Mean of the measured values; None when nothing was measured.
        measured: Repeats with a pass/fail score.
        unmeasured: Repeats where the evaluator could not decide.
        errors: Repeats where the evaluator crashed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: float | None = None
    measured: int = Field(default=0, ge=0)
    unmeasured: int = Field(default=0, ge=0)
    errors: int = Field(default=0, ge=0)


class _Counts(StatusCounts):
    """Unit status counts shared by case and variant records (checked: a baseline is a committed file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _consistent(self) -> _Counts:
        # A hand edit or a bad merge that breaks the arithmetic is corruption, not data.
        if self.passed + self.failed + self.unmeasured + self.errors + self.skipped != self.units:
            raise ValueError(f"status counts do not add up to units ({self.units})")
        decided = self.decided
        expected = self.passed / decided if decided else None
        if (expected is None) != (self.pass_rate is None) or (
                expected is not None and self.pass_rate is not None
                and not math.isclose(expected, self.pass_rate, abs_tol=1e-9)):
            raise ValueError(f"pass_rate {self.pass_rate} does not match {self.passed}/{decided}")
        return self


class CaseRecord(_Counts):
    """One case × prompt × model over its repeats.

    Attributes:
        case_id: The case id.
        prompt: The prompt reference the case ran with.
        model: The model as named in the suite.
        scores: Per evaluator name: mean and counts.
    """

    case_id: str
    prompt: str
    model: str
    scores: dict[str, ScoreStats] = Field(default_factory=dict)

    @property
    def flakiness(self) -> Flakiness:
        """stable-pass / stable-fail / flaky / unmeasured over the repeats."""
        return flakiness_from_counts(self.passed, self.failed)


class VariantRecord(_Counts):
    """Aggregates of one prompt × model (unit-weighted, like the run summary).

    Attributes:
        prompt: The prompt reference.
        model: The model.
        scores: Per evaluator name: mean over all measured units and counts.
    """

    prompt: str
    model: str
    scores: dict[str, ScoreStats] = Field(default_factory=dict)


class BaselineSource(BaseModel):
    """The part of the run manifest that says what the baseline measured.

    Attributes:
        suite: Suite name.
        llmops_version: Version that produced it.
        git_commit: Commit of the project at the time (None outside git).
        git_dirty: Whether the working tree had uncommitted changes.
        prompts: Prompt reference -> content hash.
        models: Model -> resolved model.
        params: Call params of the suite (credential-like keys removed).
        seed: Base seed.
        repeat: Repeats per case.
        evaluators: name, kind, version and threshold of each suite evaluator.
        dataset_hash: Hash of the suite's cases.
        shard: ``I/N`` if the run covered one shard only.
        status: Run status (``completed`` unless interrupted or stopped by the budget).
        dataset: For a ``cases_from:`` suite, the Langfuse dataset its cases came from.
        case_hashes: For a ``cases_from:`` suite, case id -> content hash (16 hex): a case whose
            item was edited since is not compared with its old result.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    llmops_version: str = ""
    git_commit: str | None = None
    git_dirty: bool | None = None
    prompts: dict[str, str] = Field(default_factory=dict)
    models: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    repeat: int = 1
    evaluators: list[dict[str, Any]] = Field(default_factory=list)
    dataset_hash: str = ""
    shard: str | None = None
    status: str = "completed"
    dataset: str | None = None
    case_hashes: dict[str, str] = Field(default_factory=dict)


class Baseline(BaseModel):
    """A committed reference run: per-case results, per-variant summary, provenance.

    Attributes:
        format_version: Version of this file format.
        source: What was measured (prompt hashes, models, dataset hash, evaluator versions).
        summary: One record per prompt × model.
        cases: One record per case × prompt × model, sorted.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: Literal[1] = FORMAT_VERSION
    source: BaselineSource
    summary: list[VariantRecord] = Field(default_factory=list)
    cases: list[CaseRecord] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Baseline:
        seen: set[tuple[str, str, str]] = set()
        units: dict[tuple[str, str], int] = {}
        for c in self.cases:
            key = (c.case_id, c.prompt, c.model)
            if key in seen:
                raise ValueError(f"case {c.case_id!r} ({c.prompt} × {c.model}) appears twice")
            seen.add(key)
            units[(c.prompt, c.model)] = units.get((c.prompt, c.model), 0) + c.units
        summary = {(v.prompt, v.model): v.units for v in self.summary}
        if summary != units:
            raise ValueError("summary unit counts do not match the cases")
        return self

    def variants(self) -> list[tuple[str, str]]:
        """The (prompt, model) pairs of the baseline, in file order."""
        return [(v.prompt, v.model) for v in self.summary]

    def cases_of(self, prompt: str, model: str) -> dict[str, CaseRecord]:
        """Case id -> record for one prompt × model."""
        return {c.case_id: c for c in self.cases if c.prompt == prompt and c.model == model}


# ---- aggregation (shared with the verdict so both sides are computed identically) -----------


def tally_fields(tally: Tally) -> dict[str, Any]:
    """The counts, pass rate and per-evaluator :class:`ScoreStats` of a tally, as record fields.

    Counting follows :class:`llmops.runner.results.Tally` (errors apart from unmeasured), so a
    baseline and the verdict that reads it count alike.
    """
    scores = {name: ScoreStats(mean=t.mean, measured=t.measured, unmeasured=t.unmeasured, errors=t.errors)
              for name, t in sorted(tally.scores.items())}
    return {**tally.counts, "pass_rate": tally.pass_rate, "scores": scores}


def _tally(units: Iterable[UnitResult]) -> Tally:
    tally = Tally()
    for u in units:
        tally.add(u)
    return tally


def aggregate_cases(results: Iterable[UnitResult]) -> list[CaseRecord]:
    """Group unit results by case × prompt × model (over repeats), sorted by those keys.

    Args:
        results: Unit results in any order.

    Returns:
        One record per case × prompt × model.
    """
    groups: dict[tuple[str, str, str], list[UnitResult]] = {}
    for r in results:
        groups.setdefault((r.case_id, r.prompt, r.model), []).append(r)
    return [CaseRecord(case_id=case_id, prompt=prompt, model=model, **tally_fields(_tally(units)))
            for (case_id, prompt, model), units in sorted(groups.items())]


def aggregate_variants(results: Iterable[UnitResult]) -> list[VariantRecord]:
    """Group unit results by prompt × model, sorted.

    Args:
        results: Unit results in any order.

    Returns:
        One record per prompt × model, with unit-weighted means.
    """
    groups: dict[tuple[str, str], list[UnitResult]] = {}
    for r in results:
        groups.setdefault((r.prompt, r.model), []).append(r)
    return [VariantRecord(prompt=prompt, model=model, **tally_fields(_tally(units)))
            for (prompt, model), units in sorted(groups.items())]


def baseline_from_run(run: RunResult) -> Baseline:
    """Build the baseline of a run (without writing it).

    Args:
        run: A finished run.

    Returns:
        The baseline model.
    """
    m = run.manifest
    source = BaselineSource(
        suite=m.suite, llmops_version=m.llmops_version, git_commit=m.git_commit, git_dirty=m.git_dirty,
        prompts=dict(m.prompts), models=dict(m.models), params=public_params(m.params), seed=m.seed,
        repeat=m.repeat,
        evaluators=[{k: e.get(k) for k in ("name", "kind", "version", "threshold")} for e in m.evaluators],
        dataset_hash=m.dataset_hash, shard=m.shard, status=m.status,
        dataset=m.dataset.name if m.dataset else None, case_hashes=dict(m.dataset.case_hashes) if m.dataset else {})
    return Baseline(source=source, summary=aggregate_variants(run.results),
                    cases=aggregate_cases(run.results))


# ---- files ------------------------------------------------------------------------------------


def baseline_path(settings: Settings, suite_name: str) -> Path:
    """Where the baseline of a suite lives: ``<evalsets>/baselines/<suite>.json``.

    Args:
        settings: Project settings (for the evalsets directory).
        suite_name: The suite name.

    Returns:
        The path (which may not exist yet).
    """
    return settings.evalsets_path / "baselines" / f"{suite_name}.json"


def dumps_baseline(baseline: Baseline) -> str:
    """Serialise a baseline: sorted keys, indent 2, trailing newline (diff-friendly and stable)."""
    data = baseline.model_dump(mode="json")
    for key in ("dataset", "case_hashes"):  # only dataset suites have them: other baselines stay as they were
        if not data["source"].get(key):
            data["source"].pop(key, None)
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_baseline(run: RunResult | Baseline, path: str | Path) -> Baseline:
    """Write the baseline of a run atomically.

    The file is written to a temporary file in the same folder and renamed over the target,
    so a crash mid-write leaves the old baseline (or none), never a half-written one.

    Args:
        run: The run (or an already built baseline).
        path: Target file; parent folders are created.

    Returns:
        The baseline that was written.

    Raises:
        StoreError: when the file cannot be written.
    """
    baseline = run if isinstance(run, Baseline) else baseline_from_run(run)
    target = Path(path)
    text = dumps_baseline(baseline)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
    except OSError as exc:
        raise StoreError(f"{target}: cannot write baseline: {os_error_text(exc)}",
                         hint="free some disk space" if exc.errno == errno.ENOSPC
                         else "check that the folder is writable") from None
    return baseline


_REGENERATE = ("restore it from version control (git checkout -- {path}) or write a new one "
               "with `llmops run SUITE --update-baseline`")


def read_baseline(path: str | Path) -> Baseline:
    """Read and validate a baseline file.

    A damaged file is never used silently: every problem is a :class:`StoreError` naming the
    file and saying how to recover.

    Args:
        path: The baseline file.

    Returns:
        The baseline.

    Raises:
        StoreError: when the file is missing, unreadable, empty, truncated, not valid JSON, in
            an unknown format, or internally inconsistent.
    """
    p = Path(path)
    hint = _REGENERATE.format(path=p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StoreError(f"{p}: baseline file not found",
                         hint="write one with `llmops run SUITE --update-baseline`") from None
    except UnicodeDecodeError as exc:
        raise StoreError(f"{p}: baseline is corrupted (not UTF-8 at byte {exc.start})", hint=hint) from None
    except OSError as exc:
        raise StoreError(f"{p}: cannot read baseline: {exc.strerror or exc}", hint=hint) from None
    if not text.strip():
        raise StoreError(f"{p}: baseline is empty (half-written?)", hint=hint)
    if re.search(r"^(<{7}|>{7}|={7})( |$)", text, re.M):
        raise StoreError(f"{p}: baseline contains git merge conflict markers",
                         hint="do not merge baselines by hand: " + hint)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # A baseline always ends with its closing brace: anything else was cut off mid-write.
        truncated = exc.pos >= len(text.rstrip()) or not text.rstrip().endswith("}")
        what = "truncated (half-written?)" if truncated else "not valid JSON"
        raise StoreError(f"{p}: baseline is {what}: {exc.msg} at line {exc.lineno} column {exc.colno}",
                         hint=hint) from None
    except RecursionError:
        raise StoreError(f"{p}: baseline is not a baseline (JSON nested too deeply)", hint=hint) from None
    if isinstance(data, dict) and data.get("format_version") not in (None, FORMAT_VERSION):
        raise StoreError(f"{p}: baseline format_version {data.get('format_version')!r} is not supported "
                         f"(this llmops reads {FORMAT_VERSION})", hint="write a new baseline with "
                         "`llmops run SUITE --update-baseline`")
    try:
        return Baseline.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise StoreError(f"{p}: baseline is corrupted: {where}: {first['msg']} "
                         f"({exc.error_count()} problem(s))", hint=hint) from None
