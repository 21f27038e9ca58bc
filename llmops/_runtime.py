"""Process-wide switches that only the ``llmops`` command sets for its own process.

A library user's process keeps Python's defaults; the CLI opts in (see :mod:`llmops.cli`).
This module imports nothing, so the CLI can set the switches without slowing ``--help``.
"""

from __future__ import annotations

import gc

# After LiteLLM's import (~200 MB of long-lived objects), move everything allocated so far out of
# the garbage collector's generations: each full collection during a run then walks only what the
# run allocates, not LiteLLM's modules (measured: GC time per 1,000 calls cut by about half).
freeze_heap_after_import = False


def after_heavy_import() -> None:
    """Called once a heavy dependency (LiteLLM) is imported: freeze the heap if the process opted in."""
    if freeze_heap_after_import:
        gc.freeze()
