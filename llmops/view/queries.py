"""The queries behind every page of ``llmops view``, usable from a notebook.

Each function reads the project's run store, trace store or prompt registry and returns pydantic
models (the web layer only renders them, and its JSON API dumps them as they are). Big runs and
big stores are read a page at a time with SQL over indexed columns: nothing here loads a whole
run or every run. Model output, case inputs and trace values are returned as stored (with the
built-in secret patterns redacted, as in traces); escaping is the renderer's job.

Example (in a notebook)::

    from llmops.view import open_project, list_runs, run_matrix
    project = open_project()
    page = list_runs(project, suite="rag")
    matrix = run_matrix(project, page.runs[0].run_id, failures_only=True)
"""

from __future__ import annotations

import difflib
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from llmops._digits import small_int
from llmops.config import Settings, load_settings
from llmops.errors import UserError
from llmops.prompts.registry import PromptRegistry
from llmops.runner.results import Manifest, RunResult, UnitResult
from llmops.runner.store import RunStore
from llmops.tracing.redaction import Redactor
from llmops.tracing.store import SpanRow, TraceDetail, TraceStore, TraceSummary

#: Runs and traces per page by default.
PAGE_SIZE = 50
#: Cases per page of a run's matrix by default.
CASES_PAGE_SIZE = 100
_REDACTOR = Redactor()
#: What a run came to, from its units (not the gate's verdict, which needs a baseline and a gate):
#: ``all_passed`` (completed, no failed or errored unit), ``failures`` (completed with some).
RunOutcome = Literal["running", "all_passed", "failures", "interrupted", "budget_exhausted"]
CellStatus = Literal["pass", "fail", "flaky", "unmeasured", "error", "skipped"]


@dataclass
class ViewProject:
    """The stores and registry of one project, opened once and shared by every query.

    Attributes:
        settings: The project's settings (paths are resolved against ``settings.root``).
        runs: The run store.
        traces: The trace store.
        prompts: The prompt registry.
    """

    settings: Settings
    runs: RunStore
    traces: TraceStore
    prompts: PromptRegistry
    _suites: OrderedDict[tuple[str, float], Any] = field(default_factory=OrderedDict, repr=False)
    _indexes: dict[str, RunIndex] = field(default_factory=dict, repr=False)
    # Comparisons of two variants, keyed by their runs' last result seq (a run that grows is recomputed).
    _comparisons: OrderedDict[tuple[Any, ...], Any] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def root(self) -> Path:
        """The project folder."""
        return self.settings.root

    def close(self) -> None:
        """Close the stores' connections."""
        self.runs.close()
        self.traces.close()


def open_project(root: Path | str | None = None, settings: Settings | None = None) -> ViewProject:
    """Open the stores of the project at ``root`` (default: the nearest folder with pyproject.toml).

    A missing trace store is not created by reading it.
    """
    settings = settings or load_settings(root)
    return ViewProject(settings=settings, runs=RunStore(settings.path(settings.store_path)),
                       traces=TraceStore(settings.path(settings.trace_path)),
                       prompts=PromptRegistry(settings.prompts_path))


def _clean(value: Any) -> Any:
    return _REDACTOR.value(value)


def _clean_text(value: str | None) -> str | None:
    return None if value is None else _REDACTOR.text(value)


# ---- runs list ---------------------------------------------------------------------------------
class VariantRate(BaseModel):
    """Pass rate of one prompt × model in a run."""

    prompt: str
    model: str
    passed: int = 0
    failed: int = 0
    other: int = 0
    pass_rate: float | None = None

    @property
    def label(self) -> str:
        """``prompt × model``."""
        return f"{self.prompt} × {self.model}"


class RunRow(BaseModel):
    """One line of the runs list."""

    run_id: str
    suite: str
    created: float
    started_at: float
    ended_at: float | None
    status: str
    outcome: RunOutcome
    git_commit: str | None = None
    git_dirty: bool | None = None
    units: int
    done: int
    counts: dict[str, int] = Field(default_factory=dict)
    variants: list[VariantRate] = Field(default_factory=list)
    cost_usd: float
    duration_s: float | None = None


class RunsPage(BaseModel):
    """A page of the runs list (newest first)."""

    runs: list[RunRow]
    suites: list[str]
    offset: int
    limit: int
    more: bool


def _outcome(manifest: Manifest, counts: dict[str, int]) -> RunOutcome:
    if manifest.status != "completed":
        return manifest.status
    return "failures" if counts.get("fail", 0) or counts.get("error", 0) else "all_passed"


class RunIndex:
    """What the pages need of a run's results, without their outputs.

    Built in one pass over the rows, then kept up to date from the rows added since (a live run
    is read incrementally, never again from the start).

    Attributes:
        last_seq: The highest result seq read.
        groups: (prompt, model, status) -> [units, cost in USD].
        units: Unit key -> status.
    """

    def __init__(self) -> None:
        self.last_seq = 0
        self.groups: dict[tuple[str, str, str], list[float]] = {}
        self.units: dict[str, str] = {}
        self.lock = threading.Lock()

    def counts(self) -> dict[str, int]:
        """Units by status."""
        out: dict[str, int] = {}
        for (_, _, status), (n, _) in self.groups.items():
            out[status] = out.get(status, 0) + int(n)
        return out


