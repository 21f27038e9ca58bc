"""``llmops view``: a local web app over the run store, the trace store and the prompt registry.

The queries behind every page are public and work in a notebook; the web layer
(:mod:`llmops.view.app`, Starlette on uvicorn) only renders them. Its one write is a human
review mark, in the labels file ``llmops calibrate`` reads.
"""

from __future__ import annotations

from llmops.view.queries import (
    CellDetail,
    PromptDiff,
    PromptInfo,
    ReviewMark,
    RunMatrix,
    RunProgress,
    RunRow,
    RunsPage,
    SideBySide,
    TracesPage,
    TraceView,
    ViewProject,
    cell_detail,
    list_prompts,
    list_runs,
    list_traces,
    open_project,
    prompt_diff,
    run_matrix,
    run_progress,
    side_by_side,
    trace_view,
    word_diff,
)
from llmops.view.review import ReviewSummary, ReviewTarget, load_marks, review_summary, save_mark

__all__ = [
    "CellDetail",
    "PromptDiff",
    "PromptInfo",
    "ReviewMark",
    "ReviewSummary",
    "ReviewTarget",
    "RunMatrix",
    "RunProgress",
    "RunRow",
    "RunsPage",
    "SideBySide",
    "TraceView",
    "TracesPage",
    "ViewProject",
    "cell_detail",
    "list_prompts",
    "list_runs",
    "list_traces",
    "load_marks",
    "open_project",
    "prompt_diff",
    "review_summary",
    "run_matrix",
    "run_progress",
    "save_mark",
    "side_by_side",
    "trace_view",
    "word_diff",
]
