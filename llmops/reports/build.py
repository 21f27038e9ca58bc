"""Build every report format of a stored run, against a baseline file or another run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from llmops.compare import Comparison, compare_run
from llmops.config import Settings, load_settings
from llmops.evalsets.models import Gate
from llmops.regression import Baseline, Verdict, baseline_from_run, baseline_path, judge_run, read_baseline
from llmops.reports.trust import EvaluatorTrust, evaluator_trust
from llmops.runner.results import RunResult
from llmops.runner.store import RunStore


@dataclass(frozen=True)
class Report:
    """A run with its comparison, verdict and optional baseline run; renders on demand."""

    run: RunResult
    comparison: Comparison
    verdict: Verdict
    baseline_run: RunResult | None = None
    trust: list[EvaluatorTrust] | None = None

    def html(self) -> str:
        """Self-contained HTML."""
        from llmops.reports.html import render_html

        return render_html(self.run, comparison=self.comparison, verdict=self.verdict,
                           baseline_run=self.baseline_run, trust=self.trust)

    def markdown(self) -> str:
        """Markdown for a PR comment or step summary."""
        from llmops.reports.markdown import render_markdown

        return render_markdown(self.run, comparison=self.comparison, verdict=self.verdict, trust=self.trust)

    def json(self) -> str:
        """Run, comparison and verdict as JSON."""
        return json.dumps({"run": self.run.model_dump(mode="json"),
                           "comparison": self.comparison.model_dump(mode="json"),
                           "verdict": self.verdict.model_dump(mode="json")}, indent=2, ensure_ascii=False) + "\n"


def _gate_of(run: RunResult) -> Gate:
    from llmops.evalsets.loader import load_suite

    try:
        return load_suite(run.manifest.suite_path).suite.gate
    except Exception:  # the suite may have moved; the default gate still compares fairly
        return Gate()


def build_report(run_id: str, *, settings: Settings | None = None, baseline: str | Path | None = None,
                 store: str | Path | None = None) -> Report:
    """Load a run and judge it against a baseline file, another run, or the suite's default baseline.

    Args:
        run_id: Run id, unique prefix or ``latest``.
        settings: Configuration.
        baseline: A baseline JSON file, or a run id in the same store.
        store: The run store (default: ``settings.store_path``).
    """
    settings = settings or load_settings()
    runs = RunStore(store or settings.path(settings.store_path))
    run = runs.load(run_id)
    gate = _gate_of(run)
    baseline_run = None
    reference: Baseline | None
    if baseline is not None and Path(baseline).is_file():
        reference = read_baseline(baseline)
    elif baseline is not None:
        baseline_run = runs.load(str(baseline))
        reference = baseline_from_run(baseline_run)
    else:
        default = baseline_path(settings, run.manifest.suite)
        reference = read_baseline(default) if default.exists() else None
    verdict = judge_run(run, gate, reference)
    return Report(run=run, comparison=compare_run(run), verdict=verdict, baseline_run=baseline_run,
                  trust=evaluator_trust(run.manifest, settings.root))