def run_index(project: ViewProject, run_id: str) -> RunIndex:
    """The run's :class:`RunIndex`, brought up to date with the rows stored since the last call."""
    with project._lock:
        index = project._indexes.setdefault(run_id, RunIndex())
    with index.lock:
        rows = project.runs._execute(
            "SELECT seq, unit, json_extract(result, '$.prompt'), json_extract(result, '$.model'), "
            "json_extract(result, '$.status'), json_extract(result, '$.cost_usd') + "
            "json_extract(result, '$.judge_cost_usd') FROM results WHERE run_id = ? AND seq > ? ORDER BY seq",
            (run_id, index.last_seq))
        for seq, unit, prompt, model, status, cost in rows:
            group = index.groups.setdefault((str(prompt), str(model), str(status)), [0, 0.0])
            group[0] += 1
            group[1] += float(cost or 0.0)
            index.units[str(unit)] = str(status)
            index.last_seq = max(index.last_seq, int(seq))
    return index


def run_row(project: ViewProject, manifest: Manifest, created: float | None = None) -> RunRow:
    """The runs-list line of one run: counts and pass rates per variant (see :func:`run_index`)."""
    index = run_index(project, manifest.run_id)
    counts: dict[str, int] = {}
    variants: dict[tuple[str, str], VariantRate] = {}
    spent = 0.0
    with index.lock:
        groups = list(index.groups.items())
    for (prompt, model, status), (n_units, cost) in groups:
        n = int(n_units)
        counts[status] = counts.get(status, 0) + n
        spent += cost
        v = variants.setdefault((prompt, model), VariantRate(prompt=prompt, model=model))
        if status == "pass":
            v.passed += n
        elif status == "fail":
            v.failed += n
        else:
            v.other += n
    for v in variants.values():
        v.pass_rate = v.passed / (v.passed + v.failed) if v.passed + v.failed else None
    end = manifest.ended_at
    running = manifest.status == "running"
    return RunRow(
        run_id=manifest.run_id, suite=manifest.suite, created=created or manifest.started_at,
        started_at=manifest.started_at, ended_at=end, status=manifest.status, outcome=_outcome(manifest, counts),
        git_commit=manifest.git_commit, git_dirty=manifest.git_dirty, units=manifest.units,
        done=sum(counts.values()), counts=counts, variants=sorted(variants.values(), key=lambda v: v.label),
        cost_usd=spent if running else manifest.cost_usd + manifest.judge_cost_usd,
        duration_s=(end - manifest.started_at) if end and manifest.started_at else
        (time.time() - manifest.started_at if running and manifest.started_at else None))


_FAILED_SQL = ("EXISTS (SELECT 1 FROM results r WHERE r.run_id = runs.run_id AND "
               "json_extract(r.result, '$.status') IN ('fail', 'error'))")


def list_runs(project: ViewProject, *, suite: str | None = None, outcome: str | None = None,
              offset: int = 0, limit: int = PAGE_SIZE) -> RunsPage:
    """A page of runs, newest first, optionally of one suite and one outcome.

    Args:
        project: The open project.
        suite: Only runs of this suite.
        outcome: ``running``, ``all_passed`` (completed, no failed or errored unit), ``failures``
            (completed, some unit failed or errored), ``interrupted`` or ``budget_exhausted``.
        offset: Runs to skip (paging).
        limit: Runs per page (at most 500).

    Raises:
        UserError: for an unknown outcome.
    """
    limit = max(1, min(int(limit), 500))
    offset = max(0, int(offset))
    where: list[str] = []
    args: list[Any] = []
    if suite:
        where.append("suite = ?")
        args.append(suite)
    if outcome:
        status = {"all_passed": "completed", "failures": "completed"}.get(outcome, outcome)
        if status not in ("running", "completed", "interrupted", "budget_exhausted"):
            raise UserError(f"unknown outcome '{outcome}'", key="outcome",
                            hint="running, all_passed, failures, interrupted or budget_exhausted")
        where.append("json_extract(manifest, '$.status') = ?")
        args.append(status)
        if outcome == "failures":
            where.append(_FAILED_SQL)
        elif outcome == "all_passed":
            where.append("NOT " + _FAILED_SQL)
    sql = ("SELECT manifest, created FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY created DESC LIMIT ? OFFSET ?")
    rows = project.runs._execute(sql, (*args, limit + 1, offset))
    manifests = [(project.runs._parse(Manifest, blob, "manifest"), created) for blob, created in rows[:limit]]
    suites = [str(r[0]) for r in project.runs._execute("SELECT DISTINCT suite FROM runs ORDER BY suite")]
    return RunsPage(runs=[run_row(project, m, c) for m, c in manifests], suites=suites, offset=offset,
                    limit=limit, more=len(rows) > limit)


class RunProgress(BaseModel):
    """How far a run is (polled by the live runs list and run page)."""

    run_id: str
    status: str
    outcome: RunOutcome
    units: int
    done: int
    counts: dict[str, int]
    last_seq: int


def run_progress(project: ViewProject, run_id: str) -> RunProgress:
    """Progress of one run (cheap: a count by status)."""
    rid = project.runs.resolve_id(run_id)
    manifest = project.runs.manifest(rid)
    index = run_index(project, rid)
    with index.lock:
        counts, last_seq = index.counts(), index.last_seq
    return RunProgress(run_id=rid, status=manifest.status, outcome=_outcome(manifest, counts), units=manifest.units,
                       done=sum(counts.values()), counts=counts, last_seq=last_seq)


