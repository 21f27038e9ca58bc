"""``llmops models``: configured aliases and embedded local models."""

from __future__ import annotations

import argparse

from llmops.cli._common import EXIT_OK, console, settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", help="list model aliases and embedded local models")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_models)


def _models(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from rich.table import Table
    from rich.text import Text

    from llmops.api import list_models

    rows = list_models(settings_from(args))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return EXIT_OK
    table = Table("model", "kind", "target", "note")
    for row in rows:
        table.add_row(Text(row.name), row.kind, Text(row.target), Text(row.note))
    console().print(table)
    return EXIT_OK
