"""``llmops init``: scaffold a project that runs a green suite on the embedded model in minutes.

How a project depends on llmops: the name ``llmops`` on the public package index belongs to an
unrelated placeholder, so the project's ``dependencies`` and the workflow's install step both use
a direct reference, ``llmops @ <source>`` (PEP 508), where the source is the llmops that ran
``init`` (see :func:`llmops_source`) or what ``--source`` gives.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from llmops.errors import UserError

CONFIG = """
[tool.llmops]
prompts_dir = "prompts"
evalsets_dir = "evalsets"
default_model = "local/smollm2"
judge_model = "local/smollm2"
cache = "read-write"
# Committed so CI can replay recorded responses without API keys (`--cache read-only`).
cache_path = "evalsets/.cache/responses.sqlite"
store_path = ".llmops/runs.sqlite"

[tool.llmops.models]
# fast = "openai/gpt-4o-mini"      # uses OPENAI_API_KEY
# smart = "anthropic/claude-sonnet-4-5"
"""

PYPROJECT = """[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["{requirement}"]
""" + CONFIG

PROMPT = """---
description: Answer a question from the given context, in one sentence
inputs:
  question: {type: string, description: The user's question}
  context: {type: string, default: "", description: Retrieved text the answer must come from}
model: local/smollm2
params: {temperature: 0, max_tokens: 48}
---
{% message "system" %}Answer in one short sentence. Use only the facts in the context.{% endmessage %}
{% message "user" %}
Context: {{ context }}
Question: {{ question }}
{% endmessage %}
"""

LABELS = "production: 1\n"

SUITE = """# Editor autocompletion: `llmops schema -o .llmops/suite.schema.json`, then keep the next line.
# yaml-language-server: $schema=../.llmops/suite.schema.json
name: example
description: The example suite created by `llmops init`
prompt: answer@production
models: [local/smollm2]
evaluators:
  - contains: {name: mentions_answer}
  - length: {name: concise, max: 200}
gate:
  min_pass_rate: 0.6
  tolerance: 0.1
cases:
  - id: capital-of-france
    inputs: {question: "What is the capital of France?", context: "Paris is the capital of France."}
    expected: Paris
  - id: python-creator
    inputs: {question: "Who created Python?", context: "Python was created by Guido van Rossum."}
    expected: Guido
  - id: boiling-point
    inputs:
      question: "At what temperature does water boil at sea level?"
      context: "At sea level water boils at 100 degrees Celsius."
    expected: "100"
"""

WORKFLOW = """name: llmops
on:
  pull_request:
    paths: ["prompts/**", "evalsets/**", "pyproject.toml"]
permissions:
  contents: read
  pull-requests: write
jobs:
  prompt-regression:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
      - name: Install
        run: pip install "{requirement}"
      - name: Prompt versions are locked
        run: llmops prompts check
      # Replay mode: answers come from the committed response cache, so no API key is needed
      # and the verdict is deterministic. A prompt change without recorded answers fails with
      # a message naming the request: record it locally with `llmops run` and commit the cache.
      - name: Regression suite (replay)
        run: llmops run evalsets/example.yaml --cache read-only --no-progress --markdown llmops-summary.md
      - name: Step summary
        if: always()
        run: cat llmops-summary.md >> "$GITHUB_STEP_SUMMARY" || true
      - name: Comment on the pull request
        if: always() && github.event.pull_request.head.repo.full_name == github.repository
        env:
          GH_TOKEN: ${{ github.token }}
          PR: ${{ github.event.pull_request.number }}
        run: |
          gh pr comment "$PR" --body-file llmops-summary.md --edit-last \\
            || gh pr comment "$PR" --body-file llmops-summary.md || true
"""

# The run store is local; SQLite's side files are never committed (llmops checkpoints its
# files on exit, so the committed response cache is complete on its own).
GITIGNORE = ".llmops/\n*.sqlite-wal\n*.sqlite-shm\n"


@dataclass(frozen=True)
class Source:
    """Where a project installs llmops from.

    Attributes:
        requirement: The PEP 508 requirement written to ``dependencies`` and the workflow.
        warning: Why this source may not work on a CI runner, if it may not.
    """

    requirement: str
    warning: str | None = None


def _git(folder: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _vcs_url(remote: str) -> str:
    """``git+`` URL of a git remote (``git@host:org/repo.git`` becomes ``git+ssh://git@host/org/repo.git``)."""
    if "://" not in remote and ":" in remote:
        host, _, path = remote.partition(":")
        remote = f"ssh://{host}/{path}"
    return remote if remote.startswith("git+") else f"git+{remote}"


def _from_folder(folder: Path) -> Source:
    remote = _git(folder, "remote", "get-url", "origin")
    commit = _git(folder, "rev-parse", "HEAD")
    if remote and commit:
        return Source(f"llmops @ {_vcs_url(remote)}@{commit}",
                      warning=None if not _git(folder, "status", "--porcelain", "--untracked-files=no")
                      else f"{folder} has uncommitted changes: CI installs commit {commit[:12]} without them")
    return Source(f"llmops @ {folder.resolve().as_uri()}",
                  warning=f"{folder} exists only on this machine: a CI runner cannot install from it; "
                          "pass --source git+https://HOST/ORG/llmops@REF (or edit the two places it is written: "
                          "pyproject.toml and .github/workflows/llmops.yml)")


def llmops_source(source: str | None = None) -> Source:
    """The requirement a new project uses to install llmops.

    Args:
        source: A pip source for llmops: a ``git+https://…@REF`` URL, any other URL, or a local
            folder. None: the llmops running this code, as pip recorded it (PEP 610
            ``direct_url.json``): its git URL and commit when installed from git or from a git
            checkout with an ``origin`` remote, else its folder (with a warning), else its version.

    Returns:
        The requirement and, when CI may not reach it, why.
    """
    if source:
        if "://" in source or source.startswith("git+"):
            return Source(f"llmops @ {source}")
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise UserError(f"--source {source}: not a URL and not a folder", key="--source",
                            hint="give git+https://HOST/ORG/llmops@REF or the folder of an llmops checkout")
        return _from_folder(folder)
    from importlib.metadata import PackageNotFoundError, distribution

    from llmops._version import __version__

    try:
        raw = distribution("llmops").read_text("direct_url.json")
    except PackageNotFoundError:
        raw = None
    info = json.loads(raw) if raw else {}
    url = str(info.get("url", ""))
    vcs = info.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("commit_id"):
        return Source(f"llmops @ {vcs.get('vcs', 'git')}+{url}@{vcs['commit_id']}")
    if url.startswith("file:"):
        folder = Path(url2pathname(urlparse(url).path))
        if folder.is_dir():
            return _from_folder(folder)
    if url:
        return Source(f"llmops @ {url}")
    return Source(f"llmops=={__version__}",
                  warning="llmops was not installed from a URL or a folder: the requirement names the "
                          "index distribution 'llmops', which on the public index is not this project; "
                          "pass --source")


def init_project(directory: Path | str = ".", *, force: bool = False, source: Source | None = None) -> list[Path]:
    """Create an example prompt, suite, config and CI workflow in ``directory``.

    ``pyproject.toml`` is created, or gets a ``[tool.llmops]`` table appended when it has none;
    it is never rewritten. Other files are never overwritten unless ``force``.

    Args:
        directory: The project folder (created if needed).
        force: Overwrite existing example files.
        source: Where the project installs llmops from (default: :func:`llmops_source`).

    Returns:
        The files created or changed.

    Raises:
        UserError: listing the files that already exist (without ``force``).
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    requirement = (source or llmops_source()).requirement
    files = {
        root / "prompts" / "answer" / "v1.jinja": PROMPT,
        root / "prompts" / "answer" / "labels.yaml": LABELS,
        root / "evalsets" / "example.yaml": SUITE,
        root / ".github" / "workflows" / "llmops.yml": WORKFLOW.replace("{requirement}", requirement),
    }
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise UserError("refusing to overwrite existing files: " + ", ".join(str(p) for p in existing),
                        hint="pass --force to overwrite them")
    changed: list[Path] = []
    pyproject = root / "pyproject.toml"
    if not pyproject.exists():
        text = PYPROJECT.replace("{name}", root.resolve().name or "project").replace("{requirement}", requirement)
        pyproject.write_text(text, encoding="utf-8")
        changed.append(pyproject)
    elif "[tool.llmops]" not in pyproject.read_text(encoding="utf-8"):
        with pyproject.open("a", encoding="utf-8") as f:
            f.write(CONFIG)
        changed.append(pyproject)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(path)
    gitignore = root / ".gitignore"
    if not gitignore.exists() or ".llmops/" not in gitignore.read_text(encoding="utf-8"):
        with gitignore.open("a", encoding="utf-8") as f:
            f.write(GITIGNORE)
        changed.append(gitignore)
    return changed