def newest_run_created(project: ViewProject) -> float:
    """When the newest run was registered (0 without runs): the live list reloads when it moves."""
    rows = project.runs._execute("SELECT COALESCE(MAX(created), 0) FROM runs")
    return float(rows[0][0])


# ---- one run: the case × variant matrix ---------------------------------------------------------
class Cell(BaseModel):
    """The results of one case × variant (all its repeats)."""

    case_id: str
    prompt: str
    model: str
    status: CellStatus
    repeats: int
    passed: int
    unit: str = Field(description="Unit key of the first repeat (what a review mark on the cell labels)")
    output: str | None = None
    latency_s: float | None = None
    cost_usd: float = 0.0


class MatrixRow(BaseModel):
    """One case of the matrix: a cell per variant (None where the case was not run)."""

    case_id: str
    cells: list[Cell | None]


class RunMatrix(BaseModel):
    """A page of a run's case × variant matrix."""

    run: RunRow
    manifest: Manifest
    variants: list[tuple[str, str]]
    rows: list[MatrixRow]
    cases_total: int
    offset: int
    limit: int
    more: bool
    failures_only: bool
    search: str


def _cell_status(units: list[UnitResult]) -> CellStatus:
    statuses = {u.status for u in units}
    if statuses == {"pass"}:
        return "pass"
    if "pass" in statuses and "fail" in statuses:
        return "flaky"
    order: tuple[CellStatus, ...] = ("fail", "error", "unmeasured", "skipped")
    return next((s for s in order if s in statuses), "pass")


def _case_range(case_id: str) -> tuple[str, str]:
    # Unit keys are "case|prompt|model|repeat": a case's units sort between these two keys
    # ("}" follows "|"), so the primary key index serves the lookup.
    return case_id + "|", case_id + "}"


def run_matrix(project: ViewProject, run_id: str, *, failures_only: bool = False, search: str = "",
               offset: int = 0, limit: int = CASES_PAGE_SIZE) -> RunMatrix:
    """A page of a run's case × variant matrix, cases in id order.

    Args:
        project: The open project.
        run_id: Run id, unique prefix or ``latest``.
        failures_only: Only cases with a failed, errored or unmeasured unit.
        search: Only cases whose id, output or error contains this text (case-insensitive).
        offset: Cases to skip.
        limit: Cases per page (at most 1000).
    """
    store = project.runs
    rid = store.resolve_id(run_id)
    manifest = store.manifest(rid)
    limit = max(1, min(int(limit), 1000))
    offset = max(0, int(offset))
    index = run_index(project, rid)
    with index.lock:
        statuses = dict(index.units)
    # Unit keys are "case|prompt|model|repeat" (prompt refs and model names hold no "|"), so
    # the case order and the failure filter need no JSON.
    keep: dict[str, None] = {}
    for unit in sorted(statuses):
        case_id = unit.rsplit("|", 3)[0]
        if not failures_only or statuses[unit] in ("fail", "error", "unmeasured"):
            keep[case_id] = None
    ordered = list(keep)
    if search:
        needle = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        # The raw-text LIKE is a cheap prefilter; the JSON fields decide.
        found = {str(r[0]) for r in store._execute(
            "SELECT json_extract(result, '$.case_id') FROM results WHERE run_id = ? AND lower(result) LIKE ? "
            "ESCAPE '\\' AND (lower(json_extract(result, '$.case_id')) LIKE ? ESCAPE '\\' OR "
            "lower(json_extract(result, '$.output')) LIKE ? ESCAPE '\\' OR "
            "lower(json_extract(result, '$.error')) LIKE ? ESCAPE '\\')", (rid, needle, needle, needle, needle))}
        ordered = [c for c in ordered if c in found]
    total = len(ordered)
    cases = ordered[offset:offset + limit]
    with index.lock:
        variants = sorted({(p, m) for p, m, _ in index.groups})
    column = {v: i for i, v in enumerate(variants)}
    rows: list[MatrixRow] = []
    for case_id in cases:
        lo, hi = _case_range(case_id)
        units = [store._parse(UnitResult, blob, f"result in run {rid}") for (blob,) in store._execute(
            "SELECT result FROM results WHERE run_id = ? AND unit >= ? AND unit < ? ORDER BY unit", (rid, lo, hi))]
        by_variant: dict[tuple[str, str], list[UnitResult]] = {}
        for u in units:
            if u.case_id == case_id:
                by_variant.setdefault((u.prompt, u.model), []).append(u)
        cells: list[Cell | None] = [None] * len(variants)
        for key, group in by_variant.items():
            group.sort(key=lambda u: u.repeat)
            first = group[0]
            if key not in column:  # a unit stored after the variant list was read
                continue
            cells[column[key]] = Cell(
                case_id=case_id, prompt=key[0], model=key[1], status=_cell_status(group), repeats=len(group),
                passed=sum(u.status == "pass" for u in group), unit=first.key,
                output=_clean_text(first.output if first.output is not None else first.error),
                latency_s=first.latency_s, cost_usd=sum(u.cost_usd + u.judge_cost_usd for u in group))
        rows.append(MatrixRow(case_id=case_id, cells=cells))
    return RunMatrix(run=run_row(project, manifest), manifest=manifest, variants=variants, rows=rows,
                     cases_total=total, offset=offset, limit=limit, more=offset + limit < total,
                     failures_only=failures_only, search=search)


