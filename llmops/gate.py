"""Run a suite (or resume one), judge it against its gate and baseline: the CI job in one call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.config import Settings, load_settings
from llmops.errors import UserError
from llmops.evalsets.loader import LoadedSuite, load_suite
from llmops.evalsets.models import Gate
from llmops.regression import Verdict, baseline_path, judge_run, read_baseline, write_baseline
from llmops.regression.verdict import NO_BASELINE_NOTE
from llmops.runner.engine import _suite_path, aresume_run, arun_suite
from llmops.runner.results import RunResult


@dataclass(frozen=True)
class GateOutcome:
    """A run with its verdict.

    Attributes:
        run: The run.
        verdict: Gate and baseline verdict.
        baseline_written: Path of the baseline written by ``update_baseline``, if any.
    """

    run: RunResult
    verdict: Verdict
    baseline_written: Path | None = None

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed gate or regression."""
        return self.verdict.exit_code

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the run and the verdict."""
        return {"run": self.run.model_dump(mode="json"), "verdict": self.verdict.model_dump(mode="json")}


async def arun_and_gate(
    suite: str | Path | None,
    *,
    settings: Settings | None = None,
    models: Sequence[str] | None = None,
    prompts: Sequence[str] | None = None,
    repeat: int | None = None,
    seed: int | None = None,
    max_cost_usd: float | None = None,
    max_errors: float | None = None,
    shard: str | None = None,
    resume: str | None = None,
    baseline: str | Path | None = None,
    update_baseline: bool = False,
    progress: bool | None = None,
    **run_kwargs: Any,
) -> GateOutcome:
    """Run (or resume) a suite and judge it. See :func:`run_and_gate`."""
    settings = _checked(settings, max_errors)
    if resume:
        run = await aresume_run(resume, settings=settings, progress=progress, max_cost_usd=max_cost_usd,
                                **run_kwargs)
        loaded: LoadedSuite = load_suite(run.manifest.suite_path)
    else:
        assert suite is not None
        loaded = load_suite(_suite_path(suite, settings))
        run = await arun_suite(loaded, settings=settings, models=models, prompts=prompts, repeat=repeat,
                               seed=seed, max_cost_usd=max_cost_usd, shard=shard, progress=progress,
                               **run_kwargs)
    return _judged(run, loaded, settings, max_errors, baseline, update_baseline)


def _checked(settings: Settings | None, max_errors: float | None) -> Settings:
    if max_errors is not None and not max_errors >= 0:  # `not >=` also refuses NaN
        raise UserError(f"max_errors must be 0 or more, got {max_errors}", key="max_errors",
                        hint="a count (>= 1) or a fraction (< 1) of the units")
    return settings or load_settings()


def _judged(run: RunResult, loaded: LoadedSuite, settings: Settings, max_errors: float | None,
            baseline: str | Path | None, update_baseline: bool) -> GateOutcome:
    gate: Gate = loaded.suite.gate
    if max_errors is not None:
        gate = gate.model_copy(update={"max_errors": max_errors})
    path = Path(baseline) if baseline else baseline_path(settings, loaded.name)
    written = None
    if update_baseline:
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
    return GateOutcome(run=run, verdict=verdict, baseline_written=written)


def run_and_gate(suite: str | Path | None, **kwargs: Any) -> GateOutcome:
    """Run (or ``resume=RUN_ID``) a suite and judge it against its gate and baseline.

    This is ``llmops run`` as one function: the returned outcome's ``exit_code`` is what the CLI
    exits with (0 passed, 1 failed gate or regression).

    Args:
        suite: Suite file or name (None with ``resume``).
        **kwargs: settings, models, prompts, repeat, seed, max_cost_usd, max_errors, shard,
            resume, baseline, update_baseline, progress, and any :func:`llmops.runner.engine.run_suite`
            argument (client, store, cache, concurrency, workers, ...).
    """
    from llmops._async import run_sync

    workers = kwargs.pop("workers", None)
    if workers is not None and workers > 1:
        return _run_and_gate_in_processes(suite, workers, **kwargs)
    return run_sync(arun_and_gate(suite, **kwargs))


def _run_and_gate_in_processes(
    suite: str | Path | None, workers: int, *, settings: Settings | None = None,
    models: Sequence[str] | None = None, prompts: Sequence[str] | None = None, repeat: int | None = None,
    seed: int | None = None, max_cost_usd: float | None = None, max_errors: float | None = None,
    shard: str | None = None, resume: str | None = None, baseline: str | Path | None = None,
    update_baseline: bool = False, progress: bool | None = None, **run_kwargs: Any,
) -> GateOutcome:
    """:func:`run_and_gate` with ``workers`` processes (forked from this sync frame, before any loop)."""
    from llmops.runner.engine import resume_run, run_suite

    settings = _checked(settings, max_errors)
    if resume:
        run = resume_run(resume, workers=workers, settings=settings, progress=progress,
                         max_cost_usd=max_cost_usd, **run_kwargs)
        loaded: LoadedSuite = load_suite(run.manifest.suite_path)
    else:
        assert suite is not None
        loaded = load_suite(_suite_path(suite, settings))
        run = run_suite(loaded, workers=workers, settings=settings, models=models, prompts=prompts,
                        repeat=repeat, seed=seed, max_cost_usd=max_cost_usd, shard=shard, progress=progress,
                        **run_kwargs)
    return _judged(run, loaded, settings, max_errors, baseline, update_baseline)
