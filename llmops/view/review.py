"""Human review marks: the one thing ``llmops view`` writes.

Marks are rows of the project's labels file (``review_path``, default ``review/labels.jsonl``),
in exactly the format ``llmops calibrate --labels`` reads (see
:mod:`llmops.evaluators.calibration`): one JSON object per line with ``id``, ``output``,
``label`` (``pass``/``fail``), ``inputs``, ``contexts``, ``expected`` and ``metadata`` (where the
output came from, the reviewer's note, when, and the evaluators' own verdicts at the time). The
file is plain and sorted by id so it diffs and reviews well; marking an output again replaces its
row. Rows the viewer did not write (hand-made labels) are kept as they are.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from llmops.errors import UserError
from llmops.view.queries import (
    ReviewMark,
    ViewProject,
    _clean,
    _clean_text,
    _suite_case,
    review_id_for_span,
    review_id_for_unit,
)

_WRITE_LOCK = threading.Lock()
#: Longest note kept (characters).
MAX_NOTE = 2000


def labels_path(project: ViewProject) -> Path:
    """The project's labels file (``review_path``)."""
    return project.settings.path(project.settings.review_path)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"not a JSON object: {exc.msg}", file=path, line=number,
                            hint="fix or delete the line; the viewer rewrites the file when it saves a mark") from None
        if not isinstance(data, dict):
            raise UserError("not a JSON object", file=path, line=number)
        rows.append(data)
    return rows


def load_marks(project: ViewProject) -> dict[str, ReviewMark]:
    """Every mark in the labels file, by id (rows without an id or a pass/fail label are skipped)."""
    from llmops.evaluators.calibration import parse_label

    out: dict[str, ReviewMark] = {}
    for row in _read_rows(labels_path(project)):
        rid = row.get("id")
        if rid is None:
            continue
        try:
            label = parse_label(row.get("label"))
        except ValueError:
            continue
        meta = row["metadata"] if isinstance(row.get("metadata"), dict) else {}
        out[str(rid)] = ReviewMark(id=str(rid), label="pass" if label else "fail", note=str(meta.get("note", "")),
                                   at=str(meta.get("at", "")))
    return out


class ReviewTarget(BaseModel):
    """What a mark labels: a run's unit output or a trace generation's output."""

    kind: Literal["run", "trace"]
    run_id: str | None = None
    unit: str | None = None
    trace_id: str | None = None
    span_id: str | None = None


def _row_for_unit(project: ViewProject, run_id: str, unit: str) -> dict[str, Any]:
    from llmops.runner.results import UnitResult

    store = project.runs
    rid = store.resolve_id(run_id)
    rows = store._execute("SELECT result FROM results WHERE run_id = ? AND unit = ?", (rid, unit))
    if not rows:
        raise UserError(f"run {rid} has no unit '{unit}'", key=unit)
    result = store._parse(UnitResult, rows[0][0], f"result in run {rid}")
    manifest = store.manifest(rid)
    case = _suite_case(project, manifest, result.case_id)
    return {
        "id": review_id_for_unit(rid, result.key),
        "output": _clean_text(result.output) or "",
        "inputs": _clean(dict(case.inputs)) if case is not None else {},
        "contexts": [_clean_text(c) for c in case.contexts] if case is not None else [],
        "expected": _clean_text(case.expected) if case is not None else None,
        "metadata": {"source": "run", "run_id": rid, "suite": manifest.suite, "case_id": result.case_id,
                     "prompt": result.prompt, "model": result.model, "repeat": result.repeat,
                     "evaluators": {s.name: {"evaluator": s.evaluator, "status": s.status}
                                    for s in result.scores}},
    }


def _row_for_span(project: ViewProject, trace_id: str, span_id: str) -> dict[str, Any]:
    from llmops.tracing.store import dumps

    detail = project.traces.trace(trace_id)
    span = next((s for s in detail.spans if s.span_id == span_id), None)
    if span is None or span.kind != "generation":
        raise UserError(f"trace {detail.trace_id} has no generation '{span_id}'", key=span_id)
    root = detail.root
    inputs = root.input if isinstance(root.input, dict) else {}
    output = span.output if isinstance(span.output, str) else ("" if span.output is None else dumps(span.output))
    scores = {s.name: {"evaluator": s.metadata.get("evaluator", ""), "status": s.status}
              for s in detail.scores if s.span_id in (None, span_id)}
    return {
        "id": review_id_for_span(detail.trace_id, span_id),
        "output": output,
        "inputs": inputs,
        "contexts": [],
        "expected": None,
        "metadata": {"source": "trace", "trace_id": detail.trace_id, "span_id": span_id,
                     "trace_name": root.trace_name or root.name, "model": span.resolved_model or span.model,
                     "prompt": span.prompt_ref, "evaluators": scores},
    }