# ---- one cell ---------------------------------------------------------------------------------
class ToolCallView(BaseModel):
    """A tool call an assistant message carries (arguments as the model wrote them)."""

    id: str = ""
    name: str
    arguments: str = ""


class MessageView(BaseModel):
    """A chat message as sent (or as the prompt renders it now), with its tool calls or tool result id."""

    role: str
    content: str
    tool_calls: list[ToolCallView] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


def message_view(data: dict[str, Any]) -> MessageView:
    """A message from its OpenAI-style dict (as traces record generation inputs)."""
    calls: list[ToolCallView] = []
    for call in data.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        fn: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else call
        args = fn.get("raw_arguments", fn.get("arguments", ""))  # as the model wrote them, when recorded
        calls.append(ToolCallView(id=str(call.get("id") or ""), name=str(fn.get("name") or ""),
                                  arguments=args if isinstance(args, str) else _json_text(args)))
    return MessageView(role=str(data.get("role", "")), content=str(_clean_text(_message_text(data.get("content")))),
                       tool_calls=calls, tool_call_id=_opt_str(data.get("tool_call_id")),
                       name=_opt_str(data.get("name")))


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


class RepeatView(BaseModel):
    """One repeat of a cell: the unit result, its trace and its review mark."""

    result: UnitResult
    trace_id: str | None = None
    review: ReviewMark | None = None


class CellDetail(BaseModel):
    """Everything about one case × variant of a run."""

    run_id: str
    suite: str
    case_id: str
    prompt: str
    model: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    expected: str | None = None
    contexts: list[str] = Field(default_factory=list)
    messages: list[MessageView] = Field(default_factory=list)
    tools: list[Any] = Field(default_factory=list, description="Tool definitions sent with the call")
    tool_calls: list[ToolCallView] = Field(default_factory=list, description="Tool calls the model answered with")
    finish_reason: str | None = None
    ttft_s: float | None = Field(default=None, description="Time to first token of a streamed call")
    messages_source: Literal["trace", "rendered", "none"] = "none"
    messages_note: str = ""
    repeats: list[RepeatView] = Field(default_factory=list)


def _suite_case(project: ViewProject, manifest: Manifest, case_id: str) -> Any:
    """The case as the suite file defines it now (None when the file is gone or outside the project)."""
    from llmops.evalsets.loader import load_suite

    path = Path(manifest.suite_path)
    path = path if path.is_absolute() else project.root / path
    try:
        path = path.resolve()
        path.relative_to(project.root.resolve())
        mtime = path.stat().st_mtime
    except (OSError, ValueError):
        return None
    key = (str(path), mtime)
    with project._lock:
        loaded = project._suites.get(key)
    if loaded is None:
        try:
            loaded = load_suite(path)
        except UserError:
            return None
        with project._lock:
            project._suites[key] = loaded
            while len(project._suites) > 4:
                project._suites.popitem(last=False)
    return next((c for c in loaded.cases if c.id == case_id), None)


def unit_trace_id(project: ViewProject, run_id: str, result: UnitResult, suite: str) -> str | None:
    """The trace an eval unit recorded (None when the run was not traced)."""
    if not project.traces.exists():
        return None
    rows = project.traces._query(
        "SELECT trace_id, data FROM spans WHERE name = ? AND parent_id IS NULL "
        "AND json_extract(data, '$.metadata.run_id') = ? AND json_extract(data, '$.metadata.prompt') = ? "
        "AND json_extract(data, '$.metadata.model') = ? AND json_extract(data, '$.metadata.repeat') = ? LIMIT 1",
        (f"eval {suite}/{result.case_id}", run_id, result.prompt, result.model, result.repeat))
    return str(rows[0][0]) if rows else None


