"""Calibrate an evaluator against human labels: how far can its verdicts be trusted?

A labels file is JSONL, one labelled output per line::

    {"output": "...", "label": "fail", "contexts": ["..."], "inputs": {...}, "expected": "...", "id": "x1"}

``label`` is the human verdict: pass/fail, true/false, 1/0, yes/no or good/bad. The evaluator
scores every row; its pass/fail is compared with the label. "Positive" means *fail* (a problem
found), as in detection:

- TPR (sensitivity): share of human-failed outputs the evaluator fails too — problems caught;
- FPR: share of human-passed outputs the evaluator fails — false alarms;
- accuracy (with a Wilson 95% interval), balanced accuracy (the mean of TPR and TNR: not
  flattered by a set with more fails than passes) and Cohen's kappa (agreement beyond chance).

Rows the evaluator leaves ``unmeasured`` (or ``error``) are counted and excluded from those
rates; coverage says how many were measured. The report is stored as JSON under
``.llmops/calibration/<kind>@v<version>.json``, one entry per configuration (params and judge
model), so a report can show how far the judge in use is trusted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmops._async import run_sync
from llmops._jsonl import json_objects
from llmops.errors import UserError
from llmops.evaluators.base import EvalContext, Evaluator, Sample, Score, create_evaluator

CALIBRATION_DIR = Path(".llmops/calibration")

_TRUE = {"pass", "passed", "true", "1", "yes", "good", "ok", "correct"}
_FALSE = {"fail", "failed", "false", "0", "no", "bad", "incorrect", "wrong"}


class LabelledSample(BaseModel):
    """One human-labelled output (a line of the labels file)."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    output: str
    label: bool = Field(description="Human verdict: True = pass")
    inputs: dict[str, Any] = Field(default_factory=dict)
    contexts: list[str] = Field(default_factory=list)
    expected: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def parse_label(value: Any) -> bool:
    """Human label to bool (True = pass).

    Raises:
        ValueError: for a value that is not a recognisable verdict.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"label must be pass/fail, true/false, 1/0, yes/no or good/bad, got {value!r}")


def load_labels(path: str | Path) -> list[LabelledSample]:
    """Read a JSONL labels file.

    Raises:
        UserError: naming the file and line of a bad row, or when the file is missing or empty.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("labels file not found", file=file) from None
    except OSError as exc:
        raise UserError(f"labels file not readable: {exc.strerror}", file=file) from None
    rows: list[LabelledSample] = []
    for data, number in json_objects(text, file):
        if "label" not in data:
            raise UserError("missing 'label' (pass/fail)", file=file, line=number, key="label")
        try:
            data["label"] = parse_label(data["label"])
            if data.get("id") is not None:
                data["id"] = str(data["id"])
            rows.append(LabelledSample.model_validate(data))
        except ValueError as exc:  # ValidationError is a ValueError too
            message = (exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc))
            where = (".".join(str(p) for p in exc.errors()[0]["loc"]) if isinstance(exc, ValidationError)
                     else "label")
            raise UserError(f"{where}: {message}", file=file, line=number, key=where) from None
    if not rows:
        raise UserError("labels file has no rows", file=file)
    return rows


