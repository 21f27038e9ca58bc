"""``llmops schema``: write the JSON Schema of suite files (editor autocompletion)."""

from __future__ import annotations

import argparse

from llmops.cli._common import EXIT_OK, console, write_output


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schema", help="write the JSON Schema of suite files")
    p.add_argument("--output", "-o", default=None, metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(handler=_schema)


def _schema(args: argparse.Namespace) -> int:
    import contextlib
    import json
    from pathlib import Path

    from llmops.evalsets.loader import suite_json_schema

    text = json.dumps(suite_json_schema(), indent=2, sort_keys=True) + "\n"
    if args.output:
        path = Path(args.output)
        with contextlib.suppress(OSError):  # write_output names the problem
            path.parent.mkdir(parents=True, exist_ok=True)
        write_output(str(path), text, "--output")
        console().print(f"wrote {path}", markup=False)
    else:
        print(text, end="")
    return EXIT_OK
