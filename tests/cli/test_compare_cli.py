"""`llmops compare` as a user runs it: a fresh folder, the documented commands, piped output at 80 columns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([sys.executable, "-m", "llmops", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def test_compare_two_prompt_versions_from_outside(tmp_path: Path) -> None:
    (tmp_path / "prompts" / "greet").mkdir(parents=True)
    (tmp_path / "prompts" / "greet" / "v1.jinja").write_text("Say hello to {{ name }}.\n", encoding="utf-8")
    (tmp_path / "prompts" / "greet" / "v2.jinja").write_text("Say goodbye to {{ name }}.\n", encoding="utf-8")
    (tmp_path / "evalsets").mkdir()
    cases = "\n".join(f"  - {{id: c{i:02d}, inputs: {{name: person{i}}}}}" for i in range(12))
    (tmp_path / "evalsets" / "greet.yaml").write_text(
        "name: greet\nprompts: [greet@1, greet@2]\nmodels: [fake/echo]\nevaluators:\n"
        f"  - contains: {{value: hello}}\ncases:\n{cases}\n", encoding="utf-8")
    done = _cli(tmp_path, "compare", "evalsets/greet.yaml", "--html", "compare.html", "--no-progress")
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())  # the verdict paragraph wraps at 80 columns
    assert "Against the reference greet@1 (pass rate 100%): greet@2: significantly lower (-100 pts, " \
           "95% CI -100 pts to -100 pts" in out
    assert "correction: Holm over 1 comparison against the reference greet@1" in out
    assert "With 12 paired cases, a true difference in pass rate smaller than about" in out
    assert "\x1b[" not in done.stdout and "Traceback" not in done.stderr
    html = (tmp_path / "compare.html").read_text(encoding="utf-8")
    assert "Compared with the reference greet@1" in html and '"name": "person0"' in html
    # The other version as the reference, and a reference that is not in the run.
    flipped = _cli(tmp_path, "compare", "evalsets/greet.yaml", "--reference", "greet@2", "--no-progress")
    assert flipped.returncode == 0 and "greet@1: significantly higher (+100 pts" in " ".join(flipped.stdout.split())
    bad = _cli(tmp_path, "compare", "evalsets/greet.yaml", "--reference", "greet@9", "--no-progress")
    assert bad.returncode == 2
    assert "--reference 'greet@9' names no variant of this run; use one of: greet@1, greet@2" in bad.stderr
    assert "Traceback" not in bad.stderr