class Confusion(BaseModel):
    """Counts over measured rows; positive = fail."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0


class Disagreement(BaseModel):
    """A row where the evaluator and the human disagree (or the evaluator did not decide)."""

    id: str | None
    label: Literal["pass", "fail"]
    predicted: Literal["pass", "fail", "unmeasured", "error"]
    value: float | None
    reason: str


class CalibrationReport(BaseModel):
    """An evaluator measured against human labels (positive = fail)."""

    evaluator: str
    name: str
    version: str
    params: dict[str, Any] = Field(default_factory=dict)
    threshold: float | None = None
    judge_model: str | None = None
    fingerprint: str
    labels_file: str
    labels_sha256: str
    created_at: str
    llmops_version: str
    positive: Literal["fail"] = "fail"
    n: int
    measured: int
    unmeasured: int
    errors: int
    coverage: float
    accuracy: float | None
    accuracy_ci: tuple[float, float] | None
    balanced_accuracy: float | None = Field(default=None, description="Mean of TPR and TNR (None when a "
                                                                      "class has no measured row)")
    tpr: float | None = Field(description="Human-failed outputs the evaluator fails (problems caught)")
    fpr: float | None = Field(description="Human-passed outputs the evaluator fails (false alarms)")
    tnr: float | None
    precision: float | None = Field(description="Evaluator fails that the human also fails")
    kappa: float | None
    confusion: Confusion
    unmeasured_reasons: dict[str, int] = Field(default_factory=dict)
    disagreements: list[Disagreement] = Field(default_factory=list)

    @property
    def agreement(self) -> str:
        """Landis & Koch wording for kappa."""
        return kappa_label(self.kappa)


class CalibrationFile(BaseModel):
    """The stored calibrations of one evaluator kind and version, by configuration fingerprint."""

    evaluator: str
    version: str
    entries: dict[str, CalibrationReport] = Field(default_factory=dict)


def kappa_label(kappa: float | None) -> str:
    """Landis & Koch (1977) agreement band for a kappa value."""
    if kappa is None:
        return "undefined"
    if kappa < 0:
        return "poor"
    for bound, label in ((0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial")):
        if kappa <= bound:
            return label
    return "almost perfect"


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def cohen_kappa(c: Confusion) -> float | None:
    """Cohen's kappa of two binary raters from their confusion matrix (None when undefined)."""
    n = c.tp + c.fp + c.tn + c.fn
    if n == 0:
        return None
    observed = (c.tp + c.tn) / n
    expected = ((c.tp + c.fp) * (c.tp + c.fn) + (c.tn + c.fn) * (c.tn + c.fp)) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else None  # both raters constant: agreement is trivial
    return (observed - expected) / (1.0 - expected)


