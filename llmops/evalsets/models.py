"""Pydantic models of suite files (``evalsets/<suite>.yaml``) and their cases.

These are the on-disk contract: they round-trip to YAML and export a JSON Schema
(``llmops schema``) so editors can autocomplete suite files.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmops.llm.agent import ScriptedTool

_CASE_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}$"


class EvaluatorSpec(BaseModel):
    """One evaluator in a suite: its kind, an optional instance name, threshold and parameters.

    Any other key is a parameter of the evaluator (e.g. ``value`` for ``contains``). The short
    form ``- contains: {value: Paris}`` is accepted too.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str = Field(description="Evaluator kind, e.g. contains, regex, hallucination, faithfulness")
    name: str | None = Field(default=None, description="Instance name shown in reports (default: kind)")
    threshold: float | None = Field(default=None, ge=0, le=1, description="Pass threshold in [0, 1]")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"kind": data}
        if isinstance(data, dict) and "kind" not in data and len(data) == 1:
            (kind, params), = data.items()
            if params is None:
                params = {}
            if isinstance(params, dict):
                return {"kind": kind, **params}
        return data

    @property
    def params(self) -> dict[str, Any]:
        """The evaluator's own parameters (everything but kind, name, threshold)."""
        return dict(self.model_extra or {})

    @property
    def display_name(self) -> str:
        """Name used for scores."""
        return self.name or self.kind


class Case(BaseModel):
    """One test case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_CASE_ID, description="Unique, stable id (used in node ids and baselines)")
    inputs: dict[str, Any] = Field(default_factory=dict, description="Template inputs")
    expected: str | None = Field(default=None, description="Expected output (for equals, similarity, ...)")
    contexts: list[str] = Field(default_factory=list, description="Retrieved passages for RAG evaluators")
    metadata: dict[str, Any] = Field(default_factory=dict)
    assertions: list[EvaluatorSpec] = Field(default_factory=list, alias="assert",
                                            description="Per-case evaluators, added to the suite's")
    tags: list[str] = Field(default_factory=list)
    tools: dict[str, list[ScriptedTool]] = Field(
        default_factory=dict,
        description="Scripted tool results per tool name: the prompt runs as an agent loop to a final answer")
    max_steps: int | None = Field(default=None, ge=1, le=100,
                                  description="Most model calls of this case's agent loop (default: the suite's)")

    @field_validator("tools", mode="before")
    @classmethod
    def _short_tools(cls, value: Any) -> Any:
        # `lookup: {result: ...}` or `lookup: "text"` stand for a one-item list.
        if not isinstance(value, dict):
            return value
        out: dict[Any, Any] = {}
        for name, scripts in value.items():
            items = scripts if isinstance(scripts, list) else [scripts]
            out[name] = [s if isinstance(s, dict) and set(s) <= {"when", "result", "python"} and s
                         else {"result": s} for s in items]
        return out

    @field_validator("id", "expected", mode="before")
    @classmethod
    def _scalar_str(cls, value: Any) -> Any:
        # `expected: 330` or `id: 7` in YAML are numbers; the case means the text.
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class Gate(BaseModel):
    """When a run fails CI: absolute gates and the regression rule against the baseline.

    Default gate: a suite that sets neither ``min_pass_rate`` nor ``min_mean`` (nor
    ``max_bias``) and has no baseline needs every measured unit to pass. A run with nothing
    measured (every unit unmeasured, errored, quarantined or skipped) never passes: its outcome
    is "nothing measured" (exit 5); a run stopped by its budget is "stopped at budget" (exit 3).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_pass_rate: float | None = Field(default=None, ge=0, le=1,
                                        description="Minimum fraction of measured results that pass")
    min_mean: dict[str, float] = Field(default_factory=dict,
                                       description="Minimum mean score per evaluator name")
    tolerance: float = Field(default=0.05, ge=0, le=1,
                             description="Smallest drop (pass rate or mean score) that counts as a regression")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Significance level of regression tests")
    max_errors: float | None = Field(default=0, ge=0,
                                     description="Errors allowed: a count (>= 1) or a fraction (< 1)")
    quarantine_flaky: bool = Field(default=False, description="Exclude the cases that were already flaky in the "
                                   "baseline (a case stable there and flaky now is judged: it regressed)")
    max_bias: float | None = Field(default=None, ge=0, le=1,
                                   description="Largest suite-level bias score of the counterfactual bias "
                                               "evaluators (every case pooled) tolerated when significant")