def cell_detail(project: ViewProject, run_id: str, case_id: str, prompt: str, model: str) -> CellDetail:
    """One case × variant of a run: rendered messages, every repeat with its scores, traces and marks.

    Raises:
        UserError: when the run has no such cell.
    """
    from llmops.view.review import load_marks

    store = project.runs
    rid = store.resolve_id(run_id)
    manifest = store.manifest(rid)
    lo, hi = _case_range(case_id)
    units = [store._parse(UnitResult, blob, f"result in run {rid}") for (blob,) in store._execute(
        "SELECT result FROM results WHERE run_id = ? AND unit >= ? AND unit < ? ORDER BY unit", (rid, lo, hi))]
    units = sorted((u for u in units if u.case_id == case_id and u.prompt == prompt and u.model == model),
                   key=lambda u: u.repeat)
    if not units:
        raise UserError(f"run {rid} has no result for case '{case_id}' with {prompt} × {model}", key=case_id)
    marks = load_marks(project)
    detail = CellDetail(run_id=rid, suite=manifest.suite, case_id=case_id, prompt=prompt, model=model)
    case = _suite_case(project, manifest, case_id)
    if case is not None:
        detail.inputs = _clean(dict(case.inputs))
        detail.expected = _clean_text(case.expected)
        detail.contexts = [str(_clean_text(c)) for c in case.contexts]
    for u in units:
        cleaned = u.model_copy(update={"output": _clean_text(u.output), "error": _clean_text(u.error)})
        detail.repeats.append(RepeatView(result=cleaned, trace_id=unit_trace_id(project, rid, u, manifest.suite),
                                         review=marks.get(review_id_for_unit(rid, u.key))))
    trace_id = next((r.trace_id for r in detail.repeats if r.trace_id), None)
    if trace_id is not None:
        generation = next((s for s in project.traces.trace(trace_id).generations
                           if s.metadata.get("purpose") not in ("judge", "regenerate")), None)
        if generation is not None and isinstance(generation.input, list):
            detail.messages = [message_view(m) for m in generation.input if isinstance(m, dict)]
            tools = generation.params.get("tools")
            detail.tools = _clean(list(tools)) if isinstance(tools, list) else []
            calls = generation.metadata.get("tool_calls")
            if isinstance(calls, list):
                detail.tool_calls = message_view({"role": "assistant", "tool_calls": calls}).tool_calls
            reason, ttft = generation.metadata.get("finish_reason"), generation.metadata.get("ttft_s")
            detail.finish_reason = str(reason) if reason is not None else None
            detail.ttft_s = float(ttft) if isinstance(ttft, int | float) else None
            detail.messages_source = "trace"
    if not detail.messages and case is not None:
        try:
            version = project.prompts.get(prompt)
            inputs = dict(case.inputs)
            # As the runner does: a prompt that declares `contexts` gets the case's contexts.
            if "contexts" in version.meta.inputs and "contexts" not in inputs and case.contexts:
                inputs["contexts"] = list(case.contexts)
            detail.messages = [message_view(m.to_dict()) for m in version.render(inputs)]
            detail.messages_source = "rendered"
            if units[0].prompt_hash and version.content_hash != units[0].prompt_hash:
                detail.messages_note = (f"rendered from the current {prompt} file, which changed since the run "
                                        "(its content hash differs)")
        except UserError as exc:
            detail.messages_note = f"cannot render {prompt} now: {exc.message}"
    return detail


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "\n".join(str(p.get("text", p)) if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


# ---- two runs side by side ----------------------------------------------------------------------
class DiffPart(BaseModel):
    """A run of words in a word-level diff: unchanged (``=``), removed (``-``) or added (``+``)."""

    op: Literal["=", "-", "+"]
    text: str


class CaseDiff(BaseModel):
    """One case in both variants: statuses, outputs and their word-level diff."""

    case_id: str
    a_status: str | None
    b_status: str | None
    a_passed: float | None
    b_passed: float | None
    changed: bool
    a_output: str | None = None
    b_output: str | None = None
    diff: list[DiffPart] = Field(default_factory=list)


class SideBySide(BaseModel):
    """Two variants (of one run or of two runs) compared case by case, with ``compare``'s statistics."""

    a_run: str
    a_prompt: str
    a_model: str
    b_run: str
    b_prompt: str
    b_model: str
    a_label: str
    b_label: str
    comparison: Any = Field(description="llmops.compare.Comparison of the two variants (None: not computed yet)")
    changed: int
    cases: list[CaseDiff]
    offset: int
    limit: int
    total: int


_WORD = re.compile(r"\s+|[^\s]+")


def word_diff(a: str, b: str) -> list[DiffPart]:
    """A word-level diff of two texts (whitespace kept), as runs of unchanged, removed and added text."""
    wa, wb = _WORD.findall(a), _WORD.findall(b)
    parts: list[DiffPart] = []

    def add(op: Literal["=", "-", "+"], words: list[str]) -> None:
        if not words:
            return
        if parts and parts[-1].op == op:
            parts[-1].text += "".join(words)
        else:
            parts.append(DiffPart(op=op, text="".join(words)))

    matcher = difflib.SequenceMatcher(None, wa, wb, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("=", wa[i1:i2])
        else:
            add("-", wa[i1:i2])
            add("+", wb[j1:j2])
    return parts


def _variant_units(store: RunStore, run_id: str, prompt: str, model: str) -> list[UnitResult]:
    return list(store._parse(UnitResult, blob, f"result in run {run_id}") for (blob,) in store._execute(
        "SELECT result FROM results WHERE run_id = ? AND json_extract(result, '$.prompt') = ? "
        "AND json_extract(result, '$.model') = ? ORDER BY unit", (run_id, prompt, model)))


def _only_variant(store: RunStore, run_id: str, prompt: str | None, model: str | None) -> tuple[str, str]:
    keys = sorted(store.variant_keys(run_id))
    matches = [(p, m) for p, m in keys if (prompt in (None, "", p)) and (model in (None, "", m))]
    if not matches:
        raise UserError(f"run {run_id} has no variant {prompt or '*'} × {model or '*'}", key=run_id,
                        hint="variants: " + ", ".join(f"{p} × {m}" for p, m in keys))
    return matches[0]


def _pair(store: RunStore, a_run: str, b_run: str, a_prompt: str | None, a_model: str | None,
          b_prompt: str | None, b_model: str | None) -> tuple[str, str, str, str, str, str]:
    ra, rb = store.resolve_id(a_run), store.resolve_id(b_run)
    pa, ma = _only_variant(store, ra, a_prompt, a_model)
    pb, mb = _only_variant(store, rb, b_prompt, b_model)
    if (ra, pa, ma) == (rb, pb, mb) and not (b_prompt or b_model):
        keys = sorted(store.variant_keys(rb))
        pb, mb = next(((p, m) for p, m in keys if (p, m) != (pa, ma)), (pb, mb))
    return ra, pa, ma, rb, pb, mb


def _cached(project: ViewProject, key: tuple[Any, ...], make: Any) -> Any:
    with project._lock:
        hit = project._comparisons.get(key)
    if hit is None:
        hit = make()
        with project._lock:
            project._comparisons[key] = hit
            while len(project._comparisons) > 16:
                project._comparisons.popitem(last=False)
    return hit


def _pair_key(store: RunStore, ra: str, pa: str, ma: str, rb: str, pb: str, mb: str) -> tuple[Any, ...]:
    # A run that gains results gets a new key (its last seq moves): nothing stale is served.
    return ra, pa, ma, store.last_seq(ra), rb, pb, mb, store.last_seq(rb)


def pair_statistics(project: ViewProject, a_run: str, b_run: str, *, a_prompt: str | None = None,
                    a_model: str | None = None, b_prompt: str | None = None, b_model: str | None = None,
                    alpha: float = 0.05, seed: int = 0, compute: bool = True) -> Any:
    """:func:`llmops.compare.compare_run` over two variants' units: the numbers ``llmops compare`` prints.

    When the two variants share a prompt and model (one variant in two runs), their units are
    labelled ``A`` and ``B`` so that the comparison has two variants to pair. The result is cached
    while neither run changes. ``compute=False`` returns the cached comparison or None (it can take
    a while on big runs: the bootstrap resamples every case).
    """
    store = project.runs
    ra, pa, ma, rb, pb, mb = _pair(store, a_run, b_run, a_prompt, a_model, b_prompt, b_model)
    key = ("statistics", *_pair_key(store, ra, pa, ma, rb, pb, mb), alpha, seed)
    if not compute:
        with project._lock:
            return project._comparisons.get(key)

    def make() -> Any:
        from llmops.compare import compare_run

        ua, ub = _variant_units(store, ra, pa, ma), _variant_units(store, rb, pb, mb)
        if (pa, ma) == (pb, mb):
            ua = [u.model_copy(update={"prompt": "A"}) for u in ua]
            ub = [u.model_copy(update={"prompt": "B"}) for u in ub]
        manifest = store.manifest(rb).model_copy(update={"run_id": f"{ra} vs {rb}" if ra != rb else rb})
        return compare_run(RunResult(manifest=manifest, results=[*ua, *ub]), alpha=alpha, seed=seed)

    return _cached(project, key, make)


def side_by_side(project: ViewProject, a_run: str, b_run: str, *, a_prompt: str | None = None,
                 a_model: str | None = None, b_prompt: str | None = None, b_model: str | None = None,
                 offset: int = 0, limit: int = CASES_PAGE_SIZE, alpha: float = 0.05, seed: int = 0,
                 statistics: bool = True) -> SideBySide:
    """Compare variant A (baseline) with variant B (candidate): of two runs, or two variants of one run.

    Cases whose verdict changed come first, then the others, each in case order, with the first
    repeat's outputs and their word-level diff. The statistics are :func:`pair_statistics` (the
    same code path and numbers as ``llmops compare``).

    Args:
        project: The open project.
        a_run: The baseline run (id, prefix or ``latest``).
        b_run: The candidate run (may be the same run with another variant).
        a_prompt: Variant A's prompt (default: the run's first variant).
        a_model: Variant A's model.
        b_prompt: Variant B's prompt.
        b_model: Variant B's model.
        offset: Cases to skip (paging of the case list; the statistics cover every case).
        limit: Cases per page.
        alpha: Family-wise significance level, as ``llmops compare --alpha``.
        seed: Bootstrap seed, as ``llmops compare``.
        statistics: Compute the statistics now; False: only when already cached (else
            ``comparison`` is None).
    """
    store = project.runs
    ra, pa, ma, rb, pb, mb = _pair(store, a_run, b_run, a_prompt, a_model, b_prompt, b_model)
    la, lb, diffs, out_a, out_b = _cached(project, ("cases", *_pair_key(store, ra, pa, ma, rb, pb, mb)),
                                          lambda: _case_table(store, ra, pa, ma, rb, pb, mb))
    comparison = pair_statistics(project, ra, rb, a_prompt=pa, a_model=ma, b_prompt=pb, b_model=mb, alpha=alpha,
                                 seed=seed, compute=statistics)
    limit = max(1, min(int(limit), 1000))
    offset = max(0, int(offset))
    page = [d.model_copy() for d in diffs[offset:offset + limit]]
    for d in page:
        d.a_output, d.b_output = out_a.get(d.case_id), out_b.get(d.case_id)
        d.diff = word_diff(d.a_output or "", d.b_output or "")
    return SideBySide(a_run=ra, a_prompt=pa, a_model=ma, b_run=rb, b_prompt=pb, b_model=mb, a_label=la,
                      b_label=lb, comparison=comparison, changed=sum(d.changed for d in diffs), cases=page,
                      offset=offset, limit=limit, total=len(diffs))


def _case_table(store: RunStore, ra: str, pa: str, ma: str, rb: str, pb: str, mb: str
                ) -> tuple[str, str, list[CaseDiff], dict[str, str | None], dict[str, str | None]]:
    """Labels, per-case verdicts (changed first) and first-repeat outputs of two variants."""
    # Labels as compare_run gives them: what differs between the two variants.
    if (pa, ma) == (pb, mb):
        la, lb = "A", "B"
    elif ma == mb:
        la, lb = pa, pb
    elif pa == pb:
        la, lb = ma, mb
    else:
        la, lb = f"{pa} × {ma}", f"{pb} × {mb}"
    by_case_a: dict[str, list[UnitResult]] = {}
    by_case_b: dict[str, list[UnitResult]] = {}
    for u in _variant_units(store, ra, pa, ma):
        by_case_a.setdefault(u.case_id, []).append(u)
    for u in _variant_units(store, rb, pb, mb):
        by_case_b.setdefault(u.case_id, []).append(u)

    def rate(units: list[UnitResult] | None) -> float | None:
        decided = [u for u in units or [] if u.status in ("pass", "fail")]
        return sum(u.status == "pass" for u in decided) / len(decided) if decided else None

    diffs: list[CaseDiff] = []
    for case_id in sorted(set(by_case_a) | set(by_case_b)):
        a_units, b_units = by_case_a.get(case_id), by_case_b.get(case_id)
        a_status = _cell_status(a_units) if a_units else None
        b_status = _cell_status(b_units) if b_units else None
        diffs.append(CaseDiff(case_id=case_id, a_status=a_status, b_status=b_status, a_passed=rate(a_units),
                              b_passed=rate(b_units), changed=a_status != b_status))
    diffs.sort(key=lambda d: (not d.changed, d.case_id))
    # Only the outputs are kept (not 40,000 unit results) while the pair stays cached.
    return (la, lb, diffs, {c: _first_output(u) for c, u in by_case_a.items()},
            {c: _first_output(u) for c, u in by_case_b.items()})


def _first_output(units: list[UnitResult] | None) -> str | None:
    if not units:
        return None
    first = min(units, key=lambda u: u.repeat)
    return _clean_text(first.output if first.output is not None else first.error)


# ---- traces -------------------------------------------------------------------------------------
class TracesPage(BaseModel):
    """A page of traces, newest first."""

    traces: list[TraceSummary]
    offset: int
    limit: int
    more: bool


def list_traces(project: ViewProject, *, name: str | None = None, model: str | None = None,
                prompt: str | None = None, status: Literal["ok", "error"] | None = None,
                since: float | None = None, until: float | None = None, offset: int = 0,
                limit: int = PAGE_SIZE) -> TracesPage:
    """A page of trace summaries, newest first.

    Args:
        project: The open project.
        name: Only traces whose name contains this text.
        model: Only traces with a generation of this model (requested or resolved).
        prompt: Only traces with a generation of this prompt (``name`` or ``name@version``).
        status: ``error``: traces with a failed span; ``ok``: traces without one.
        since: Only traces started at or after this Unix time.
        until: Only traces started before this Unix time.
        offset: Traces to skip.
        limit: Traces per page (at most 500).

    Raises:
        UserError: for a malformed prompt reference.
    """
    limit = max(1, min(int(limit), 500))
    offset = max(0, int(offset))
    if not project.traces.exists():
        return TracesPage(traces=[], offset=offset, limit=limit, more=False)
    where: list[str] = []
    args: list[Any] = []
    if prompt:
        pname, _, pver = prompt.partition("@")
        where.append("trace_id IN (SELECT trace_id FROM spans WHERE prompt_name = ?" +
                     (" AND prompt_version = ?)" if pver else ")"))
        args.append(pname)
        if pver:
            number = small_int(pver.lstrip("v"))
            if number is None:
                raise UserError(f"prompt filter '{prompt}': the version must be a number", key="prompt")
            args.append(number)
    if model:
        where.append("trace_id IN (SELECT trace_id FROM spans WHERE kind = 'generation' AND (model = ? OR "
                     "json_extract(data, '$.resolved_model') = ?))")
        args += [model, model]
    having: list[str] = []
    if name:
        needle = "%" + name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        having.append("SUM(parent_id IS NULL AND (lower(name) LIKE ? ESCAPE '\\' OR lower(COALESCE("
                      "json_extract(data, '$.trace_name'), '')) LIKE ? ESCAPE '\\')) > 0")
    if status == "error":
        having.append("SUM(status = 'error') > 0")
    elif status == "ok":
        having.append("SUM(status = 'error') = 0")
    if since is not None:
        having.append("MIN(start_time) >= ?")
    if until is not None:
        having.append("MIN(start_time) < ?")
    hargs: list[Any] = []
    if name:
        hargs += [needle, needle]
    if since is not None:
        hargs.append(since)
    if until is not None:
        hargs.append(until)
    sql = ("SELECT trace_id FROM spans" + (" WHERE " + " AND ".join(where) if where else "")
           + " GROUP BY trace_id" + (" HAVING " + " AND ".join(having) if having else "")
           + " ORDER BY MIN(start_time) DESC LIMIT ? OFFSET ?")
    ids = [str(r[0]) for r in project.traces._query(sql, (*args, *hargs, limit + 1, offset))]
    page = ids[:limit]
    from llmops.tracing.store import summarize

    by_trace: dict[str, list[SpanRow]] = {t: [] for t in page}
    for span in project.traces.spans(trace_ids=page):
        by_trace[span.trace_id].append(span)
    scores: dict[str, dict[str, float | None]] = {t: {} for t in page}
    for score in project.traces.scores(page):
        scores[score.trace_id][score.name] = score.value
    return TracesPage(traces=[summarize(TraceDetail(trace_id=t, spans=by_trace[t], scores=[]), scores[t])
                              for t in page if by_trace[t]], offset=offset, limit=limit, more=len(ids) > limit)


class SpanNode(BaseModel):
    """A span in the tree, with its depth and its offset and width on the trace's time axis (0..1)."""

    span: SpanRow
    depth: int
    offset: float
    width: float
    review: ReviewMark | None = None


class TraceView(BaseModel):
    """A trace as a span tree in start order (parents before children) with its waterfall geometry."""

    trace: TraceDetail
    summary: TraceSummary
    nodes: list[SpanNode]
    start_time: float
    duration_s: float


def trace_view(project: ViewProject, trace_id: str) -> TraceView:
    """One trace (id or unique prefix) as a span tree with a timing waterfall.

    Raises:
        UserError: for an unknown trace id.
    """
    from llmops.tracing.store import summarize
    from llmops.view.review import load_marks

    if not project.traces.exists():
        raise UserError(f"no trace '{trace_id}': the project has no trace store yet", key=trace_id)
    detail = project.traces.trace(trace_id)
    start = min(s.start_time for s in detail.spans)
    end = max(s.end_time for s in detail.spans)
    total = max(end - start, 1e-9)
    ids = {s.span_id for s in detail.spans}
    children: dict[str | None, list[SpanRow]] = {}
    for s in detail.spans:
        parent = s.parent_id if s.parent_id in ids else None
        children.setdefault(parent, []).append(s)
    marks = load_marks(project)
    nodes: list[SpanNode] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in children.get(parent, []):
            nodes.append(SpanNode(span=s, depth=depth, offset=(s.start_time - start) / total,
                                  width=max(s.duration_s / total, 0.002),
                                  review=marks.get(review_id_for_span(detail.trace_id, s.span_id))))
            walk(s.span_id, depth + 1)

    walk(None, 0)
    return TraceView(trace=detail, summary=summarize(detail), nodes=nodes, start_time=start, duration_s=end - start)


# ---- prompts ------------------------------------------------------------------------------------
class PromptVersionInfo(BaseModel):
    """One version of a prompt: its labels, hash and the runs that used it."""

    name: str
    version: int
    labels: list[str]
    content_hash: str
    description: str | None = None
    runs: list[str] = Field(default_factory=list)


class PromptInfo(BaseModel):
    """A prompt with its versions (newest first)."""

    name: str
    versions: list[PromptVersionInfo]


class PromptDiff(BaseModel):
    """Two versions of a prompt and their line diff (unified format)."""

    name: str
    a: int
    b: int
    a_source: str
    b_source: str
    unified: list[str]


def runs_using_prompt(project: ViewProject, ref: str, limit: int = 20) -> list[str]:
    """Ids of the newest runs whose manifest lists the prompt reference ``name@version``."""
    rows = project.runs._execute(
        "SELECT run_id FROM runs WHERE json_extract(manifest, '$.prompts') IS NOT NULL AND EXISTS "
        "(SELECT 1 FROM json_each(json_extract(manifest, '$.prompts')) WHERE key = ?) "
        "ORDER BY created DESC LIMIT ?", (ref, limit))
    return [str(r[0]) for r in rows]


def list_prompts(project: ViewProject) -> list[PromptInfo]:
    """Every prompt of the registry, with its versions, labels and the runs that used each version."""
    out: list[PromptInfo] = []
    for name in project.prompts.names():
        labels = project.prompts.labels(name)
        versions: list[PromptVersionInfo] = []
        for v in reversed(project.prompts.versions(name)):
            pv = project.prompts.get(f"{name}@{v}")
            versions.append(PromptVersionInfo(
                name=name, version=v, labels=sorted(k for k, n in labels.items() if n == v),
                content_hash=pv.content_hash, description=getattr(pv.meta, "description", None),
                runs=runs_using_prompt(project, pv.ref)))
        out.append(PromptInfo(name=name, versions=versions))
    return out


def prompt_diff(project: ViewProject, name: str, a: int | None = None, b: int | None = None) -> PromptDiff:
    """The line diff between two versions of a prompt (default: the two newest).

    Raises:
        PromptError: for an unknown prompt or version.
    """
    versions = project.prompts.versions(name)
    b = b if b is not None else versions[-1]
    a = a if a is not None else (versions[-2] if len(versions) > 1 else versions[-1])
    va, vb = project.prompts.get(f"{name}@{a}"), project.prompts.get(f"{name}@{b}")
    unified = list(difflib.unified_diff(va.source.splitlines(), vb.source.splitlines(), f"{name}@{a}",
                                        f"{name}@{b}", lineterm=""))
    return PromptDiff(name=name, a=a, b=b, a_source=va.source, b_source=vb.source, unified=unified)


# ---- review ids (the review module owns the marks) ----------------------------------------------
def review_id_for_unit(run_id: str, unit_key: str) -> str:
    """The labels-file id of a run's unit output."""
    return f"run:{run_id}:{unit_key}"


def review_id_for_span(trace_id: str, span_id: str) -> str:
    """The labels-file id of a trace generation's output."""
    return f"trace:{trace_id}:{span_id}"


class ReviewMark(BaseModel):
    """A reviewer's mark on one output."""

    id: str
    label: Literal["pass", "fail"]
    note: str = ""
    at: str = ""


RepeatView.model_rebuild()
SpanNode.model_rebuild()
