"""Run a suite (or resume one), judge it against its gate and baseline: the CI job in one call.

:func:`judge` is the one place where a finished run meets its gate and baseline; ``llmops run``
and the pytest plugin both call it, so they reach the same verdict on the same run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.config import Settings
from llmops.errors import UserError
from llmops.evalsets.loader import LoadedSuite
from llmops.evalsets.models import Gate
from llmops.regression import Verdict, baseline_path, judge_run, read_baseline, write_baseline
from llmops.regression.verdict import NO_BASELINE_NOTE
from llmops.runner.prepare import PreparedRun, RunOptions, prepare_resume, prepare_run
from llmops.runner.results import RunResult

if TYPE_CHECKING:
    from llmops.tracing.experiments import ExperimentReport


@dataclass(frozen=True)
class GateOutcome:
    """A run with its verdict.

    Attributes:
        run: The run.
        verdict: Gate and baseline verdict.
        baseline_written: Path of the baseline written by ``update_baseline``, if any.
        experiments: The Langfuse experiment runs the run was recorded as, if any.
    """

    run: RunResult
    verdict: Verdict
    baseline_written: Path | None = None
    experiments: ExperimentReport | None = None

    @property
    def exit_code(self) -> int:
        """The verdict's exit code (see :attr:`llmops.regression.Verdict.exit_code`)."""
        return self.verdict.exit_code

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the run, its per prompt × model summary, the verdict and the experiment runs."""
        out: dict[str, Any] = {"run": self.run.model_dump(mode="json"),
                               "summary": [s.model_dump(mode="json") for s in self.run.summary()],
                               "verdict": self.verdict.model_dump(mode="json")}
        if self.experiments is not None:
            out["langfuse_experiments"] = dataclasses.asdict(self.experiments)
        return out


def check_max_errors(max_errors: float | None) -> None:
    """Refuse a ``max_errors`` that is negative or NaN (before anything runs).

    Raises:
        UserError: naming the option.
    """
    if max_errors is not None and not max_errors >= 0:  # `not >=` also refuses NaN
        raise UserError(f"max_errors must be 0 or more, got {max_errors}", key="max_errors",
                        hint="a count (>= 1) or a fraction (< 1) of the units")


def judge(run: RunResult, suite: LoadedSuite, *, settings: Settings, max_errors: float | None = None,
          baseline: str | Path | None = None, update_baseline: bool = False,
          complete: bool = True) -> GateOutcome:
    """Judge a finished run against its suite's gate and baseline (and write the baseline if asked).

    Args:
        run: The run.
        suite: Its suite (whose ``gate`` applies).
        settings: Project settings (where baselines live).
        max_errors: Overrides the gate's ``max_errors``.
        baseline: Baseline file (default: ``evalsets/baselines/<suite>.json``).
        update_baseline: Write this run as the new baseline (and judge it without one).
        complete: False when only part of the suite was selected (pytest ``-k``): no baseline
            is written from it, and the verdict says what it covers.

    Raises:
        UserError: ``max_errors`` is invalid, or a baseline was asked for from a partial run.
    """
    check_max_errors(max_errors)
    gate: Gate = suite.suite.gate
    if max_errors is not None:
        gate = gate.model_copy(update={"max_errors": max_errors})
    path = Path(baseline) if baseline else baseline_path(settings, suite.name)
    written = None
    if update_baseline:
        if not complete:
            raise UserError("refusing to write a baseline from a partial selection of the suite",
                            key="update_baseline", hint="run the whole suite to write its baseline")
        write_baseline(run, path)
        written = path
    if baseline and not update_baseline and not path.is_file():
        raise UserError(f"baseline {path}: no such file", key="baseline",
                        hint="give the committed baseline file, or write one with update_baseline")
    reference = read_baseline(path) if (path.exists() and not update_baseline) else None
    verdict = judge_run(run, gate, reference)
    if written is not None:
        # This run is the baseline now: "write one with --update-baseline" would be wrong here.
        notes = [n for n in verdict.notes if n != NO_BASELINE_NOTE]
        notes.append(f"this run is the new baseline ({written}): judged by the absolute gates only")
        verdict = verdict.model_copy(update={"notes": notes})
    if not complete:
        verdict.notes.append("only part of the suite was selected; the gate judged the selected items")
    return GateOutcome(run=run, verdict=verdict, baseline_written=written)


def _prepared(suite: str | Path | LoadedSuite | None, resume: str | None, options: RunOptions) -> PreparedRun:
    if resume:
        return prepare_resume(resume, options)
    if suite is None:
        raise UserError("give a suite to run (or resume=RUN_ID)", key="suite")
    return prepare_run(suite, options)


async def arun_and_gate(suite: str | Path | LoadedSuite | None, options: RunOptions | None = None, *,
                        resume: str | None = None, max_errors: float | None = None,
                        baseline: str | Path | None = None, update_baseline: bool = False,
                        **overrides: Any) -> GateOutcome:
    """Run (or resume) a suite and judge it (async). See :func:`run_and_gate`."""
    check_max_errors(max_errors)
    prepared = _prepared(suite, resume, RunOptions.of(options, overrides))
    run = await prepared.aexecute()
    return _with_experiments(prepared, judge(run, prepared.suite, settings=prepared.settings, max_errors=max_errors,
                                             baseline=baseline, update_baseline=update_baseline))


def _with_experiments(prepared: PreparedRun, outcome: GateOutcome) -> GateOutcome:
    """Attach the run-level scores (pass rate, errors, gate verdict) to the run's Langfuse experiment runs."""
    plan = prepared.runner.experiment_plan(outcome.run.manifest)
    if plan is None:
        return outcome
    from llmops.tracing.experiments import record_run_scores

    report = record_run_scores(prepared.settings, plan, outcome.run, outcome.verdict)
    return dataclasses.replace(outcome, experiments=report)


def run_and_gate(suite: str | Path | LoadedSuite | None, options: RunOptions | None = None, *,
                 resume: str | None = None, workers: int | None = None, max_errors: float | None = None,
                 baseline: str | Path | None = None, update_baseline: bool = False,
                 **overrides: Any) -> GateOutcome:
    """Run (or ``resume=RUN_ID``) a suite and judge it against its gate and baseline.

    This is ``llmops run`` as one function: the returned outcome's ``exit_code`` is what the CLI
    exits with (see :attr:`llmops.regression.Verdict.exit_code`).

    Args:
        suite: Suite file or name (None with ``resume``).
        options: How to run it (see :class:`llmops.runner.prepare.RunOptions`).
        resume: Finish this interrupted run instead of starting one.
        workers: Worker processes (see :func:`llmops.runner.engine.run_suite`).
        max_errors: Overrides the gate's ``max_errors``.
        baseline: Baseline file (default: ``evalsets/baselines/<suite>.json``).
        update_baseline: Write this run as the new baseline.
        **overrides: :class:`~llmops.runner.prepare.RunOptions` fields, over ``options``.
    """
    check_max_errors(max_errors)
    prepared = _prepared(suite, resume, RunOptions.of(options, overrides))
    run = prepared.execute(workers)
    return _with_experiments(prepared, judge(run, prepared.suite, settings=prepared.settings, max_errors=max_errors,
                                             baseline=baseline, update_baseline=update_baseline))
