"""``llmops init [DIR]``: scaffold prompts, a suite, config and a CI workflow."""

from __future__ import annotations

import argparse

from llmops.cli._common import EXIT_OK, console


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="create an example prompt, suite, [tool.llmops] config and CI workflow")
    p.add_argument("directory", nargs="?", default=".", help="project folder (default: current)")
    p.add_argument("--force", action="store_true", help="overwrite existing example files")
    p.set_defaults(handler=_init)


def _init(args: argparse.Namespace) -> int:
    from llmops.scaffold import init_project

    out = console()
    for path in init_project(args.directory, force=args.force):
        out.print(f"wrote {path}", markup=False)
    out.print("next: llmops run evalsets/example.yaml   (runs on the embedded model, no API key)", markup=False)
    return EXIT_OK