class CasesFrom(BaseModel):
    """Where a suite's cases come from when they live outside the suite: a Langfuse dataset.

    The items are fetched through the Langfuse SDK when Langfuse is configured and reachable, and
    kept in a snapshot file next to the suite (commit it): a run without Langfuse, e.g. a CI replay,
    reads the same cases from there.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    langfuse_dataset: str = Field(min_length=1, max_length=200, description="Name of the Langfuse dataset")
    version: str = Field(default="latest",
                         description="'latest', or an ISO time (UTC): the dataset as it was then")
    snapshot: str | None = Field(default=None, description="Snapshot file of the fetched items, relative to the "
                                 "suite (default: <suite file stem>.dataset.json); commit it")

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        # YAML reads an unquoted timestamp as a datetime: the suite means that time.
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value

    @field_validator("version")
    @classmethod
    def _iso(cls, value: str) -> str:
        if value != "latest":
            from datetime import datetime

            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"version must be 'latest' or an ISO time such as 2026-12-01T00:00:00Z, "
                                 f"got '{value}'") from None
        return value


class DatasetPin(BaseModel):
    """Exactly which Langfuse dataset items a run used (in the run manifest and the snapshot).

    Attributes:
        name: Dataset name.
        dataset_id: Langfuse's id of the dataset (experiment runs are linked to it).
        version: ``latest`` or the ISO time the suite asked for.
        fetched_at: When the items were fetched from Langfuse (ISO, UTC).
        items: Case id -> Langfuse item id.
        case_hashes: Case id -> sha256 (16 hex) of the case's content: an edited item changes it.
        content_hash: sha256 over all the cases (the suite's ``dataset_hash``).
        source: ``langfuse`` when this run fetched them, ``snapshot`` when it read the snapshot.
        note: Why the snapshot was read although Langfuse is configured (unreachable), if so.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dataset_id: str | None = None
    version: str = "latest"
    fetched_at: str = ""
    items: dict[str, str] = Field(default_factory=dict)
    case_hashes: dict[str, str] = Field(default_factory=dict)
    content_hash: str = ""
    source: str = "snapshot"
    note: str | None = None


class Suite(BaseModel):
    """A regression suite file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, description="Suite name (default: file name)")
    description: str = ""
    prompts: list[str] = Field(default_factory=list,
                               description="Prompt references; several to compare versions")
    prompt: str | None = Field(default=None, description="Single prompt reference (short for prompts)")
    models: list[str] = Field(default_factory=list, description="Models (default: the configured one)")
    params: dict[str, Any] = Field(default_factory=dict, description="Call params over the prompt's")
    repeat: int = Field(default=1, ge=1, le=1000)
    max_steps: int = Field(default=8, ge=1, le=100, description="Most model calls of a case's agent loop")
    seed: int | None = None
    evaluators: list[EvaluatorSpec] = Field(default_factory=list)
    gate: Gate = Field(default_factory=Gate)
    cases: list[Case] = Field(default_factory=list)
    cases_file: str | list[str] | None = Field(default=None, description="JSONL or CSV file(s) of cases")
    cases_from: CasesFrom | None = Field(default=None, description="Cases from a Langfuse dataset "
                                         "({langfuse_dataset: NAME, version: latest}), pinned in a snapshot file")

    @model_validator(mode="after")
    def _prompts(self) -> Suite:
        if self.prompt and self.prompt not in self.prompts:
            object.__setattr__(self, "prompts", [self.prompt, *self.prompts])
        return self

    @property
    def prompt_refs(self) -> list[str]:
        """All prompt references of the suite."""
        return list(self.prompts)
