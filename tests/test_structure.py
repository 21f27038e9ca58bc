"""Rules of the code base's structure (issue 19), checked on the source so they cannot drift back."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "llmops"


def test_measured_figures_live_in_the_bench_readme_not_in_code_comments() -> None:
    """"~20% of a call's CPU" in a comment goes stale; bench/README.md is measured again."""
    measured = re.compile(r"~\s?\d+(\.\d+)?\s?(%|x\b|×)")
    found = [f"{p.relative_to(PKG)}:{i}" for p in PKG.rglob("*.py")
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if measured.search(line)]
    assert found == [], found


def test_no_module_imports_another_packages_underscore_names() -> None:
    """Private names stay inside their package (``llmops.tracing._x`` is for ``llmops.tracing`` only)."""
    found = []
    for path in PKG.rglob("*.py"):
        here = ".".join(("llmops", *path.relative_to(PKG).parts[:-1]))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("llmops."):
                continue
            parts = node.module.split(".")  # type: ignore[union-attr]
            if len(parts) < 3 or here == ".".join(parts[:2]) or here.startswith(".".join(parts[:2]) + "."):
                continue  # a top-level module of llmops, or an import inside the package
            private = [a.name for a in node.names if a.name.startswith("_")]
            if private or any(p.startswith("_") for p in parts[2:]):
                found.append(f"{path.relative_to(PKG)}:{node.lineno} {node.module} {private}")
    assert found == [], found
