"""``llmops init``: scaffold a project that runs a green suite on the embedded model in minutes."""

from __future__ import annotations

from pathlib import Path

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
dependencies = ["llmops"]
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
        run: pip install llmops
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
          gh pr comment "$PR" --body-file llmops-summary.md --edit-last \
            || gh pr comment "$PR" --body-file llmops-summary.md || true
"""

GITIGNORE = ".llmops/\n"


def init_project(directory: Path | str = ".", *, force: bool = False) -> list[Path]:
    """Create an example prompt, suite, config and CI workflow in ``directory``.

    ``pyproject.toml`` is created, or gets a ``[tool.llmops]`` table appended when it has none;
    it is never rewritten. Other files are never overwritten unless ``force``.

    Returns:
        The files created or changed.

    Raises:
        UserError: listing the files that already exist (without ``force``).
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    files = {
        root / "prompts" / "answer" / "v1.jinja": PROMPT,
        root / "prompts" / "answer" / "labels.yaml": LABELS,
        root / "evalsets" / "example.yaml": SUITE,
        root / ".github" / "workflows" / "llmops.yml": WORKFLOW,
    }
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise UserError("refusing to overwrite existing files: " + ", ".join(str(p) for p in existing),
                        hint="pass --force to overwrite them")
    changed: list[Path] = []
    pyproject = root / "pyproject.toml"
    if not pyproject.exists():
        pyproject.write_text(PYPROJECT.format(name=root.resolve().name or "project"), encoding="utf-8")
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
