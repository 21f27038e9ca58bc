"""The ``llmops`` command line: parse, call the library, render, exit.

Exit codes: 0 ok, 1 regression or failed gate, 2 usage or configuration error.
Handlers import the library lazily so that ``llmops --help`` stays fast and never imports
litellm, ragas or langfuse.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence

from llmops.cli import (
    _common,
    calibrate_cmd,
    compare_cmd,
    complete_cmd,
    datasets_cmd,
    init_cmd,
    models_cmd,
    prompts_cmd,
    report_cmd,
    run_cmd,
    runs_cmd,
    schema_cmd,
    traces_cmd,
    view_cmd,
)

COMMAND_MODULES = [init_cmd, run_cmd, compare_cmd, report_cmd, runs_cmd, prompts_cmd, complete_cmd, models_cmd,
                   schema_cmd, traces_cmd, datasets_cmd, calibrate_cmd, view_cmd]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (used by ``main`` and by the docs test)."""
    parser = argparse.ArgumentParser(
        prog="llmops",
        description="Versioned prompts, any LLM, traces and a regression harness you can trust in CI.",
    )
    # dest differs from "version" so that a subcommand's own `version` positional
    # (`prompts label NAME LABEL VERSION`) cannot be mistaken for this flag.
    parser.add_argument("--version", dest="show_version", action="store_true", help="print the version and exit")
    parser.add_argument("-C", "--root", default=None, metavar="DIR",
                        help="project folder (default: nearest folder with pyproject.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.show_version:
        from importlib.metadata import version

        print(f"llmops {version('llmops')}")
        return 0
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    return _common.run_handler(args)


def entry() -> None:
    """``python -m llmops`` and the console script."""
    from llmops import _runtime

    _runtime.freeze_heap_after_import = True
    code = main()
    # The interpreter's final collection would walk every object left (~1 s after importing
    # LiteLLM); frozen objects are skipped. Exit handlers (trace flushing) still run.
    gc.freeze()
    sys.exit(code)
