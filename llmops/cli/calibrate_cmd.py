"""``llmops calibrate EVALUATOR --labels FILE.jsonl``: measure an evaluator against human labels."""

from __future__ import annotations

import argparse

from llmops.cli._common import EXIT_FAILED, EXIT_OK, console, parse_inputs


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "calibrate", help="measure an evaluator against human labels (accuracy, TPR/FPR, Cohen's kappa)",
        description="Score every labelled output with the evaluator, compare with the human pass/fail "
                    "labels, print accuracy, true/false positive rates (positive = fail) and Cohen's "
                    "kappa, and store the result under .llmops/calibration/ with the evaluator's version.")
    p.add_argument("evaluator", metavar="EVALUATOR", help="evaluator kind, e.g. hallucination, judge, bias-judge")
    p.add_argument("--labels", default=None, metavar="FILE.jsonl",
                   help='JSONL rows: {"output": ..., "label": "pass"|"fail", "contexts": [...], "inputs": {...}} '
                        "(default: review_path, the marks made in `llmops view`)")
    p.add_argument("--param", "-p", action="append", default=None, metavar="KEY=VALUE",
                   help="evaluator parameter (value parsed as JSON when it can be; repeatable)")
    p.add_argument("--threshold", type=float, default=None, help="pass threshold (default: the evaluator's)")
    p.add_argument("--judge-model", default=None, metavar="MODEL", help="judge model (default: configured)")
    p.add_argument("--min-kappa", type=float, default=None, metavar="K",
                   help="exit 1 when Cohen's kappa is below K (or undefined)")
    p.add_argument("--no-save", action="store_true", help="do not store the result")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--cache", default=None, choices=["off", "read-write", "read-only", "refresh"],
                   help="response cache mode for judge calls")
    p.add_argument("--concurrency", type=int, default=None, metavar="N", help="rows scored at once")
    p.add_argument("--timeout", type=float, default=None, dest="timeout_s", metavar="S",
                   help="per-call timeout of judge calls")
    p.set_defaults(handler=_calibrate)


def _fmt(value: float | None, percent: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if percent else f"{value:.3f}"


def _calibrate(args: argparse.Namespace) -> int:
    from llmops._async import run_sync
    from llmops.config import load_settings
    from llmops.evaluators.base import EvalContext
    from llmops.evaluators.calibration import acalibrate, calibration_path
    from llmops.llm.client import LLMClient

    params = parse_inputs(args.param, None)
    settings = load_settings(getattr(args, "root", None), overrides={
        "cache": args.cache, "concurrency": args.concurrency, "timeout_s": args.timeout_s,
        "judge_model": args.judge_model})
    ctx = EvalContext(client=LLMClient(settings), judge_model=settings.judge_model, seed=settings.seed,
                      metadata={"purpose": "calibration"})
    labels = args.labels or settings.path(settings.review_path)
    report = run_sync(acalibrate(args.evaluator, labels, params=params, threshold=args.threshold,
                                 ctx=ctx, root=settings.root, concurrency=settings.concurrency,
                                 save=not args.no_save))
    failed_gate = args.min_kappa is not None and (report.kappa is None or report.kappa < args.min_kappa)
    if args.json:
        print(report.model_dump_json(indent=2))
        return EXIT_FAILED if failed_gate else EXIT_OK

    from rich.markup import escape
    from rich.table import Table

    out = console()
    out.print(f"[bold]{escape(report.evaluator)}[/] v{report.version} against {escape(report.labels_file)} "
              f"({report.n} labelled outputs; positive = fail)")
    table = Table("measure", "value", "meaning")
    c = report.confusion
    table.add_row("coverage", _fmt(report.coverage),
                  f"{report.measured} measured, {report.unmeasured} unmeasured, {report.errors} errors")
    ci = (f" (95% CI {report.accuracy_ci[0]:.1%}-{report.accuracy_ci[1]:.1%})" if report.accuracy_ci else "")
    table.add_row("accuracy", _fmt(report.accuracy) + ci, "verdicts that match the human label")
    table.add_row("balanced accuracy", _fmt(report.balanced_accuracy), "mean of TPR and TNR")
    table.add_row("TPR", _fmt(report.tpr), f"human fails it also fails ({c.tp} of {c.tp + c.fn})")
    table.add_row("FPR", _fmt(report.fpr), f"false alarms on human passes ({c.fp} of {c.fp + c.tn})")
    table.add_row("precision", _fmt(report.precision), "its fails that are real")
    table.add_row("Cohen's kappa", _fmt(report.kappa, percent=False), f"agreement beyond chance: {report.agreement}")
    out.print(table)
    if report.unmeasured_reasons:
        out.print("unmeasured: " + "; ".join(f"{r} (x{n})" for r, n in report.unmeasured_reasons.items()))
    if not args.no_save:
        out.print(f"stored: {calibration_path(settings.root, report.evaluator, report.version)} "
                  f"(config {report.fingerprint})")
    if failed_gate:
        out.print(f"[bold red]kappa {_fmt(report.kappa, percent=False)} is below --min-kappa {args.min_kappa}[/]")
        return EXIT_FAILED
    return EXIT_OK

