"""`llmops compare` traces its runs as `llmops run` does (issue 19 move 5: compare runs were never traced)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from llmops.tracing import TraceStore

REPO = Path(__file__).resolve().parents[2]


def test_compare_records_one_trace_per_unit_of_every_variant(tmp_path: Path) -> None:
    (tmp_path / "prompts" / "greet").mkdir(parents=True)
    (tmp_path / "prompts" / "greet" / "v1.jinja").write_text("Say hello to {{ name }}.\n", encoding="utf-8")
    (tmp_path / "prompts" / "greet" / "v2.jinja").write_text("Say goodbye to {{ name }}.\n", encoding="utf-8")
    (tmp_path / "evalsets").mkdir()
    cases = "\n".join(f"  - {{id: c{i}, inputs: {{name: person{i}}}}}" for i in range(3))
    (tmp_path / "evalsets" / "greet.yaml").write_text(
        "name: greet\nprompts: [greet@1, greet@2]\nmodels: [fake/echo]\nevaluators:\n"
        f"  - contains: {{value: hello}}\ncases:\n{cases}\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "-m", "llmops", "compare", "evalsets/greet.yaml", "--no-progress"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    store = TraceStore(tmp_path / ".llmops" / "traces.sqlite")
    assert store.exists(), "compare recorded no trace"
    traces = store.traces(limit=100)
    assert len(traces) == 6  # 3 cases x 2 prompt versions
    assert sorted(p for t in traces for p in t.prompts) == ["greet@1"] * 3 + ["greet@2"] * 3
    assert all(set(t.scores) == {"contains"} for t in traces)
