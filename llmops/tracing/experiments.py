"""Eval runs recorded as Langfuse experiment runs (issue 22 §2).

Langfuse SDK v5 records an experiment through the traces themselves: every span of an item's
trace carries the experiment attributes (``langfuse.experiment.id``, ``.name``, ``.dataset.id``,
``.item.id``, ``.item.root_observation_id``, ...), which its own ``run_experiment`` sets and
Langfuse groups into an experiment run ("Experiments via OpenTelemetry"); run-level scores are
scores with ``dataset_run_id`` = the experiment id. Our runner runs the units itself (cache,
retries, budget, run store), so instead of handing them to ``run_experiment`` each unit's own
trace carries those attributes: the Langfuse exporter sets them, with the SDK's attribute names,
on the spans it replays, and the unit's evaluator scores (sent with its trace as always) become
the item's scores. One experiment run per prompt × model: a compare of K variants is K runs.

What a unit's trace needs travels in its root span's metadata (``langfuse_experiment``), so the
local trace store keeps it and ``llmops traces push`` re-sends an undelivered unit as part of
its experiment. Nothing here imports ``langfuse`` except :func:`record_run_scores`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops.config import Settings
    from llmops.evalsets.loader import LoadedSuite
    from llmops.evalsets.models import Case
    from llmops.regression.verdict import Verdict
    from llmops.runner.results import Manifest, RunResult

#: Root-span metadata key carrying a unit's experiment attributes (read by the exporter).
EXPERIMENT_KEY = "langfuse_experiment"


def experiments_wanted(settings: Settings, suite: LoadedSuite) -> bool:
    """Whether a run of ``suite`` is recorded as Langfuse experiment runs.

    ``langfuse_experiments = "auto"``: for ``cases_from:`` suites; ``"on"``: every suite; ``"off"``:
    never. Only when traces go to Langfuse (keys set, ``tracing`` is ``auto`` or ``langfuse``).
    """
    if settings.langfuse is None or settings.tracing not in ("auto", "langfuse"):
        return False
    if settings.langfuse_experiments == "off":
        return False
    return settings.langfuse_experiments == "on" or suite.dataset is not None


def run_name(run_id: str, prompt: str, model: str, variants: int) -> str:
    """The experiment run's name: the run id (with the variant when the run has several)."""
    return run_id if variants <= 1 else f"{run_id} {prompt} {model}"


def experiment_id(name: str) -> str:
    """A stable experiment id (16 hex, like the SDK's) derived from the run name."""
    return hashlib.sha256(f"llmops-experiment\0{name}".encode()).hexdigest()[:16]


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class ExperimentPlan:
    """How the units of one run map to Langfuse experiment runs.

    Attributes:
        run_id: Our run id.
        variants: (prompt, model) of each experiment run, in run order.
        dataset_id: The Langfuse dataset's id (``cases_from:`` suites), else None (local data).
        dataset_name: Its name.
        items: Case id -> Langfuse item id (dataset suites).
        item_version: The dataset version the items were read as of (None for ``latest``).
        description: The suite's description.
        metadata: Experiment metadata: suite, prompts (ref -> content hash), models, git commit...
    """

    run_id: str
    variants: list[tuple[str, str]]
    dataset_id: str | None = None
    dataset_name: str | None = None
    items: dict[str, str] = field(default_factory=dict)
    item_version: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def name(self, prompt: str, model: str) -> str:
        """The experiment run name of a variant."""
        return run_name(self.run_id, prompt, model, len(self.variants))

    def id(self, prompt: str, model: str) -> str:
        """The experiment id of a variant."""
        return experiment_id(self.name(prompt, model))

    def item_id(self, case_id: str) -> str:
        """The experiment item id of a case: its dataset item, or (local suites) a stable hash of its id."""
        return self.items.get(case_id) or hashlib.sha256(f"{self.metadata.get('suite')}\0{case_id}".encode()) \
            .hexdigest()[:16]

    def for_unit(self, case: Case, prompt: str, model: str) -> dict[str, Any]:
        """What a unit's root span carries (``langfuse_experiment`` metadata), all JSON-ready."""
        out: dict[str, Any] = {"id": self.id(prompt, model), "name": self.name(prompt, model),
                               "item_id": self.item_id(case.id),
                               "metadata": _json({**self.metadata, "prompt": prompt, "model": model})}
        if self.dataset_id:
            out["dataset_id"] = self.dataset_id
            if self.item_version:
                out["item_version"] = self.item_version
        if self.description:
            out["description"] = self.description
        if case.expected is not None:
            out["expected_output"] = _json(case.expected)
        if case.metadata:
            out["item_metadata"] = _json(case.metadata)
        return out


