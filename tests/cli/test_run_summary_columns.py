"""The run summary's tool-use and streaming columns, from outside: the CLI piped at 80 columns."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = '[project]\nname = "demo"\nversion = "0"\n\n[tool.llmops]\ndefault_model = "fake/echo"\n' \
            'judge_model = "fake/echo"\ncache = "off"\n'
LONG = "fake/a-rather-long-model-name-that-would-not-fit-in-a-column"
STREAMED = f"""\
name: streamed
prompt: rag_answer@2
models: [{LONG}]
params: {{stream: true}}
evaluators:
  - contains: {{name: mentions}}
cases:
  - {{id: one, inputs: {{question: "alpha question"}}, expected: alpha}}
  - {{id: two, inputs: {{question: "beta question"}}, expected: beta}}
"""


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``llmops ARGS`` in ``cwd``: piped (not a terminal), 80 columns."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "LANGFUSE_"))}
    env.update({"PYTHONPATH": str(REPO), "COLUMNS": "80", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    out = subprocess.run([sys.executable, "-P", "-m", "llmops", *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def agent_table(stdout: str) -> list[str]:
    """The lines of the 'tools and streaming' table (title to bottom border)."""
    lines = stdout.splitlines()
    start = lines.index("tools and streaming")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("└"))
    return lines[start:end + 1]


def test_tool_and_ttft_columns_only_when_some_unit_has_them(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT + f'\n[tool.llmops.models]\n"{LONG}" = "fake/echo"\n',
                                             encoding="utf-8")
    for item in ("prompts", "evalsets"):
        shutil.copytree(REPO / item, tmp_path / item)
    (tmp_path / "evalsets" / "streamed.yaml").write_text(STREAMED, encoding="utf-8")

    # An agent suite (the example, on its scripted model): tool calls and steps, no TTFT.
    agent = cli(tmp_path, "run", "evalsets/support_agent.yaml", "--no-progress").stdout
    table = agent_table(agent)
    assert all(len(line) <= 80 for line in table), table
    header = next(line for line in table if "prompt × model" in line)
    assert "tool calls" in header and "steps/task" in header and "TTFT" not in header
    row = next(line for line in table if "support_agent@1" in line)
    # 11 cases; the scripted agent makes 12 tool calls in 23 model calls over them.
    assert row.split("│")[2:4] == ["         12 ", "        2.1 "], row
    data = json.loads(cli(tmp_path, "run", "evalsets/support_agent.yaml", "--no-progress", "--json").stdout)
    (summary,) = data["summary"]
    assert (summary["agent_units"], summary["tool_calls"], summary["ttft_p50_s"]) == (11, 12, None)
    assert summary["steps_per_task"] == sum(
        sum(1 for s in r["trajectory"] if s["kind"] == "model") for r in data["run"]["results"]) / 11 == 23 / 11

    # A streamed suite: TTFT p50/p95, no tool columns; the long variant name wraps within 80 columns.
    streamed = cli(tmp_path, "run", "evalsets/streamed.yaml", "--no-progress").stdout
    table = agent_table(streamed)
    assert all(len(line) <= 80 for line in table), table
    header = "".join(table[:4])
    assert "TTFT p50 ms" in header and "TTFT p95 ms" in header and "tool calls" not in header
    assert "…" not in streamed and LONG in "".join(line.split("│")[1].strip() for line in table if "│" in line)
    data = json.loads(cli(tmp_path, "run", "evalsets/streamed.yaml", "--no-progress", "--json").stdout)
    (summary,) = data["summary"]
    ttfts = sorted(r["ttft_s"] for r in data["run"]["results"])
    assert summary["ttft_p50_s"] == sum(ttfts) / 2 and summary["tool_calls"] is None and ttfts[0] > 0

    # A plain suite: no such table at all.
    plain = cli(tmp_path, "run", "evalsets/smoke.yaml", "--no-progress", "--model", "fake/echo").stdout
    assert "tools and streaming" not in plain and "TTFT" not in plain