def fingerprint(params: dict[str, Any], threshold: float | None, judge_model: str | None) -> str:
    """Short hash of an evaluator configuration (what a stored calibration is valid for)."""
    blob = json.dumps({"params": params, "threshold": threshold, "judge_model": judge_model},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def calibration_path(root: Path, kind: str, version: str) -> Path:
    """Where the calibrations of ``kind`` at ``version`` are stored under project ``root``."""
    return root / CALIBRATION_DIR / f"{kind}@v{version}.json"


def save_calibration(report: CalibrationReport, root: Path) -> Path:
    """Add (or replace) the report's entry in its kind+version file; returns the file."""
    path = calibration_path(root, report.evaluator, report.version)
    stored = CalibrationFile(evaluator=report.evaluator, version=report.version)
    if path.is_file():
        try:
            stored = CalibrationFile.model_validate_json(path.read_text(encoding="utf-8"))
        except (ValidationError, ValueError):
            stored = CalibrationFile(evaluator=report.evaluator, version=report.version)  # rewrite a bad file
    stored.entries[report.fingerprint] = report
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(stored.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def load_calibration(root: Path, kind: str, version: str, *, params: dict[str, Any] | None = None,
                     threshold: float | None = None, judge_model: str | None = None,
                     exact: bool = False) -> CalibrationReport | None:
    """The stored calibration of an evaluator configuration, or None.

    With ``exact``, only the entry for exactly this configuration; otherwise that entry if
    present, else the most recent one of the kind and version.
    """
    path = calibration_path(root, kind, version)
    if not path.is_file():
        return None
    try:
        stored = CalibrationFile.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError):
        return None
    key = fingerprint(params or {}, threshold, judge_model)
    if key in stored.entries:
        return stored.entries[key]
    if exact or not stored.entries:
        return None
    return max(stored.entries.values(), key=lambda r: r.created_at)


def _balanced(c: Confusion) -> float | None:
    tpr, tnr = _ratio(c.tp, c.tp + c.fn), _ratio(c.tn, c.fp + c.tn)
    return None if tpr is None or tnr is None else (tpr + tnr) / 2


def _predicted(score: Score) -> Literal["pass", "fail", "unmeasured", "error"]:
    return score.status


async def acalibrate(
    evaluator: str | Evaluator,
    labels: str | Path | Sequence[LabelledSample],
    *,
    params: dict[str, Any] | None = None,
    threshold: float | None = None,
    ctx: EvalContext | None = None,
    root: Path | None = None,
    concurrency: int = 4,
    save: bool = True,
) -> CalibrationReport:
    """Score every labelled row and compare with the human verdicts.

    Args:
        evaluator: An evaluator kind (with ``params``/``threshold``) or an instance.
        labels: A JSONL labels file or loaded rows.
        params: Evaluator parameters (when ``evaluator`` is a kind).
        threshold: Pass threshold (when ``evaluator`` is a kind; default: the evaluator's).
        ctx: Evaluation context (judge client and model); None for evaluators without a judge.
        root: Project root; the report is stored under it when ``save``.
        concurrency: Rows scored at once.
        save: Store the report (needs ``root``).

    Raises:
        UserError: for a bad labels file or evaluator configuration.
    """
    from llmops._version import __version__

    params = dict(params or {})
    ev = create_evaluator(evaluator, threshold=threshold, **params) if isinstance(evaluator, str) else evaluator
    if isinstance(labels, (str, Path)):
        rows = load_labels(labels)
        labels_file = str(labels)
        digest = hashlib.sha256(Path(labels).read_bytes()).hexdigest()
    else:
        rows = list(labels)
        labels_file = "<memory>"
        digest = hashlib.sha256("\n".join(r.model_dump_json() for r in rows).encode()).hexdigest()
    context = ctx or EvalContext()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(i: int, row: LabelledSample) -> Score:
        sample = Sample(case_id=row.id or f"row-{i + 1}", output=row.output, inputs=row.inputs,
                        expected=row.expected, contexts=tuple(row.contexts), metadata=row.metadata)
        async with gate:
            return await ev.evaluate(sample, EvalContext(
                client=context.client, judge_model=context.judge_model, seed=context.seed,
                regenerate=context.regenerate, metadata={**context.metadata, "case_id": sample.case_id,
                                                         "purpose": "calibration"}))

    scores = await asyncio.gather(*(one(i, r) for i, r in enumerate(rows)))
    confusion = Confusion()
    reasons: Counter[str] = Counter()
    disagreements: list[Disagreement] = []
    for row, score in zip(rows, scores, strict=True):
        predicted = _predicted(score)
        if predicted in ("pass", "fail"):
            human_fail, eval_fail = not row.label, predicted == "fail"
            if human_fail and eval_fail:
                confusion.tp += 1
            elif eval_fail:
                confusion.fp += 1
            elif human_fail:
                confusion.fn += 1
            else:
                confusion.tn += 1
        else:
            reasons[score.reason.split(":")[0][:80] or predicted] += 1
        if predicted not in ("pass", "fail") or (predicted == "pass") != row.label:
            disagreements.append(Disagreement(id=row.id, label="pass" if row.label else "fail",
                                              predicted=predicted, value=score.value,
                                              reason=score.reason[:300]))
    c = confusion
    measured = c.tp + c.fp + c.tn + c.fn
    correct = c.tp + c.tn
    accuracy_ci = None
    if measured:
        from llmops.stats import wilson_interval

        accuracy_ci = wilson_interval(correct, measured)
    judge_model = context.judge_model
    report = CalibrationReport(
        evaluator=ev.kind, name=ev.name, version=ev.version, params=params, threshold=ev.threshold,
        judge_model=judge_model, fingerprint=fingerprint(params, ev.threshold, judge_model),
        labels_file=labels_file, labels_sha256=digest,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), llmops_version=__version__,
        n=len(rows), measured=measured, unmeasured=sum(s.status == "unmeasured" for s in scores),
        errors=sum(s.status == "error" for s in scores), coverage=measured / len(rows),
        accuracy=_ratio(correct, measured), accuracy_ci=accuracy_ci,
        balanced_accuracy=_balanced(c),
        tpr=_ratio(c.tp, c.tp + c.fn), fpr=_ratio(c.fp, c.fp + c.tn), tnr=_ratio(c.tn, c.fp + c.tn),
        precision=_ratio(c.tp, c.tp + c.fp), kappa=cohen_kappa(c), confusion=c,
        unmeasured_reasons=dict(reasons.most_common(10)), disagreements=disagreements[:50])
    if save:
        if root is None:
            raise UserError("calibrate: save=True needs the project root")
        save_calibration(report, root)
    return report


def calibrate(evaluator: str | Evaluator, labels: str | Path | Sequence[LabelledSample], **kwargs: Any
              ) -> CalibrationReport:
    """Sync :func:`acalibrate` (safe inside a running event loop)."""
    return run_sync(acalibrate(evaluator, labels, **kwargs))
