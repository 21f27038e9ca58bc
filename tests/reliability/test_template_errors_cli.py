"""A template that runs out of memory or hits the render limits, through the CLI as a user runs it.

Each command runs in a subprocess with its output piped, from the project folder, with the
environment a shell gives it (``PWD`` set to that folder). The user must see one clear error that
names the template file and line, and exit code 2: no traceback, no ``MemoryError``. The memory
bomb keeps every piece it builds (40 MB each, within the per-operation limits), so only the
process's memory runs out; the child gets an address-space limit so that it fails fast and never
takes the machine's memory.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_helpers import COUNTS

MEMORY_LIMIT = 1536 * 2**20  # the bomb would take ~4.5 GB; the CLI itself needs far less
MEMORY_BOMB = ("---\ninputs:\n  n: {type: integer}\n---\n"
               "{% set big = 'x' * 10000000 %}\n"
               "{% set parts = range(n)|map('string')|map('replace', '', big)|list %}{{ parts|length }}\n")
RENDER_LIMITS = {
    "padding": "{{ 'x'|center(1500000000) }}\n",  # folded at compile time before the bound existed
    "endless output": "{% for i in range(100000000) %}xxxxxxxxxx{% endfor %}\n",
    "power": "{{ 7 ** 100000000 }}\n",
}


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _llmops(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "LANGFUSE_"))}
    env.update(COLUMNS="80", NO_COLOR="1", PWD=str(project))  # as a shell sets it in the project folder
    return subprocess.run([sys.executable, "-m", "llmops", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL, preexec_fn=_limited)


def _prompt(project: Path, name: str, body: str, inputs: str) -> Path:
    folder = project / "prompts" / name
    folder.mkdir(parents=True)
    path = folder / "v1.jinja"
    path.write_text(body, encoding="utf-8")
    (project / "evalsets" / f"{name}.yaml").write_text(
        f"name: {name}\nprompt: {name}@1\nmodels: [fake/echo]\nevaluators: [contains]\n"
        f"cases:\n  - {{id: c0, inputs: {inputs}, expected: x}}\n", encoding="utf-8")
    return path


def _assert_clear_exit_2(result: subprocess.CompletedProcess[str], path: Path, words: str, line: int | None) -> None:
    shown = result.stdout + result.stderr
    COUNTS["bad inputs tried"] += 1
    clear = (result.returncode == 2 and words in shown and str(path) in shown
             and "Traceback" not in shown and "MemoryError" not in shown and "[REDACTED]" not in shown)
    COUNTS["bad inputs: exit 2 with a location"] += clear
    assert result.returncode == 2, shown
    # (--dry-run prints its problems in its report, on stdout; other commands on stderr.)
    assert words in shown and "Traceback" not in shown and "MemoryError" not in shown, shown
    # The file is named in full: the shell's PWD is a directory, not a password to scrub.
    assert str(path) in shown and "[REDACTED]" not in shown, shown
    if line is not None:
        assert f"{path}:{line}" in shown, shown


@pytest.mark.parametrize("argv", [["prompts", "render", "bomb@1", "-i", "n=150"],
                                  ["run", "evalsets/bomb.yaml", "--no-progress"],
                                  ["run", "evalsets/bomb.yaml", "--dry-run"]],
                         ids=["prompts render", "run", "run --dry-run"])
def test_a_template_that_runs_out_of_memory_exits_2_naming_the_file(project: Path, argv: list[str]) -> None:
    path = _prompt(project, "bomb", MEMORY_BOMB, "{n: 150}")
    _assert_clear_exit_2(_llmops(project, *argv), path, "out of memory", 6)


@pytest.mark.parametrize("body", list(RENDER_LIMITS.values()), ids=list(RENDER_LIMITS))
@pytest.mark.parametrize("argv", [["prompts", "render", "limit@1"], ["run", "evalsets/limit.yaml", "--no-progress"]],
                         ids=["prompts render", "run"])
def test_a_template_past_the_render_limits_exits_2_naming_the_file(project: Path, body: str,
                                                                   argv: list[str]) -> None:
    path = _prompt(project, "limit", body, "{}")
    _assert_clear_exit_2(_llmops(project, *argv), path, "limit@1", None)
