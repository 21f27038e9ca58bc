"""How far each evaluator of a run is trusted: its stored calibration against human labels."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from llmops.runner.results import Manifest


class EvaluatorTrust(BaseModel):
    """One evaluator of a run with its calibration (None fields when it was never calibrated)."""

    name: str
    kind: str
    version: str
    calibrated: bool = False
    n: int | None = None
    accuracy: float | None = None
    kappa: float | None = None
    agreement: str | None = None
    tpr: float | None = None
    fpr: float | None = None
    labels_file: str | None = None


def evaluator_trust(manifest: Manifest, root: Path) -> list[EvaluatorTrust]:
    """Calibration of every evaluator in the manifest, from ``.llmops/calibration/`` under ``root``."""
    from llmops.evaluators.calibration import load_calibration

    out = []
    for ev in manifest.evaluators:
        kind, version = str(ev.get("kind", "")), str(ev.get("version", "1"))
        report = load_calibration(root, kind, version, threshold=ev.get("threshold"))
        if report is None:
            out.append(EvaluatorTrust(name=str(ev.get("name", kind)), kind=kind, version=version))
            continue
        out.append(EvaluatorTrust(name=str(ev.get("name", kind)), kind=kind, version=version, calibrated=True,
                                  n=report.n, accuracy=report.accuracy, kappa=report.kappa,
                                  agreement=report.agreement, tpr=report.tpr, fpr=report.fpr,
                                  labels_file=report.labels_file))
    return out
