"""The documentation stays true: generated pages match the code, documented commands work."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from llmops.cli import build_parser
from llmops.docsgen import cli_reference, suite_reference

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def bash_blocks(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.*?)```", text, re.DOTALL)


def llmops_commands(path: Path) -> list[str]:
    """Every `llmops ...` invocation in the file's bash blocks (split on && and comments removed)."""
    found = []
    for block in bash_blocks(path):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("cd "):
                    break  # what follows runs elsewhere (`llmops init x && cd x && ...`): handled by the caller
                if part.startswith("llmops "):
                    found.append(part)
    return found


def test_generated_reference_pages_are_current() -> None:
    assert (REPO / "docs" / "cli.md").read_text(encoding="utf-8") == cli_reference(), \
        "run: python -m llmops.docsgen"
    assert (REPO / "docs" / "suite-reference.md").read_text(encoding="utf-8") == suite_reference(), \
        "run: python -m llmops.docsgen"


def test_every_cli_command_is_documented() -> None:
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in sub.choices:  # type: ignore[attr-defined]
        assert f"## `llmops {name}`" in text


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_documented_commands_parse(path: Path) -> None:
    """Every documented llmops command names real sub-commands and flags."""
    parser = build_parser()
    for command in llmops_commands(path):
        argv = shlex.split(command.replace('"$GITHUB_STEP_SUMMARY"', "summary.md"))[1:]
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"{path.name}: `{command}` does not parse") from exc


def test_readme_opens_with_the_two_commands() -> None:
    blocks = bash_blocks(REPO / "README.md")
    run, test = blocks[0].strip(), blocks[1].strip()
    assert "pip install -e ." in run and "llmops run evalsets/" in run
    assert 'pip install -e ".[dev]"' in test and test.endswith("pytest")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -q -e ".[dev]"' in ci and "pytest" in ci


@pytest.mark.local_model
def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    """Run the README's llmops commands in a fresh copy of the project (embedded model, no keys)."""
    for item in ("pyproject.toml", "prompts", "evalsets"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    shutil.rmtree(tmp_path / "evalsets" / "baselines", ignore_errors=True)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "200"}
    env = {k: v for k, v in env.items() if not k.endswith("_API_KEY") and not k.startswith("LLMOPS_")}
    for command in llmops_commands(REPO / "README.md"):
        argv = shlex.split(command)
        cwd = tmp_path
        if argv[1] == "init":  # `llmops init my-project && cd my-project && llmops run ...`
            target = tmp_path / "init-demo"
            out = subprocess.run([sys.executable, "-m", "llmops", "init", str(target)], cwd=cwd, env=env,
                                 capture_output=True, text=True, timeout=600)
            assert out.returncode == 0, out.stderr
            out = subprocess.run([sys.executable, "-m", "llmops", "run", "evalsets/example.yaml", "--no-progress"],
                                 cwd=target, env=env, capture_output=True, text=True, timeout=600)
            assert out.returncode == 0, out.stdout + out.stderr
            continue
        if argv[1] == "view":  # a server: start it on a free port, fetch the runs page, stop it
            proc = subprocess.Popen([sys.executable, "-m", "llmops", *argv[1:], "--port", "0"], cwd=cwd, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                assert proc.stdout is not None
                url = proc.stdout.readline().split(" at ", 1)[-1].strip()
                with urllib.request.urlopen(url + "runs", timeout=60) as page:
                    assert page.status == 200 and "<h1>Runs</h1>" in page.read().decode("utf-8")
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            continue
        if argv[1] == "run" and "--no-progress" not in argv and "--dry-run" not in argv:
            argv.append("--no-progress")
        out = subprocess.run([sys.executable, "-m", "llmops", *argv[1:]], cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=900)
        assert out.returncode == 0, f"`{command}` exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