def experiment_plan(suite: LoadedSuite, manifest: Manifest, variants: Sequence[tuple[str, str]]) -> ExperimentPlan:
    """The experiment runs of a run (see :func:`experiments_wanted` for whether to make them)."""
    pin = manifest.dataset
    metadata: dict[str, Any] = {"suite": manifest.suite, "run_id": manifest.run_id, "prompts": dict(manifest.prompts),
                                "models": dict(manifest.models), "git_commit": manifest.git_commit,
                                "llmops_version": manifest.llmops_version}
    if pin is not None:
        metadata["dataset"] = {"name": pin.name, "version": pin.version, "content_hash": pin.content_hash}
    return ExperimentPlan(run_id=manifest.run_id, variants=list(variants),
                          dataset_id=pin.dataset_id if pin else None, dataset_name=pin.name if pin else None,
                          items=dict(pin.items) if pin else {},
                          item_version=pin.version if pin and pin.version != "latest" else None,
                          description=suite.suite.description or None, metadata=metadata)


@dataclass
class ExperimentRun:
    """One experiment run as recorded: its name and id, items (units) and failures.

    Attributes:
        name: Run name (shown in Langfuse).
        id: Experiment id.
        prompt: Prompt reference of the variant.
        model: Model of the variant.
        items: Units linked to it (each trace carries the experiment attributes).
        failed: Units that errored (their traces are marked ERROR).
        pass_rate: Pass rate sent as a run-level score (None: nothing decided).
    """

    name: str
    id: str
    prompt: str
    model: str
    items: int = 0
    failed: int = 0
    pass_rate: float | None = None


@dataclass
class ExperimentReport:
    """What :func:`record_run_scores` did.

    Attributes:
        runs: One per variant.
        scores_sent: Run-level scores handed to Langfuse.
        error: Why the run-level scores could not be sent (Langfuse down), or None.
    """

    runs: list[ExperimentRun] = field(default_factory=list)
    scores_sent: int = 0
    error: str | None = None


def record_run_scores(settings: Settings, plan: ExperimentPlan, run: RunResult, verdict: Verdict, *,
                      timeout_s: float = 10.0) -> ExperimentReport:
    """Attach run-level scores to each experiment run: pass rate, errors, the gate verdict.

    Sent through the SDK's ``create_score(dataset_run_id=...)`` (what ``run_experiment`` does with
    its run evaluators) and waited for at most ``timeout_s``. Never raises for Langfuse faults: the
    run's results are in the run store whatever happens; the report says what was not sent.
    """
    report = ExperimentReport()
    by_variant = {(v.prompt, v.model): v for v in verdict.variants}
    for prompt, model in plan.variants:
        v = by_variant.get((prompt, model))
        if v is None:
            continue
        report.runs.append(ExperimentRun(name=plan.name(prompt, model), id=plan.id(prompt, model), prompt=prompt,
                                         model=model, items=v.units - v.skipped, failed=v.errors,
                                         pass_rate=v.pass_rate))
    try:
        from llmops.tracing.langfuse_api import client
        from llmops.tracing.langfuse_exporter import host_reachable, run_bounded

        host = settings.langfuse.host if settings.langfuse else ""
        if not host_reachable(host):
            # The SDK would queue the scores and drop them silently: say it instead.
            report.error = f"Langfuse at {host} cannot be reached: the run-level scores were not sent"
            return report
        lf = client(settings)
        for r in report.runs:
            v = by_variant[(r.prompt, r.model)]
            scores: list[tuple[str, float, str]] = [
                ("gate_passed", 1.0 if verdict.passed else 0.0,
                 f"{verdict.word.lower()}: " + ("; ".join(verdict.reasons)[:480] or "every gate passed")),
                ("errors", float(r.failed), f"{r.failed} of {r.items} units errored"),
            ]
            if r.pass_rate is not None:
                scores.insert(0, ("pass_rate", r.pass_rate, f"{v.passed}/{v.passed + v.failed} measured units"))
            for name, value, comment in scores:
                lf.create_score(dataset_run_id=r.id, name=name, value=value, data_type="NUMERIC", comment=comment,
                                metadata={"run_id": plan.run_id, "source": "eval-run"})
                report.scores_sent += 1
        if not run_bounded(lf.flush, timeout_s):
            report.error = f"Langfuse did not accept the run-level scores within {timeout_s:g} s"
    except Exception as exc:  # Langfuse down or misconfigured: the run store has everything
        report.error = f"run-level scores not sent: {exc}"
    return report
