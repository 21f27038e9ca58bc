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


def before_heavy_import() -> bool:
    """Pause the garbage collector for a heavy import if the process opted in; True if paused.

    Importing LiteLLM builds thousands of classes: the collector ran six full collections over
    the growing heap during it, a fifth of the import's time (measured: 3.0-3.3 s with, 2.4-3.1 s
    without), and found under 2,000 unreachable objects. Pass the result to
    :func:`after_heavy_import`.
    """
    if freeze_heap_after_import and gc.isenabled():
        gc.disable()
        return True
    return False


def after_heavy_import(paused: bool = False) -> None:
    """Called once a heavy dependency (LiteLLM) is imported: resume the collector, freeze the heap.

    ``paused`` is what :func:`before_heavy_import` returned. The heap is frozen only if the process
    opted in; the import's few cycles of garbage stay, frozen with it.
    """
    if paused:
        gc.enable()
    if freeze_heap_after_import:
        gc.freeze()
