"""Issue 19 defects in the gate's own code: API input is validated without assert; cache modes are declared once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmops.config import CACHE_MODES, CacheMode
from llmops.errors import UserError
from llmops.gate import run_and_gate

REPO = Path(__file__).resolve().parent.parent


def test_run_and_gate_without_suite_or_resume_is_a_user_error_even_under_python_O(project: Path) -> None:
    with pytest.raises(UserError, match="give a suite to run"):
        run_and_gate(None)
    code = ("from llmops.gate import run_and_gate\nfrom llmops.errors import UserError\n"
            "try:\n    run_and_gate(None)\nexcept UserError as e:\n    print('user error:', e)\n")
    out = subprocess.run([sys.executable, "-O", "-c", code], cwd=project, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=False)
    assert "user error: give a suite to run" in out.stdout, out.stderr


def test_cache_modes_are_declared_once() -> None:
    from typing import get_args

    assert get_args(CacheMode) == CACHE_MODES
    from llmops.cli import build_parser

    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    (cache,) = [a for a in run._actions if "--cache" in a.option_strings]
    assert tuple(cache.choices) == CACHE_MODES
    import llmops.pytest_plugin as plugin

    source = Path(plugin.__file__).read_text(encoding="utf-8") + (REPO / "llmops/cli/_common.py").read_text()
    assert '"read-write", "read-only"' not in source  # no hand-written copy of the list
