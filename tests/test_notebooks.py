"""Every notebook runs offline on the embedded model; a broken notebook fails CI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.local_model
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path) -> None:
    # A copy of the project, so the run store and cache of the repository are not touched.
    for item in ("pyproject.toml", "prompts", "evalsets"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    (tmp_path / "notebooks").mkdir()
    # In its own process: nbclient drives the kernel with an event loop of its own, which must not
    # stay marked as running in this test session's thread.
    executed = tmp_path / path.name
    out = subprocess.run([sys.executable, "-c", RUNNER, str(path), str(tmp_path / "notebooks"), str(executed)],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    check_claims(path.stem, outputs_text(json.loads(executed.read_text(encoding="utf-8"))))


def outputs_text(nb: dict) -> str:  # type: ignore[type-arg]
    parts = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            text = o.get("text") or o.get("data", {}).get("text/plain") or ""
            parts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(parts)


def check_claims(stem: str, text: str) -> None:
    """What the notebooks' text claims about their outputs holds for these outputs."""
    if stem.startswith("02"):
        # Two different models compared (not one model twice with the same parameters).
        assert "local/smollm2" in text and "fake/echo" in text, text[-2000:]
    if stem.startswith("04"):
        counts = {v: (int(a), int(b)) for v, a, b in
                  re.findall(r"rag_answer@(\d): (\d+) of (\d+) answers fully supported", text)}
        assert set(counts) == {"1", "2"}, text[-2000:]
        assert counts["2"][0] >= counts["1"][0]  # "v2 is never worse than v1 here"
        assert counts["2"][0] < counts["2"][1]  # "and still fails cases"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_store_their_outputs(path: Path) -> None:
    """Readers see the outputs without running anything (python notebooks/store_outputs.py)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        assert cell.get("outputs"), f"{path.name}: a cell without stored output: {source[:80]!r}"
        assert not [o for o in cell["outputs"] if o["output_type"] == "error"], f"{path.name}: {source[:80]!r}"
        assert "/tmp/" not in json.dumps(cell["outputs"]), f"{path.name}: a scratch path in the outputs"
        assert "\\u001b[" not in json.dumps(cell["outputs"]), f"{path.name}: terminal escapes in the outputs"
    check_claims(path.stem, outputs_text(nb))


RUNNER = """
import sys
import nbformat
from nbclient import NotebookClient

nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(nb, sys.argv[3])
errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
if errors:
    sys.exit("cell error: " + errors[0].get("ename", "") + ": " + errors[0].get("evalue", ""))
"""


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 2
