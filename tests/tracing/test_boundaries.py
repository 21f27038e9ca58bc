"""Tracing's inner boundaries (issue 19 move 3), checked on the source so they cannot drift back."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "llmops"


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from module import name`` in a file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.module or "", alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            for alias in node.names]


def test_the_tracer_uses_observe_through_its_public_accessors() -> None:
    private = [(m, n) for m, n in _imports(PKG / "tracing" / "tracer.py")
               if m == "llmops.tracing.observe" and n.startswith("_")]
    assert private == []


def test_the_exporter_contract_is_a_leaf_the_tracer_and_exporters_share() -> None:
    from llmops.tracing import exporter, langfuse_exporter, tracer

    assert tracer.ExportStats is exporter.ExportStats and tracer.Exporter is exporter.Exporter
    assert not [m for m, _ in _imports(PKG / "tracing" / "exporter.py") if m == "llmops.tracing.tracer"]
    assert ("llmops.tracing.tracer", "ExportStats") not in _imports(PKG / "tracing" / "langfuse_exporter.py")
    assert langfuse_exporter.ExportStats is exporter.ExportStats


def test_exit_hooks_of_tracing_are_registered_in_one_place() -> None:
    calls = []
    for path in (PKG / "tracing").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)
                            and inner.func.attr in ("register", "_register_atexit")
                            and isinstance(inner.func.value, ast.Name) and inner.func.value.id == "atexit"):
                        calls.append((path.name, node.name))
        # No exit hook is registered at import time.
        top = [n for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
               and isinstance(n.value.func, ast.Attribute) and n.value.func.attr == "register"]
        assert top == [], path.name
    assert set(calls) == {("tracer.py", "ensure_exit_hooks")}


def test_the_version_comes_from_a_leaf_module() -> None:
    for rel in ("runner/engine.py", "evaluators/calibration.py", "scaffold.py"):
        assert ("llmops", "__version__") not in _imports(PKG / rel), rel
    import llmops
    from llmops._version import __version__

    assert llmops.__version__ == __version__
