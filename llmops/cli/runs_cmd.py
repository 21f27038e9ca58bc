"""``llmops runs list | show | merge``: the run store."""

from __future__ import annotations

import argparse

from llmops.cli._common import EXIT_OK, console, positive_int, settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("runs", help="list, show and merge stored runs")
    p.add_argument("--store", default=None, metavar="FILE", help="run store (default: store_path)")
    ps = p.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    lst = ps.add_parser("list", help="most recent runs")
    lst.add_argument("--limit", type=positive_int, default=20)
    lst.add_argument("--json", action="store_true", help="print the runs as a JSON list (complete ids)")
    lst.set_defaults(handler=_list)
    show = ps.add_parser("show", help="summary and failures of a run")
    show.add_argument("run_id", help="run id, unique prefix, or 'latest'")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)
    diff = ps.add_parser("diff", help="compare two runs case by case (paired statistics)")
    diff.add_argument("baseline", help="the earlier run (id, prefix or 'latest')")
    diff.add_argument("run_id", help="the later run")
    diff.set_defaults(handler=_diff)
    merge = ps.add_parser("merge", help="merge shard runs into one run (then gate it)")
    merge.add_argument("sources", nargs="+", metavar="STORE[#RUN_ID]",
                       help="run store files of the shards (RUN_ID defaults to latest)")
    merge.set_defaults(handler=_merge)


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from llmops.runner.store import RunStore

    settings = settings_from(args)
    return RunStore(args.store or settings.path(settings.store_path))


def _list(args: argparse.Namespace) -> int:
    import datetime
    import json

    from rich.table import Column, Table
    from rich.text import Text

    store = _store(args)
    rows = []
    for m in store.runs(limit=args.limit):
        counts = store.result_counts(m.run_id)
        rows.append({"run_id": m.run_id, "suite": m.suite, "started_at": m.started_at, "status": m.status,
                     "units_done": sum(counts.values()), "units": m.units, "results": counts,
                     "cost_usd": m.cost_usd + m.judge_cost_usd, "git_commit": m.git_commit})
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    # Ids are what --resume, report and diff take: on a narrow terminal they wrap, never end in "…".
    table = Table(Column("run", overflow="fold"), Column("suite", overflow="fold"), "started", "status",
                  Column("units", overflow="fold"), Column("cost $", overflow="fold"), "commit")
    for row in rows:
        started = datetime.datetime.fromtimestamp(float(row["started_at"])).strftime("%Y-%m-%d %H:%M")
        table.add_row(Text(str(row["run_id"])), Text(str(row["suite"])), started, str(row["status"]),
                      f"{row['units_done']}/{row['units']}", f"{row['cost_usd']:.4f}",
                      str(row["git_commit"] or "")[:10])
    console().print(table)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from llmops.reports.terminal import print_run

    run = _store(args).load(args.run_id)
    if args.json:
        print(run.model_dump_json(indent=2))
        return EXIT_OK
    print_run(console(), run)
    return EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    from llmops.reports.build import build_report

    report = build_report(args.run_id, settings=settings_from(args), baseline=args.baseline, store=args.store)
    out = console()
    verdict = report.verdict
    out.print(f"{args.run_id} against {args.baseline}: {'no regression' if verdict.passed else 'REGRESSED'}",
              markup=False)
    for line in [*verdict.reasons, *verdict.notes]:
        out.print(f"  {line}", markup=False, highlight=False)
    for variant in verdict.variants:
        for word, changes in (("regressed", variant.regressed_cases), ("improved ", variant.improved_cases)):
            for c in changes:
                out.print(f"  {word} {c.case_id}: {c.baseline_pass_rate:.0%} -> {c.current_pass_rate:.0%}",
                          markup=False)
    return verdict.exit_code


def _merge(args: argparse.Namespace) -> int:
    from llmops.runner.merge import merge_runs

    sources = []
    for item in args.sources:
        path, sep, rid = item.partition("#")
        sources.append((path, rid if sep and rid else "latest"))
    merged = merge_runs(sources, _store(args))
    console().print(f"merged {len(merged.manifest.merged_from)} runs into {merged.run_id} "
                    f"({len(merged.results)} results)", markup=False)
    return EXIT_OK
