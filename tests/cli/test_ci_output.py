"""The CI loop from outside: the CLI as a subprocess, piped output at 80 columns, committed files only.

Each test plays a user in a fresh project folder and runs ``python -P -m llmops`` as the console
script does (``-P``: the current folder is not on the import path, exactly as for the installed
``llmops`` command).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PYPROJECT = """\
[project]
name = "ci-demo"
version = "0"

[tool.llmops]
default_model = "fake/echo"
judge_model = "fake/echo"
cache = "read-write"
cache_path = "evalsets/.cache/responses.sqlite"
store_path = ".llmops/runs.sqlite"
"""

SUITE = """\
name: echo
prompt: rag_answer@2
models: [fake/echo]
evaluators:
  - contains: {name: mentions}
gate: {min_pass_rate: 0.5}
cases:
  - {id: case-one, inputs: {question: "alpha question"}, expected: alpha}
  - {id: case-two, inputs: {question: "beta question"}, expected: beta}
  - {id: case-three, inputs: {question: "gamma question"}, expected: gamma}
"""


def make_project(root: Path, suite: str = SUITE, pyproject: str = PYPROJECT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    shutil.copytree(REPO / "prompts", root / "prompts")
    (root / "evalsets").mkdir()
    (root / "evalsets" / "echo.yaml").write_text(suite, encoding="utf-8")
    return root


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``llmops ARGS`` in ``cwd``: piped (not a terminal), 80 columns, no project on sys.path."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "LANGFUSE_"))
            and not k.endswith("_API_KEY")}
    base.update({"PYTHONPATH": str(REPO), "COLUMNS": "80", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    base.update(env or {})
    return subprocess.run([sys.executable, "-P", "-m", "llmops", *args], cwd=cwd, env=base,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_committed_sqlite_files_are_complete_without_their_wal(tmp_path: Path) -> None:
    """Record, then copy only the `.sqlite` files (as a commit would) and replay from them."""
    recorded = make_project(tmp_path / "recorded")
    out = cli(recorded, "run", "evalsets/echo.yaml", "--no-progress")
    assert out.returncode == 0, out.stdout + out.stderr
    sqlite_files = sorted(p.relative_to(recorded) for p in recorded.rglob("*.sqlite"))
    assert Path("evalsets/.cache/responses.sqlite") in sqlite_files
    # What git would commit: the project files and the .sqlite files, never SQLite's side files.
    clean = make_project(tmp_path / "clean")
    for rel in sqlite_files:
        (clean / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(recorded / rel, clean / rel)
    assert not list(clean.rglob("*-wal"))
    replay = cli(clean, "run", "evalsets/echo.yaml", "--cache", "read-only", "--no-progress")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "provider calls 0" in replay.stdout and "cache hits 100%" in replay.stdout
    listed = cli(clean, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 2  # the recorded run came along in the copied run store


def test_piped_output_is_complete_at_80_columns(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    long_model = "fake/a-rather-long-model-name-that-would-not-fit-in-a-column"
    (project / "evalsets" / "echo.yaml").write_text(SUITE.replace("[fake/echo]", f"[{long_model}]"))
    (project / "pyproject.toml").write_text(PYPROJECT + f'\n[tool.llmops.models]\n"{long_model}" = "fake/echo"\n')
    run = cli(project, "run", "evalsets/echo.yaml", "--no-progress")
    assert run.returncode == 0, run.stdout + run.stderr
    listed = cli(project, "runs", "list", "--json")
    rows = json.loads(listed.stdout)
    run_id = rows[0]["run_id"]
    assert rows[0]["status"] == "completed" and rows[0]["units_done"] == rows[0]["units"] == 3
    table = cli(project, "runs", "list").stdout
    for text in (run.stdout, table):
        assert "…" not in text
    assert run_id in run.stdout and long_model in run.stdout
    # One greppable line per run: the id, the suite and the counts on the same line.
    line = next(ln for ln in table.splitlines() if run_id in ln)
    assert "echo" in line and "3/3" in line and "completed" in line


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    run = cli(project, "run", "evalsets/echo.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [ln for ln in run.stderr.splitlines() if "units" in ln]
    assert lines and lines[-1].startswith("echo: 3/3 units"), run.stderr
    quiet = cli(project, "run", "evalsets/echo.yaml", "--no-progress")
    assert "units," not in quiet.stderr


def test_prompts_label_sets_the_label_instead_of_printing_the_version(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    out = cli(project, "prompts", "label", "rag_answer", "staging", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "llmops 0." not in out.stdout and "rag_answer@staging -> v1" in out.stdout
    assert "staging: 1" in (project / "prompts" / "rag_answer" / "labels.yaml").read_text()
    assert cli(project, "--version").stdout.startswith("llmops ")


def test_a_wrong_baseline_path_exits_2_before_any_call(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    out = cli(project, "run", "evalsets/echo.yaml", "--no-progress", "--baseline", "evalsets/baselines/nope.json")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--baseline evalsets/baselines/nope.json: no such file" in out.stderr
    assert not (project / ".llmops" / "runs.sqlite").exists()  # nothing ran


def test_the_run_that_writes_the_baseline_does_not_ask_for_one(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    out = cli(project, "run", "evalsets/echo.yaml", "--no-progress", "--update-baseline")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "--update-baseline" not in out.stdout
    assert "this run is the new baseline (" in out.stdout and "baselines/echo.json" in out.stdout
    again = cli(project, "run", "evalsets/echo.yaml", "--no-progress")
    assert "no baseline" not in again.stdout and again.returncode == 0


def test_project_evaluators_are_usable_from_llmops_run_without_pythonpath(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", pyproject=PYPROJECT.replace(
        'store_path = ".llmops/runs.sqlite"', 'store_path = ".llmops/runs.sqlite"\nevaluator_modules = ["checks"]'))
    (project / "checks.py").write_text(
        "from llmops import Evaluator, register_evaluator\n\n"
        "@register_evaluator('shouty')\n"
        "class Shouty(Evaluator):\n"
        "    version = '1'\n\n"
        "    async def score(self, sample, ctx):\n"
        "        return (1.0, 'has a question') if 'question' in sample.output else (0.0, 'no question')\n\n\n"
        "def short(sample):\n"
        "    return len(sample.output) < 2000\n")
    (project / "evalsets" / "echo.yaml").write_text(SUITE.replace(
        "  - contains: {name: mentions}", "  - contains: {name: mentions}\n  - shouty\n"
        "  - python: {name: short, function: 'checks:short'}"))
    out = cli(project, "run", "evalsets/echo.yaml", "--no-progress", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    results = json.loads(out.stdout)["run"]["results"]
    names = {s["name"]: s["status"] for r in results for s in r["scores"]}
    assert names == {"mentions": "pass", "shouty": "pass", "short": "pass"}
    # A module that cannot be imported is a configuration error naming it (exit 2).
    (project / "checks.py").write_text("import not_a_module_anywhere\n")
    bad = cli(project, "run", "evalsets/echo.yaml", "--no-progress")
    assert bad.returncode == 2 and "evaluator_modules: cannot import 'checks'" in bad.stderr


@pytest.mark.parametrize("columns", ["80", "200"])
def test_runs_list_json_is_complete(tmp_path: Path, columns: str) -> None:
    project = make_project(tmp_path / "p")
    assert cli(project, "run", "evalsets/echo.yaml", "--no-progress").returncode == 0
    listed = cli(project, "runs", "list", "--json", env={"COLUMNS": columns})
    (row,) = json.loads(listed.stdout)
    assert set(row) >= {"run_id", "suite", "status", "units", "units_done", "results", "cost_usd", "git_commit"}
    assert row["results"] == {"pass": 3}


def _server_project(root: Path, base: str, cases: int) -> Path:
    """A project whose model is the loopback provider double (no retries: an error stays an error)."""
    pyproject = PYPROJECT.replace('cache = "read-write"', 'cache = "read-write"\nmax_retries = 0\nconcurrency = 1')
    pyproject += ('\n[tool.llmops.models]\n'
                  f'srv = {{ model = "openai/gpt-4o-mini", params = {{ api_base = "{base}" }} }}\n')
    rows = "\n".join(f"  - {{id: case-{i}, inputs: {{question: 'q{i}'}}, expected: q{i}}}" for i in range(cases))
    suite = ("name: echo\nprompt: rag_answer@2\nmodels: [srv]\nevaluators:\n  - contains: {name: mentions}\n"
             "gate: {min_pass_rate: 0.5}\ncases:\n" + rows + "\n")
    return make_project(root, suite=suite, pyproject=pyproject)


def test_resume_retry_errors_runs_the_errored_units_again(tmp_path: Path) -> None:
    from llmops.testing import Fault, ProviderServer

    with ProviderServer(api_key="sk-test") as server:
        project = _server_project(tmp_path / "p", server.openai_base, cases=4)
        env = {"OPENAI_API_KEY": "sk-test"}
        server.script(*[Fault.error(503)] * 2)  # an outage: the first two calls fail
        first = cli(project, "run", "evalsets/echo.yaml", "--no-progress", env=env)
        run_id = json.loads(cli(project, "runs", "list", "--json").stdout)[0]["run_id"]
        assert json.loads(cli(project, "runs", "list", "--json").stdout)[0]["results"] == {"error": 2, "pass": 2}, \
            first.stdout
        # A plain resume has nothing to do: every unit has a result.
        assert server.stats().requests == 4
        cli(project, "run", "--resume", run_id, "--no-progress", env=env)
        assert server.stats().requests == 4
        retried = cli(project, "run", "--resume", run_id, "--retry-errors", "--no-progress", "--json", env=env)
        assert retried.returncode == 0, retried.stdout + retried.stderr
        (row,) = [r for r in json.loads(cli(project, "runs", "list", "--json").stdout) if r["run_id"] == run_id]
        assert row["results"] == {"pass": 4} and row["status"] == "completed"
        assert server.stats().requests == 6
    bad = cli(project, "run", "evalsets/echo.yaml", "--retry-errors")
    assert bad.returncode == 2 and "--resume" in bad.stderr


def _default_sigint() -> None:
    """Give the child the SIGINT a terminal user has: a CI runner that starts the test suite as a
    background job hands it SIGINT ignored, Python then keeps it ignored, and Ctrl-C never arrives."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_names_the_run_marks_it_interrupted_and_prints_the_resume_command(tmp_path: Path) -> None:
    import signal
    import time

    from llmops.testing import ProviderServer

    with ProviderServer(api_key="sk-test", latency_s=0.5) as server:
        project = _server_project(tmp_path / "p", server.openai_base, cases=20)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "LANGFUSE_"))}
        base.update({"PYTHONPATH": str(REPO), "COLUMNS": "80", "OPENAI_API_KEY": "sk-test"})
        proc = subprocess.Popen([sys.executable, "-P", "-m", "llmops", "run", "evalsets/echo.yaml"], cwd=project,
                                env=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, preexec_fn=_default_sigint)
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        seen = ""
        while time.monotonic() < deadline:  # wait until units are being stored
            line = proc.stderr.readline()
            seen += line
            if line.startswith("echo: ") and not line.startswith("echo: 0/"):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        err = seen + err
        assert proc.returncode == 130, out + err
        (row,) = json.loads(cli(project, "runs", "list", "--json").stdout)
        run_id = row["run_id"]
        assert row["status"] == "interrupted" and 0 < row["units_done"] < 20
        assert f"interrupted: run {run_id}" in err and f"resume with: llmops run --resume {run_id}" in err
        resumed = cli(project, "run", "--resume", run_id, "--no-progress", env={"OPENAI_API_KEY": "sk-test"})
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        (row,) = json.loads(cli(project, "runs", "list", "--json").stdout)
        assert row["status"] == "completed" and row["units_done"] == 20


