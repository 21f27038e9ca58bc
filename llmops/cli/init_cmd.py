"""``llmops init [DIR]``: scaffold prompts, a suite, config and a CI workflow."""

from __future__ import annotations

import argparse

from llmops.cli._common import EXIT_OK, console

NEXT_STEPS = """next: llmops run evalsets/example.yaml   (runs on the embedded model, no API key)
for CI (.github/workflows/llmops.yml replays recorded answers, no API key):
  llmops prompts lock
  llmops run evalsets/example.yaml --update-baseline
  git add -A && git commit -m "llmops suite, recorded answers and baseline"
  (commits prompts/, evalsets/ with .cache/responses.sqlite and baselines/, pyproject.toml, .github/;
   .gitignore keeps .llmops/ and SQLite's -wal/-shm files out)"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="create an example prompt, suite, [tool.llmops] config and CI workflow")
    p.add_argument("directory", nargs="?", default=".", help="project folder (default: current)")
    p.add_argument("--force", action="store_true", help="overwrite existing example files")
    p.add_argument("--source", default=None, metavar="URL|DIR",
                   help="where the project and its CI install llmops from, written as `llmops @ SOURCE` "
                        "(default: the git URL and commit of the llmops running this command)")
    p.set_defaults(handler=_init)


def _init(args: argparse.Namespace) -> int:
    from llmops.scaffold import init_project, llmops_source

    out = console()
    source = llmops_source(args.source)
    for path in init_project(args.directory, force=args.force, source=source):
        out.print(f"wrote {path}", markup=False)
    out.print(f"llmops is installed as: {source.requirement}", markup=False)
    if source.warning:
        console(stderr=True).print(f"warning: {source.warning}", markup=False, highlight=False)
    out.print(NEXT_STEPS, markup=False, highlight=False)
    return EXIT_OK
