"""Reading JSON Lines files of objects (suite cases, calibration labels) with errors that name the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmops.errors import UserError


def json_objects(text: str, file: Path, error: type[UserError] = UserError) -> Iterator[tuple[dict[str, Any], int]]:
    """Yield ``(object, line number)`` for each non-blank line of ``text``.

    Args:
        text: The file's content.
        file: The file, named in errors.
        error: The error class to raise (e.g. :class:`~llmops.errors.EvalsetError` for suites).

    Raises:
        UserError: (of class ``error``) naming the file and line of invalid JSON, JSON nested too
            deeply for the parser, or a line that is not a JSON object.
    """
    # JSON Lines are separated by "\n" only: str.splitlines() would also split inside a string
    # holding U+2028, U+2029, U+0085 or a form feed, all valid unescaped in JSON.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"invalid JSON: {exc.msg}", file=file, line=number) from None
        except RecursionError:
            raise error("JSON nested too deeply", file=file, line=number) from None
        except ValueError as exc:  # e.g. an integer beyond Python's 4300-digit conversion limit
            raise error(f"invalid JSON value: {exc}", file=file, line=number,
                        hint="write very long numbers as strings") from None
        if not isinstance(row, dict):
            raise error("each line must be a JSON object", file=file, line=number)
        yield row, number
