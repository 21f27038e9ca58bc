"""Generate the reference pages that must never drift: CLI help and the suite file reference.

``python -m llmops.docsgen`` rewrites ``docs/cli.md`` and ``docs/suite-reference.md``; a test
fails when the committed pages differ from what the code generates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def _walk(parser: argparse.ArgumentParser, prefix: list[str]) -> list[tuple[list[str], argparse.ArgumentParser]]:
    found = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_walk(sub, [*prefix, name]))
    return found


def cli_reference() -> str:
    """Markdown with the ``--help`` of every command and sub-command."""
    from llmops.cli import build_parser

    # A fixed width so the page does not depend on the terminal that generated it.
    os.environ["COLUMNS"] = "100"
    lines = ["# Command line reference", "",
             "Generated from the parser by `python -m llmops.docsgen`; a test keeps it in sync.", "",
             "Exit codes: `0` passed, `1` regression or failed gate, `2` usage or configuration error, "
             "`3` the run stopped at its budget (`run`; resumable), "
             "`4` Langfuse could not be reached (`traces push`, `prompts push`/`pull`, `datasets push`/`pull`), "
             "`5` nothing measured: no result left to judge (`run`).", ""]
    for path, parser in _walk(build_parser(), ["llmops"]):
        lines += [f"## `{' '.join(path)}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def _type_of(spec: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in spec:
        return str(spec["$ref"]).split("/")[-1]
    if "anyOf" in spec:
        return " or ".join(_type_of(s, defs) for s in spec["anyOf"])
    if spec.get("type") == "array":
        return f"list of {_type_of(spec.get('items', {}), defs)}"
    if "enum" in spec:
        return " | ".join(json.dumps(v) for v in spec["enum"])
    return str(spec.get("type", "any"))


def suite_reference() -> str:
    """Markdown tables of every key of a suite file, from the JSON Schema."""
    from llmops.evalsets.loader import suite_json_schema

    schema = suite_json_schema()
    defs = schema.get("$defs", {})
    lines = ["# Suite file reference", "",
             "Generated from the JSON Schema (`llmops schema`) by `python -m llmops.docsgen`.", ""]
    sections = [("Suite (top level)", schema)] + [(name, defs[name]) for name in sorted(defs)]
    for title, section in sections:
        lines += [f"## {title}", ""]
        if section.get("description") and title != "Suite (top level)":
            lines += [" ".join(section["description"].split()), ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        required = set(section.get("required", []))
        for key, spec in section.get("properties", {}).items():
            default = "required" if key in required else json.dumps(spec.get("default", None))
            desc = " ".join(str(spec.get("description", "")).split()).replace("|", "\\|")
            lines.append(f"| `{key}` | {_type_of(spec, defs)} | {default} | {desc} |")
        lines.append("")
    return "\n".join(lines)


def write(docs: Path) -> list[Path]:
    """Write the generated pages into ``docs``."""
    docs.mkdir(parents=True, exist_ok=True)
    out = [(docs / "cli.md", cli_reference()), (docs / "suite-reference.md", suite_reference())]
    for path, text in out:
        path.write_text(text, encoding="utf-8")
    return [p for p, _ in out]


if __name__ == "__main__":
    for written in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(f"wrote {written}")