def test_init_source_is_a_direct_reference_never_the_index_name(tmp_path: Path) -> None:
    from llmops.scaffold import llmops_source

    assert llmops_source("git+https://example.invalid/org/llmops@v1").requirement == \
        "llmops @ git+https://example.invalid/org/llmops@v1"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    plain = llmops_source(str(checkout))
    assert plain.requirement == f"llmops @ {checkout.resolve().as_uri()}"
    assert "only on this machine" in str(plain.warning)
    git = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    for args in (["init", "-q"], ["remote", "add", "origin", "git@example.invalid:org/llmops.git"],
                 ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", "-C", str(checkout), *args], check=True, env=git, capture_output=True)
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    pinned = llmops_source(str(checkout))
    assert pinned.requirement == f"llmops @ git+ssh://git@example.invalid/org/llmops.git@{head}"
    assert pinned.warning is None
    out = cli(tmp_path, "init", "proj", "--source", str(checkout))
    assert out.returncode == 0, out.stderr
    assert f'pip install "{pinned.requirement}"' in (tmp_path / "proj/.github/workflows/llmops.yml").read_text()
    assert "pip install llmops\n" not in (tmp_path / "proj/.github/workflows/llmops.yml").read_text()


def test_fake_models_answer_from_a_yaml_file_named_in_the_config(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", suite=SUITE.replace("[fake/echo]", "[fake/scripted]"),
                           pyproject=PYPROJECT + 'fake_answers = "evalsets/fake-answers.yaml"\n')
    (project / "evalsets" / "fake-answers.yaml").write_text(
        'fake/scripted:\n  - {contains: "alpha", answer: "alpha it is"}\n  - {contains: "beta", answer: "beta"}\n'
        '  - {answer: "no idea"}\n')
    out = cli(project, "run", "evalsets/echo.yaml", "--no-progress", "--cache", "off", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    outputs = {r["case_id"]: (r["output"], r["status"]) for r in json.loads(out.stdout)["run"]["results"]}
    assert outputs == {"case-one": ("alpha it is", "pass"), "case-two": ("beta", "pass"),
                       "case-three": ("no idea", "fail")}
    # No rule matches: a provider error that names the file.
    (project / "evalsets" / "fake-answers.yaml").write_text('fake/scripted:\n  - {contains: "alpha", answer: "a"}\n')
    out = cli(project, "run", "evalsets/echo.yaml", "--no-progress", "--cache", "off", "--json")
    errors = [r["error"] for r in json.loads(out.stdout)["run"]["results"] if r["status"] == "error"]
    assert len(errors) == 2 and all("fake-answers.yaml: no rule of fake/scripted matches" in e for e in errors)
    # A file of the wrong shape is a configuration error (exit 2) naming the file.
    (project / "evalsets" / "fake-answers.yaml").write_text("fake/scripted: [{reply: x}]\n")
    bad = cli(project, "run", "evalsets/echo.yaml", "--no-progress", "--cache", "off")
    assert bad.returncode == 2 and "fake-answers.yaml" in bad.stderr and "rules" in bad.stderr, bad.stderr
