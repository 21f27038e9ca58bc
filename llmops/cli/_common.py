"""Shared CLI plumbing: options, settings from flags, error rendering, exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from llmops.config import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
# A service llmops needed (Langfuse) could not be reached: not a regression, not a usage error.
EXIT_UNAVAILABLE = 4
# `llmops run` outcomes that are neither a pass nor a regression (llmops.regression.verdict.EXIT_CODES):
# the budget stopped the run before every unit ran (resumable); nothing was left to judge.
EXIT_BUDGET, EXIT_UNMEASURED = 3, 5
Handler = Callable[[argparse.Namespace], int]


def add_model_options(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    """``--model``, ``--cache`` and friends, shared by commands that call models."""
    from llmops.config import CACHE_MODES

    if many:
        parser.add_argument("--model", "-m", action="append", dest="models", metavar="MODEL",
                            help="model alias or LiteLLM string (repeatable)")
    else:
        parser.add_argument("--model", "-m", default=None, metavar="MODEL",
                            help="model alias or LiteLLM string")
    parser.add_argument("--cache", default=None, choices=CACHE_MODES,
                        help="response cache mode (read-only = replay, a miss is an error)")
    parser.add_argument("--concurrency", type=int, default=None, metavar="N",
                        help="max in-flight calls per model")
    parser.add_argument("--timeout", type=float, default=None, dest="timeout_s", metavar="S",
                        help="per-call timeout in seconds")


def positive_int(value: str) -> int:
    """Argparse type: an integer of at least 1 (``--limit -5`` is a usage error, exit 2)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings with the CLI flags applied as the highest-priority layer."""
    from llmops.config import load_settings

    overrides = {
        "cache": getattr(args, "cache", None),
        "concurrency": getattr(args, "concurrency", None),
        "timeout_s": getattr(args, "timeout_s", None),
        "langfuse_experiments": getattr(args, "langfuse_experiments", None),
    }
    return load_settings(getattr(args, "root", None), overrides=overrides)


# Width of a console that does not write to a terminal (a CI log, a pipe): wide enough that no
# table cell is ever cut, so every row stays one complete, greppable line.
PIPE_WIDTH = 10_000


def console(stderr: bool = False) -> Console:
    """A rich console (imported lazily); not on a terminal, tables are never cut to 80 columns."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=None if tty else PIPE_WIDTH)


def parse_inputs(pairs: list[str] | None, inputs_file: str | None) -> dict[str, Any]:
    """Merge ``--inputs-file f.json`` and ``--input k=v`` pairs (values parsed as JSON when they can be)."""
    from llmops.errors import UserError

    data: dict[str, Any] = {}
    if inputs_file:
        path = Path(inputs_file)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError("inputs file not found", file=path, key="--inputs-file") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"invalid JSON: {exc.msg}", file=path, line=exc.lineno) from None
        except UnicodeDecodeError as exc:
            raise UserError(f"not valid UTF-8 (byte {exc.start})", file=path) from None
        except RecursionError:
            raise UserError("JSON nested too deeply", file=path) from None
        except OSError as exc:
            raise UserError(f"cannot read inputs file: {exc.strerror or exc}", file=path,
                            key="--inputs-file") from None
        if not isinstance(loaded, dict):
            raise UserError("inputs file must hold a JSON object", file=path)
        data.update(loaded)
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--input expects key=value, got '{pair}'", key="--input")
        try:
            value: Any = json.loads(raw)
            if not isinstance(value, (list, dict, int, float, bool)) or isinstance(value, str):
                value = raw
        except (json.JSONDecodeError, RecursionError):
            value = raw
        data[key] = value
    return data


def check_output_path(path: str | None, flag: str) -> None:
    """Refuse an output file whose folder does not exist (before a long run, not after it)."""
    from llmops.errors import UserError

    if path and not Path(path).resolve().parent.is_dir():
        raise UserError(f"cannot write {path}: folder {Path(path).parent} does not exist", key=flag,
                        hint="create the folder first, or pick another path")


def write_output(path: str, text: str, flag: str) -> None:
    """Write a report file; an unwritable path is a usage error (exit 2), not a traceback."""
    from llmops._files import atomic_write_text, os_error_text
    from llmops.errors import UserError

    try:
        atomic_write_text(path, text)  # a full disk leaves the old report (or none), never half a file
    except OSError as exc:
        raise UserError(f"cannot write {path}: {os_error_text(exc)}", file=path, key=flag) from None


def run_handler(args: argparse.Namespace) -> int:
    """Run a command handler, turning our errors into messages and exit codes."""
    from llmops.errors import LLMOpsError

    handler: Handler = args.handler
    try:
        return handler(args)
    except LLMOpsError as err:
        from rich.markup import escape

        # Messages quote files, flags and provider answers: never read them as markup.
        out = console(stderr=True)
        out.print(f"[bold red]error:[/] {escape(err.message)}", markup=True, highlight=False)
        if err.hint:
            out.print(f"  [yellow]hint:[/] {escape(err.hint)}", markup=True, highlight=False)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