class SavedMark(BaseModel):
    """The outcome of :func:`save_mark`."""

    mark: ReviewMark
    path: str
    labelled: int


def save_mark(project: ViewProject, target: ReviewTarget, label: str, note: str = "",
              reviewer: str | None = None) -> SavedMark:
    """Label one output pass or fail (replacing an earlier mark on it) in the labels file.

    Args:
        project: The open project.
        target: The run unit or trace generation whose output is labelled.
        label: ``pass`` or ``fail``; ``clear`` removes the mark.
        note: An optional note (kept in the row's metadata).
        reviewer: Who marked it (kept in the row's metadata when given).

    Raises:
        UserError: for an unknown target or label.
    """
    if label not in ("pass", "fail", "clear"):
        raise UserError(f"label must be pass, fail or clear, got {label!r}", key="label")
    if target.kind == "run":
        if not target.run_id or not target.unit:
            raise UserError("a run mark needs run_id and unit", key="unit")
        row = _row_for_unit(project, target.run_id, target.unit)
    else:
        if not target.trace_id or not target.span_id:
            raise UserError("a trace mark needs trace_id and span_id", key="span_id")
        row = _row_for_span(project, target.trace_id, target.span_id)
    at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    row["label"] = label
    row["metadata"]["note"] = note[:MAX_NOTE]
    row["metadata"]["at"] = at
    if reviewer:
        row["metadata"]["reviewer"] = reviewer[:200]
    path = labels_path(project)
    with _WRITE_LOCK:
        rows = [r for r in _read_rows(path) if str(r.get("id")) != row["id"]]
        if label != "clear":
            rows.append(row)
        rows.sort(key=lambda r: (r.get("id") is None, str(r.get("id"))))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows),
                       encoding="utf-8")
        os.replace(tmp, path)
    mark = ReviewMark(id=row["id"], label="pass" if label == "pass" else "fail", note=row["metadata"]["note"], at=at)
    return SavedMark(mark=mark, path=str(path), labelled=len(rows))


class EvaluatorReview(BaseModel):
    """Per evaluator kind: how many reviewed outputs it scored, and its last calibration."""

    evaluator: str
    names: list[str] = Field(default_factory=list)
    labelled: int = 0
    agree: int = 0
    disagree: int = 0
    last_calibration: str | None = None
    kappa: float | None = None
    calibrated_n: int | None = None


class ReviewSummary(BaseModel):
    """The labels file at a glance."""

    path: str
    labelled: int
    passed: int
    failed: int
    evaluators: list[EvaluatorReview]


def review_summary(project: ViewProject) -> ReviewSummary:
    """The labels file at a glance, per evaluator kind.

    For each kind: how many labelled outputs it scored, how often its verdict at run time agreed
    with the reviewer's, and its last stored ``llmops calibrate`` result.
    """
    from llmops.evaluators.calibration import CALIBRATION_DIR, CalibrationFile, parse_label

    path = labels_path(project)
    rows = _read_rows(path)
    per: dict[str, EvaluatorReview] = {}
    passed = failed = 0
    for row in rows:
        try:
            human = parse_label(row.get("label"))
        except ValueError:
            continue
        passed += human
        failed += not human
        meta: dict[str, Any] = row["metadata"] if isinstance(row.get("metadata"), dict) else {}
        evaluators: dict[str, Any] = meta["evaluators"] if isinstance(meta.get("evaluators"), dict) else {}
        for name, info in evaluators.items():
            if not isinstance(info, dict):
                continue
            kind = str(info.get("evaluator") or name)
            entry = per.setdefault(kind, EvaluatorReview(evaluator=kind))
            if name not in entry.names:
                entry.names.append(name)
            entry.labelled += 1
            if info.get("status") in ("pass", "fail"):
                if (info.get("status") == "pass") == human:
                    entry.agree += 1
                else:
                    entry.disagree += 1
    folder = project.root / CALIBRATION_DIR
    if folder.is_dir():
        for file in sorted(folder.glob("*@v*.json")):
            try:
                stored = CalibrationFile.model_validate_json(file.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                continue
            if not stored.entries:
                continue
            latest = max(stored.entries.values(), key=lambda r: r.created_at)
            entry = per.setdefault(stored.evaluator, EvaluatorReview(evaluator=stored.evaluator))
            if entry.last_calibration is None or latest.created_at > entry.last_calibration:
                entry.last_calibration = latest.created_at
                entry.kappa = latest.kappa
                entry.calibrated_n = latest.n
    return ReviewSummary(path=str(path), labelled=passed + failed, passed=passed, failed=failed,
                         evaluators=sorted(per.values(), key=lambda e: e.evaluator))
