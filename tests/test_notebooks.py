"""Every notebook runs offline on the embedded model; a broken notebook fails CI."""

from __future__ import annotations

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
    out = subprocess.run([sys.executable, "-c", RUNNER, str(path), str(tmp_path / "notebooks")],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]


RUNNER = """
import sys
import nbformat
from nbclient import NotebookClient

nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
if errors:
    sys.exit("cell error: " + errors[0].get("ename", "") + ": " + errors[0].get("evalue", ""))
"""


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 2
