"""Merge the run stores of CI shards (``--shard I/N``) into one run to gate on."""

from __future__ import annotations

from pathlib import Path

from llmops.errors import UserError
from llmops.runner.engine import new_run_id
from llmops.runner.results import Manifest, RunResult, percentile
from llmops.runner.store import RunStore


def merge_runs(sources: list[tuple[Path | str, str]], into: RunStore, *, run_id: str | None = None) -> RunResult:
    """Combine shard runs into one new run in ``into``.

    Args:
        sources: ``(store path, run id)`` pairs; the id may be ``latest`` or a unique prefix.
        into: The store that receives the merged run.
        run_id: Id of the merged run (default: a new one).

    Raises:
        UserError: when the shards come from different suites, prompts, models or datasets,
            or two shards hold the same unit.
    """
    if not sources:
        raise UserError("nothing to merge", hint="give at least one STORE[:RUN_ID]")
    runs: list[RunResult] = []
    for path, rid in sources:
        if not Path(path).exists():
            raise UserError("run store not found", file=path)
        runs.append(RunStore(path).load(rid))
    first = runs[0].manifest
    for run in runs[1:]:
        m = run.manifest
        for field in ("suite", "prompts", "models", "dataset_hash", "repeat", "seed"):
            if getattr(m, field) != getattr(first, field):
                raise UserError(f"cannot merge run {m.run_id} into {first.run_id}: different {field}",
                                key=field, hint="merge only shards of the same suite run")
    seen: set[str] = set()
    results = []
    for run in runs:
        for r in run.results:
            if r.key in seen:
                raise UserError(f"unit {r.key} appears in two shards", key=r.key,
                                hint="each shard must be run with a distinct --shard I/N")
            seen.add(r.key)
            results.append(r)
    latencies = [r.latency_s for r in results if r.latency_s is not None]
    cached = sum(r.cached for r in results)
    manifest = Manifest(**{
        **first.model_dump(),
        "run_id": run_id or new_run_id(),
        "shard": None,
        "cases": sum(run.manifest.cases for run in runs),
        "units": sum(run.manifest.units for run in runs),
        "cache_hits": cached,
        "cache_hit_rate": cached / len(results) if results else None,
        "provider_calls": sum(run.manifest.provider_calls for run in runs),
        "prompt_tokens": sum(r.prompt_tokens for r in results),
        "completion_tokens": sum(r.completion_tokens for r in results),
        "cost_usd": sum(r.cost_usd for r in results),
        "judge_cost_usd": sum(r.judge_cost_usd for r in results),
        "recorded_cost_usd": sum(r.recorded_cost_usd for r in results),
        "latency_p50_s": percentile(latencies, 0.5),
        "latency_p95_s": percentile(latencies, 0.95),
        "started_at": min(run.manifest.started_at for run in runs),
        "ended_at": max((run.manifest.ended_at or 0.0) for run in runs) or None,
        "status": "completed" if all(run.manifest.status == "completed" for run in runs) else "interrupted",
        "merged_from": [run.manifest.run_id for run in runs],
        "case_data": list({c.id: c for run in runs for c in run.manifest.case_data}.values()),
    })
    from llmops.runner.store import RunPlan

    plan = RunPlan(suite_path=first.suite_path, models=list(first.models), prompts=list(first.prompts),
                   repeat=first.repeat, seed=first.seed, params=first.params, cache=first.cache_mode)
    into.create_run(manifest, plan)
    for r in results:
        into.add_result(manifest.run_id, r)
    return RunResult(manifest=manifest, results=results)
