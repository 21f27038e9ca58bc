"""``llmops report RUN_ID [--baseline FILE|RUN_ID] --html out.html``."""

from __future__ import annotations

import argparse

from llmops.cli._common import EXIT_OK, console, settings_from, write_output


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="write HTML / Markdown / JSON reports of a stored run")
    p.add_argument("run_id", help="run id, unique prefix, or 'latest'")
    p.add_argument("--baseline", default=None, metavar="FILE|RUN_ID",
                   help="baseline file or another run to compare with (default: the suite's baseline file)")
    p.add_argument("--store", default=None, metavar="FILE", help="run store (default: store_path)")
    p.add_argument("--html", default=None, metavar="FILE")
    p.add_argument("--markdown", default=None, metavar="FILE")
    p.add_argument("--json", default=None, metavar="FILE")
    p.add_argument("--gate", action="store_true",
                   help="exit 1 when the run fails its gate or regresses against the baseline")
    p.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from llmops.reports.build import build_report

    settings = settings_from(args)
    report = build_report(args.run_id, settings=settings, baseline=args.baseline, store=args.store)
    out = console()
    outputs = (("--html", args.html, report.html), ("--markdown", args.markdown, report.markdown),
               ("--json", args.json, report.json))
    for flag, path, text in outputs:
        if path:
            write_output(path, text(), flag)
            out.print(f"wrote {path}", markup=False)
    if not (args.html or args.markdown or args.json):
        print(report.markdown(), end="")
    return report.verdict.exit_code if args.gate else EXIT_OK
