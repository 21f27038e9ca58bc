"""Execute the notebooks in a scratch copy of the project and store their outputs in place.

    python notebooks/store_outputs.py [NOTEBOOK ...]

Each notebook runs offline on the embedded model, as ``tests/test_notebooks.py`` runs it; the
outputs written back are what a reader sees on GitHub without running anything.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent


def execute(path: Path, workdir: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` executed with ``workdir`` as its folder (a copy of the project)."""
    for item in ("pyproject.toml", "prompts", "evalsets"):
        src, dest = REPO / item, workdir / item
        if not dest.exists():
            (shutil.copytree if src.is_dir() else shutil.copy)(src, dest)
    (workdir / "notebooks").mkdir(exist_ok=True)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir / "notebooks")}}).execute()
    return nb


def main(argv: list[str]) -> int:
    """Execute and store every notebook named (default: all)."""
    paths = [Path(a) for a in argv] or sorted((REPO / "notebooks").glob("*.ipynb"))
    for path in paths:
        with tempfile.TemporaryDirectory() as tmp:
            nb = execute(path, Path(tmp))
        for cell in nb.cells:  # the scratch folder's path says nothing to a reader
            for out in cell.get("outputs", []):
                if "text" in out:
                    out["text"] = out["text"].replace(tmp, ".")
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, path)
        print("stored", path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
