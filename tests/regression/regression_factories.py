"""Builders of RunResults for the regression tests (real models, no mocks)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from llmops.evaluators.base import Score
from llmops.runner.results import Manifest, RunResult, UnitResult, status_of

PROMPT = "classify_sentiment@1"
MODEL = "fake/x"


def score(name: str, value: float | None, threshold: float = 1.0, status: str | None = None) -> Score:
    if status is None:
        status = "unmeasured" if value is None else ("pass" if value >= threshold else "fail")
    return Score(name=name, value=value, status=status, threshold=threshold,  # type: ignore[arg-type]
                 evaluator=name)


def unit(case_id: str, outcome: bool | str | None, *, repeat: int = 0, prompt: str = PROMPT,
         model: str = MODEL, extra: Sequence[Score] = (), **kw: Any) -> UnitResult:
    """One unit; ``outcome`` True/False is a contains pass/fail, None unmeasured, "error" an error."""
    if outcome == "error":
        return UnitResult(case_id=case_id, prompt=prompt, model=model, repeat=repeat, status="error",
                          error="boom", **kw)
    scores = [score("contains", None if outcome is None else float(bool(outcome))), *extra]
    return UnitResult(case_id=case_id, prompt=prompt, model=model, repeat=repeat, status=status_of(scores),
                      output="x", scores=scores, **kw)


def manifest(results: Iterable[UnitResult], **kw: Any) -> Manifest:
    results = list(results)
    fields: dict[str, Any] = {
        "run_id": "20260101-000000-abcdef", "suite": "sim", "suite_path": "evalsets/sim.yaml",
        "llmops_version": "0.1.0", "python_version": "3.11.7", "git_commit": "abc123",
        "prompts": {p: "sha256:" + p for p in sorted({r.prompt for r in results})},
        "models": {m: m for m in sorted({r.model for r in results})},
        "evaluators": [{"name": "contains", "kind": "contains", "version": "1", "threshold": 1.0}],
        "dataset_hash": "d1", "cases": len({r.case_id for r in results}), "units": len(results),
        "repeat": max((r.repeat + 1 for r in results), default=1), "status": "completed"}
    fields.update(kw)
    return Manifest(**fields)


def make_run(results: Iterable[UnitResult], **manifest_kw: Any) -> RunResult:
    results = list(results)
    return RunResult(manifest=manifest(results, **manifest_kw), results=results)


def binary_run(outcomes: dict[str, Sequence[bool | str | None]], **kw: Any) -> RunResult:
    """A run from case id -> outcomes of its repeats."""
    return make_run([unit(cid, o, repeat=r, **kw) for cid, reps in outcomes.items()
                     for r, o in enumerate(reps)])


def cases(prefix: str, n: int, outcome: Sequence[bool | str | None]) -> dict[str, Sequence[bool | str | None]]:
    return {f"{prefix}{i:03d}": outcome for i in range(n)}
