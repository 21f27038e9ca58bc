"""Seams a new user crosses, played from outside: `llmops init` in an empty folder, the commands
docs/ci.md prints, run as a subprocess with piped output at 80 columns.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``llmops ARGS`` in ``cwd``: piped (not a terminal), 80 columns, no project on sys.path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "LANGFUSE_"))
           and not k.endswith("_API_KEY")}
    env.update({"PYTHONPATH": str(REPO), "COLUMNS": "80", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    return subprocess.run([sys.executable, "-P", "-m", "llmops", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_prompts_check_does_not_claim_an_unlocked_version_matches_the_lock(tmp_path: Path) -> None:
    """docs/ci.md: lock, then add v2 without locking it; the CI step names it and does not fail."""
    assert cli(tmp_path, "init", "my-project").returncode == 0
    project = tmp_path / "my-project"
    assert cli(project, "prompts", "lock").returncode == 0
    checked = cli(project, "prompts", "check")
    assert checked.returncode == 0 and "prompts match the lock file" in checked.stdout

    v1 = (project / "prompts" / "answer" / "v1.jinja").read_text(encoding="utf-8")
    (project / "prompts" / "answer" / "v2.jinja").write_text(v1.replace("one short", "a short"),
                                                             encoding="utf-8")
    checked = cli(project, "prompts", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "not locked yet: answer@2 (run `llmops prompts lock`)" in checked.stdout
    assert "prompts match the lock file" not in checked.stdout
    assert "1 version(s) not locked yet are not checked" in checked.stdout
    assert "Traceback" not in checked.stdout + checked.stderr

    # Locked, then edited in place: the step fails (exit 1) naming the version.
    assert cli(project, "prompts", "lock").returncode == 0
    (project / "prompts" / "answer" / "v2.jinja").write_text(v1.replace("one short", "one"),
                                                             encoding="utf-8")
    checked = cli(project, "prompts", "check")
    assert checked.returncode == 1
    assert "edited in place: answer@2" in checked.stderr


def test_generated_workflow_keeps_the_comment_fallback_on_its_own_line(tmp_path: Path) -> None:
    """The `gh pr comment` step `init` writes is two shell lines joined by a backslash."""
    assert cli(tmp_path, "init", "my-project").returncode == 0
    workflow = tmp_path / "my-project" / ".github" / "workflows" / "llmops.yml"
    steps = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]["prompt-regression"]["steps"]
    comment = next(s for s in steps if s.get("name") == "Comment on the pull request")["run"]
    lines = comment.splitlines()
    assert lines[0].endswith("--edit-last \\"), comment
    assert lines[1].strip().startswith("|| gh pr comment"), comment
    # The shell reads it as one command: the backslash-newline is a continuation.
    joined = subprocess.run(["bash", "-n", "-c", comment], capture_output=True, text=True)
    assert joined.returncode == 0, joined.stderr


def test_openai_compatible_alias_without_a_key_is_exit_2_before_any_call(tmp_path: Path) -> None:
    """docs/providers.md: a missing key is exit 2 naming it, also for an alias with its own api_base
    (the OpenAI SDK sends no request without a key); the documented `api_key = "none"` then works
    against a server that takes no key."""
    from llmops.testing import ProviderServer

    assert cli(tmp_path, "init", "my-project").returncode == 0
    project = tmp_path / "my-project"
    pyproject = project / "pyproject.toml"
    base = pyproject.read_text(encoding="utf-8")
    with ProviderServer(api_key=None) as server:
        alias = (f'vllm = {{ model = "openai/my-model", params = {{ api_base = "{server.openai_base}", '
                 "input_cost_per_token = 0.0, output_cost_per_token = 0.0 } }\n")
        pyproject.write_text(base + alias, encoding="utf-8")
        out = cli(project, "run", "evalsets/example.yaml", "--model", "vllm", "--no-progress")
        assert out.returncode == 2, out.stdout + out.stderr
        assert "model 'vllm' (openai/my-model) needs OPENAI_API_KEY" in out.stderr
        assert 'api_key in the alias; any value, e.g. "none"' in out.stderr
        assert "Traceback" not in out.stdout + out.stderr
        assert not server.requests  # nothing was called

        pyproject.write_text(base + alias.replace("input_cost", 'api_key = "none", input_cost'),
                             encoding="utf-8")
        out = cli(project, "run", "evalsets/example.yaml", "--model", "vllm", "--no-progress")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "provider calls 3" in out.stdout
        assert len(server.requests) == 3
