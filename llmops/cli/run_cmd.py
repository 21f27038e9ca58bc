"""``llmops run SUITE``: run a regression suite, gate it, print the verdict, exit 0/1/2."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.cli._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_model_options,
    check_output_path,
    console,
    settings_from,
    write_output,
)

if TYPE_CHECKING:
    from llmops.config import Settings
    from llmops.evalsets.models import DatasetPin
    from llmops.tracing.experiments import ExperimentReport


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run a regression suite and gate it against its baseline")
    p.add_argument("suite", nargs="?", help="suite file, or a name in evalsets/ (omit with --resume)")
    add_model_options(p, many=True)
    p.add_argument("--prompt", "-p", action="append", dest="prompts", metavar="REF",
                   help="prompt reference to run instead of the suite's (repeatable)")
    p.add_argument("--repeat", "-r", type=int, default=None, metavar="K", help="runs per case")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-cost-usd", type=float, default=None, metavar="USD",
                   help="stop scheduling calls before this budget would be exceeded")
    p.add_argument("--max-errors", type=float, default=None, metavar="N",
                   help="errors allowed before the run fails: a count (>= 1) or a fraction (< 1)")
    p.add_argument("--dry-run", action="store_true", help="count calls and estimate cost; call nothing")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="run one deterministic slice of the cases; a shard run is not gated (merge the "
                        "shards with `runs merge`, then gate with `report latest --gate`)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes sharing the run store and the concurrency limit "
                        "(0: one per CPU core; default 1)")
    p.add_argument("--resume", default=None, metavar="RUN_ID", help="finish an interrupted run")
    p.add_argument("--retry-errors", action="store_true",
                   help="with --resume: also run again the units that ended in an error (e.g. a provider outage)")
    p.add_argument("--baseline", default=None, metavar="FILE",
                   help="baseline file (default: evalsets/baselines/<suite>.json)")
    p.add_argument("--update-baseline", action="store_true", help="write this run as the new baseline")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    exp = p.add_mutually_exclusive_group()
    exp.add_argument("--experiment", dest="langfuse_experiments", action="store_const", const="on", default=None,
                     help="record the run as Langfuse experiment runs (default: for cases_from: suites)")
    exp.add_argument("--no-experiment", dest="langfuse_experiments", action="store_const", const="off",
                     help="do not record the run as Langfuse experiment runs")
    p.add_argument("--json", action="store_true", help="print the run and verdict as JSON")
    p.add_argument("--markdown", default=None, metavar="FILE",
                   help="also write a Markdown summary (for a PR comment or $GITHUB_STEP_SUMMARY)")
    p.add_argument("--html", default=None, metavar="FILE", help="also write a self-contained HTML report")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from llmops.errors import UserError
    from llmops.gate import run_and_gate
    from llmops.runner.engine import run_tracer

    settings = settings_from(args)
    if args.dry_run:
        return _dry_run(args, settings)
    if not args.suite and not args.resume:
        raise UserError("give a SUITE to run (or --resume RUN_ID)", key="suite")
    check_output_path(args.markdown, "--markdown")
    check_output_path(args.html, "--html")
    if args.baseline and not args.update_baseline and not Path(args.baseline).is_file():
        # A misspelt baseline must not turn the comparison off silently (checked before any call).
        raise UserError(f"--baseline {args.baseline}: no such file", key="--baseline",
                        hint="give the committed baseline file (evalsets/baselines/<suite>.json), "
                             "or write one with --update-baseline")

    if args.retry_errors and not args.resume:
        raise UserError("--retry-errors re-runs the errored units of a stored run: give --resume RUN_ID",
                        key="--retry-errors", hint="`llmops runs list` shows the runs and their ids")
    from llmops.runner.engine import new_run_id
    from llmops.runner.store import RunStore

    # The id is chosen here so that an interrupted run can be named, with the command that resumes it.
    run_id = new_run_id()
    if args.resume:
        store = RunStore(settings.path(settings.store_path))
        run_id = store.resolve_id(args.resume)
        store.close()
    extra: dict[str, Any] = {"retry_errors": True} if args.retry_errors else {}
    if not args.resume:
        extra["run_id"] = run_id
    try:
        outcome = run_and_gate(
            args.suite, settings=settings, models=args.models, prompts=args.prompts, repeat=args.repeat,
            seed=args.seed, max_cost_usd=args.max_cost_usd, max_errors=args.max_errors, shard=args.shard,
            resume=args.resume, baseline=args.baseline, update_baseline=args.update_baseline,
            progress=False if args.no_progress else None, tracer=run_tracer(settings),
            workers=_workers(args.workers), **extra)
    except KeyboardInterrupt:
        return _interrupted(settings, run_id)
    _write_reports(args, outcome, settings)
    if args.json:
        import json

        print(json.dumps(outcome.to_dict(), indent=2, ensure_ascii=False))
    else:
        from llmops.reports.terminal import print_run

        out = console()
        print_run(out, outcome.run, verdict=outcome.verdict)
        _print_dataset(outcome.run.manifest.dataset)
        _print_experiments(outcome.experiments)
        if outcome.baseline_written:
            out.print(f"baseline written: {outcome.baseline_written}", markup=False)
    if args.shard and not args.update_baseline:
        # A slice cannot be judged against a gate and a baseline of the whole suite: the job that
        # merges the shards gates them (`llmops runs merge ...` then `llmops report latest --gate`).
        console(stderr=True).print(f"shard {args.shard}: not gated; merge the shards, then gate with "
                                   "`llmops report latest --gate`", markup=False)
        return EXIT_OK
    return outcome.exit_code


def _print_dataset(pin: DatasetPin | None) -> None:
    """Which Langfuse dataset items the run used (and why the snapshot, when Langfuse was not asked)."""
    if pin is None:
        return
    source = "fetched from Langfuse" if pin.source == "langfuse" else "from the snapshot"
    console().print(f"cases: Langfuse dataset {pin.name} (version {pin.version}, {len(pin.items)} items, "
                    f"content {pin.content_hash[:12]}) {source}, fetched {pin.fetched_at}", markup=False)
    if pin.note:
        console(stderr=True).print(f"note: {pin.note}", markup=False)


def _print_experiments(report: ExperimentReport | None) -> None:
    """The Langfuse experiment runs the run was recorded as (and what could not be sent)."""
    if report is None:
        return
    for r in report.runs:
        console().print(f"Langfuse experiment run '{r.name}' (id {r.id}): {r.items} item(s) linked to their traces, "
                        f"{r.failed} failed" + (" (not delivered)" if report.error else ""), markup=False)
    if report.error:
        console(stderr=True).print(f"warning: {report.error}; the results are in the run store and the unit traces "
                                   "in the local trace store (`llmops traces push` re-sends them)", markup=False)


def _interrupted(settings: Settings, run_id: str) -> int:
    """Ctrl-C: mark the run interrupted and say how to finish it (exit 130)."""
    import time

    from llmops.errors import LLMOpsError
    from llmops.runner.store import RunStore

    err = console(stderr=True)
    store = RunStore(settings.path(settings.store_path))
    try:
        manifest = store.manifest(run_id)
    except LLMOpsError:  # interrupted before the run was registered: nothing to resume
        err.print("interrupted before the run started", markup=False)
        return EXIT_INTERRUPTED
    calls = max(manifest.provider_calls, store.provider_calls(run_id))  # what every process of it paid for
    store.update_manifest(manifest.model_copy(update={"status": "interrupted", "ended_at": time.time(),
                                                      "provider_calls": calls}))
    done = sum(store.result_counts(run_id).values())
    store.close()
    err.print(f"interrupted: run {run_id} ({done}/{manifest.units} units stored, {calls} provider calls)\n"
              f"resume with: llmops run --resume {run_id}", markup=False, highlight=False)
    return EXIT_INTERRUPTED


def _write_reports(args: argparse.Namespace, outcome: object, settings: Settings) -> None:
    from llmops.reports.trust import evaluator_trust

    run, verdict = outcome.run, outcome.verdict  # type: ignore[attr-defined]
    if not (args.markdown or args.html):
        return
    trust = evaluator_trust(run.manifest, settings.root)
    if args.markdown:
        from llmops.reports.markdown import render_markdown

        write_output(args.markdown, render_markdown(run, verdict=verdict, trust=trust), "--markdown")
    if args.html:
        from llmops.reports.html import render_html

        write_output(args.html, render_html(run, verdict=verdict, trust=trust), "--html")


def _workers(requested: int) -> int:
    from llmops.errors import UserError

    if requested < 0:
        raise UserError(f"--workers must be 0 (one per CPU core) or more, got {requested}", key="--workers")
    if requested == 0:
        import os

        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return requested


def _dry_run(args: argparse.Namespace, settings: Settings) -> int:
    from llmops.errors import UserError
    from llmops.runner.preflight import dry_run

    if not args.suite:
        raise UserError("give a SUITE to estimate with --dry-run", key="suite")
    plan = dry_run(args.suite, settings=settings, models=args.models, prompts=args.prompts, repeat=args.repeat,
                   shard=args.shard)
    if args.json:
        import json

        print(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False))
        return EXIT_USAGE if plan.problems else EXIT_OK
    out = console()
    out.print(f"{plan.units} units: {plan.calls} provider calls, {plan.cached} answered from the cache ($0 now)"
              + (f", {plan.render_errors} whose prompt does not render" if plan.render_errors else ""), markup=False)
    out.print(f"tokens: ~{plan.estimated_prompt_tokens} prompt (characters / 4) + at most "
              f"{plan.bound_completion_tokens} completion (max_tokens)", markup=False)
    for model, row in plan.by_model.items():
        out.print(f"  {model}: {int(row['calls'])} calls, at most ${row['bound_cost_usd']:.4f}, "
                  f"typically ${row['typical_cost_usd']:.4f}", markup=False)
    out.print(f"bound: ${plan.bound_cost_usd:.4f} (every call at its max_tokens: what --max-cost-usd reserves)",
              markup=False)
    typical = "n/a" if plan.typical_cost_usd is None else f"${plan.typical_cost_usd:.4f}"
    out.print(f"typical: {typical} ({plan.typical_basis}); judge calls not included", markup=False)
    for problem in plan.problems:
        out.print(f"problem: {problem}", markup=False)
    return EXIT_USAGE if plan.problems else EXIT_OK
