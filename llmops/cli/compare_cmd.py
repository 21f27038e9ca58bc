"""``llmops compare SUITE --models A,B``: run a matrix and compare quality, cost and latency."""

from __future__ import annotations

import argparse

from llmops.cli._common import (
    EXIT_OK,
    add_model_options,
    check_output_path,
    console,
    settings_from,
    write_output,
)


def _csv(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expects a comma-separated list, got nothing")
    return items


def _alpha(value: str) -> float:
    try:
        alpha = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a number, got {value!r}") from None
    if not 0 < alpha < 1:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return alpha


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("compare", help="compare models and prompt versions on a suite, with statistics")
    p.add_argument("suite", help="suite file or name")
    p.add_argument("--models", type=_csv, default=None, metavar="A,B,C", help="models to compare")
    p.add_argument("--prompts", type=_csv, default=None, metavar="REF,REF", help="prompt versions to compare")
    p.add_argument("--repeat", "-r", type=int, default=None, metavar="K")
    p.add_argument("--quality", default=None, metavar="METRIC",
                   help="metric that defines 'better' (default: pass rate; or an evaluator name)")
    p.add_argument("--alpha", type=_alpha, default=0.05,
                   help="family-wise significance level per metric (Holm-corrected; default 0.05)")
    p.add_argument("--reference", default=None, metavar="VARIANT",
                   help="variant the others are compared with: its label, model or prompt reference "
                        "(default: the first model / prompt version given)")
    p.add_argument("--all-pairs", action="store_true",
                   help="test every pair of variants (k(k-1)/2 tests, less power) instead of each against "
                        "the reference (k-1 tests)")
    p.add_argument("--html", default=None, metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument("--markdown", default=None, metavar="FILE", help="also write a Markdown report")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--no-progress", action="store_true")
    add_model_options(p)
    p.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from llmops.compare import run_and_compare
    from llmops.runner.engine import run_tracer

    settings = settings_from(args)
    check_output_path(args.html, "--html")
    check_output_path(args.markdown, "--markdown")
    models = args.models or ([args.model] if args.model else None)
    # Traced as `llmops run` is: one trace per unit of every variant.
    run, comparison = run_and_compare(
        args.suite, settings=settings, models=models, prompts=args.prompts, repeat=args.repeat,
        progress=False if args.no_progress else None, tracer=run_tracer(settings), alpha=args.alpha,
        quality=args.quality, mode="all-pairs" if args.all_pairs else "reference", reference=args.reference)
    if args.html:
        from llmops.reports.html import render_html

        write_output(args.html, render_html(run, comparison=comparison), "--html")
    if args.markdown:
        from llmops.reports.markdown import render_markdown

        write_output(args.markdown, render_markdown(run, comparison=comparison), "--markdown")
    if args.json:
        print(comparison.model_dump_json(indent=2))
        return EXIT_OK
    from llmops.reports.terminal import print_comparison

    out = console()
    print_comparison(out, comparison)
    for path in (args.html, args.markdown):
        if path:
            out.print(f"wrote {path}", markup=False)
    return EXIT_OK
