"""Suites and Langfuse datasets: ``llmops datasets push SUITE`` and ``llmops datasets pull NAME``.

Through the Langfuse SDK's own dataset calls (``create_dataset``, ``create_dataset_item``,
``get_dataset``), never hand-written HTTP. A case becomes an item (inputs -> input, expected ->
expected output, metadata -> metadata) whose id is derived from the dataset name and the case id,
so pushing again updates the items instead of duplicating them; a pulled item becomes a JSONL
case whose id is the original case id (or the item id), so paired statistics follow an item
across runs. Like the exporter, this module imports ``langfuse`` only inside its functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.errors import UserError

if TYPE_CHECKING:
    from llmops.config import Settings
    from llmops.evalsets.models import CasesFrom, DatasetPin
    from llmops.evalsets.snapshot import DatasetSnapshot
    from llmops.tracing.store import TraceDetail

# Metadata keys llmops adds to an item (kept out of the case's own metadata on pull).
CASE_ID_KEY = "llmops_case_id"
_OWN_KEYS = (CASE_ID_KEY, "llmops_contexts", "llmops_tags", "llmops_suite")


def item_id(dataset: str, case_id: str) -> str:
    """The stable Langfuse item id of a case (item ids are global across datasets)."""
    return "llmops-" + hashlib.sha256(f"{dataset}\0{case_id}".encode()).hexdigest()[:32]


@dataclass
class DatasetPushResult:
    """What ``datasets push`` did.

    Attributes:
        dataset: The dataset name.
        created: True when the dataset did not exist before.
        items: Ids of the items created or updated (one per case).
    """

    dataset: str
    created: bool
    items: list[str] = field(default_factory=list)


@dataclass
class DatasetPullResult:
    """What ``datasets pull`` wrote.

    Attributes:
        dataset: The dataset name.
        path: The JSONL cases file.
        cases: Number of cases written.
        content_hash: sha256 of the file written (its fingerprint).
    """

    dataset: str
    path: Path
    cases: int
    content_hash: str


def push_dataset(settings: Settings, suite_path: Path | str, *, name: str | None = None) -> DatasetPushResult:
    """Create or update the Langfuse dataset holding a suite's cases.

    Args:
        settings: Configuration (Langfuse credentials).
        suite_path: The suite file.
        name: Dataset name (default: the suite's name).

    Raises:
        ConfigError: Langfuse is not configured.
        LangfuseUnavailableError: Langfuse could not be reached (exit 4).
    """
    from llmops.evalsets.loader import load_suite
    from llmops.tracing.langfuse_api import _call, client

    suite = load_suite(suite_path)
    dataset = name or suite.name
    lf = client(settings)
    result = DatasetPushResult(dataset=dataset,
                               created=_ensure_dataset(lf, dataset, f"cases of the llmops suite {suite.name}"))
    for case in suite.cases:
        metadata: dict[str, Any] = {**case.metadata, CASE_ID_KEY: case.id, "llmops_suite": suite.name}
        if case.contexts:
            metadata["llmops_contexts"] = list(case.contexts)
        if case.tags:
            metadata["llmops_tags"] = list(case.tags)
        item = item_id(dataset, case.id)
        _call("dataset item upsert", lf.create_dataset_item, dataset_name=dataset, id=item, input=dict(case.inputs),
              expected_output=case.expected, metadata=metadata)
        result.items.append(item)
    _call("flush", lf.flush)
    return result


def _ensure_dataset(lf: Any, dataset: str, description: str) -> bool:
    """Create the dataset unless it exists; True when it was created."""
    from llmops.tracing.langfuse_api import _call

    try:
        lf.api.datasets.get(dataset_name=dataset)
        return False
    except Exception as exc:
        if getattr(exc, "status_code", None) != 404:
            _call("dataset fetch", _raise, exc)
    _call("dataset create", lf.create_dataset, name=dataset, description=description)
    return True


def traces_to_dataset(settings: Settings, traces: Sequence[TraceDetail], dataset: str, *,
                      prompt_name: str | None = None) -> DatasetPushResult:
    """Add the prompt calls of production traces to a Langfuse dataset, each linked to its source.

    Each call becomes an item (its template inputs -> input, the case metadata of ``traces export``
    -> metadata) linked to the trace and observation it came from; the item id derives from the
    case id, so adding the same trace twice updates its item.

    Raises:
        UserError: no selected trace has a prompt call with recorded inputs.
        LangfuseUnavailableError: Langfuse could not be reached (exit 4).
    """
    from llmops.tracing.export import case_from_generation, case_generations
    from llmops.tracing.langfuse_api import _call, client

    calls = [(t, g, i) for t in traces for i, g in enumerate(case_generations(t, prompt_name))]
    if not calls:
        raise UserError(f"none of the {len(traces)} selected trace(s) has a prompt call with recorded inputs",
                        key="--to-dataset")
    lf = client(settings)
    result = DatasetPushResult(dataset=dataset,
                               created=_ensure_dataset(lf, dataset, "production calls exported by llmops"))
    for trace, gen, index in calls:
        case = case_from_generation(trace, gen, index)
        item = item_id(dataset, case["id"])
        _call("dataset item upsert", lf.create_dataset_item, dataset_name=dataset, id=item, input=case["inputs"],
              metadata={**case["metadata"], CASE_ID_KEY: case["id"], "llmops_tags": case["tags"]},
              source_trace_id=trace.trace_id, source_observation_id=gen.span_id)
        result.items.append(item)
    _call("flush", lf.flush)
    return result


def _raise(exc: Exception) -> None:
    raise exc


def pull_dataset(settings: Settings, name: str, to: Path | str, *,
                 version: datetime | None = None) -> DatasetPullResult:
    """Write a Langfuse dataset's items as a JSONL cases file (for ``cases_file:`` in a suite).

    Args:
        settings: Configuration (Langfuse credentials).
        name: The dataset.
        to: The JSONL file to write (replaced).
        version: The dataset as it was at this time (UTC); default: now.

    Raises:
        UserError: the dataset has no items, or ``to`` is not a ``.jsonl`` file.
        LangfuseUnavailableError: Langfuse could not be reached or does not know the dataset (exit 4).
    """
    from llmops.tracing.langfuse_api import _call, client

    path = Path(to)
    if path.suffix != ".jsonl":
        raise UserError(f"{path}: datasets are pulled into a .jsonl cases file", key="--to")
    dataset = _call("dataset fetch", client(settings).get_dataset, name, version=version)
    rows = [case_row(item) for item in dataset.items if str(getattr(item, "status", "ACTIVE")) != "ARCHIVED"]
    if not rows:
        raise UserError(f"dataset '{name}' has no active items", key=name)
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return DatasetPullResult(dataset=name, path=path, cases=len(rows),
                             content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest())


def case_row(item: Any) -> dict[str, Any]:
    """A suite case (JSONL row) from a Langfuse dataset item."""
    raw_meta = item.metadata if isinstance(item.metadata, dict) else {}
    metadata = {k: v for k, v in raw_meta.items() if k not in _OWN_KEYS}
    metadata["langfuse_item_id"] = item.id
    inputs = item.input if isinstance(item.input, dict) else {"input": item.input}
    row: dict[str, Any] = {"id": str(raw_meta.get(CASE_ID_KEY) or item.id), "inputs": inputs, "metadata": metadata}
    expected = item.expected_output
    if expected is not None:
        row["expected"] = expected if isinstance(expected, str) else json.dumps(expected, ensure_ascii=False)
    if isinstance(raw_meta.get("llmops_contexts"), list):
        row["contexts"] = [str(c) for c in raw_meta["llmops_contexts"]]
    if isinstance(raw_meta.get("llmops_tags"), list):
        row["tags"] = [str(t) for t in raw_meta["llmops_tags"]]
    return row


# ---- suites whose cases are a Langfuse dataset (``cases_from:``) ---------------------------------
def _parse_version(version: str) -> datetime | None:
    if version == "latest":
        return None
    from datetime import UTC

    when = datetime.fromisoformat(version.replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def fetch_snapshot(settings: Settings, spec: CasesFrom) -> DatasetSnapshot:
    """Fetch a dataset's active items (as of ``spec.version``) as a snapshot, through the SDK.

    Raises:
        ConfigError: Langfuse is not configured.
        LangfuseUnavailableError: Langfuse could not be reached or does not know the dataset (exit 4).
    """
    from datetime import UTC

    from llmops.evalsets.snapshot import DatasetSnapshot, SnapshotItem
    from llmops.tracing.langfuse_api import _call, client

    dataset = _call("dataset fetch", client(settings).get_dataset, spec.langfuse_dataset,
                    version=_parse_version(spec.version))
    items = [SnapshotItem(id=str(item.id), case=case_row(item)) for item in dataset.items
             if str(getattr(item, "status", "ACTIVE")).rsplit(".", 1)[-1] != "ARCHIVED"]
    items.sort(key=lambda i: str(i.case["id"]))
    return DatasetSnapshot(dataset=spec.langfuse_dataset, dataset_id=getattr(dataset, "id", None),
                           version=spec.version, fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
                           items=items)


def refresh_snapshot(settings: Settings, spec: CasesFrom, path: Path) -> tuple[str, str | None]:
    """Bring a ``cases_from:`` suite's snapshot up to date from Langfuse, when it can be reached.

    The file is rewritten only when the items changed (their ids or content), so a run against an
    unchanged dataset leaves the committed snapshot as it is. With ``dataset_source = "snapshot"``
    Langfuse is not asked; without Langfuse configured, or when it cannot be reached, the snapshot
    is read as it is (it must exist).

    Returns:
        (``langfuse`` or ``snapshot``, a note saying why the snapshot was read although Langfuse is
        configured, or None).

    Raises:
        ConfigError: Langfuse is not configured and there is no snapshot (exit 2).
        LangfuseUnavailableError: Langfuse could not be reached and there is no snapshot (exit 4).
    """
    from llmops.errors import ConfigError
    from llmops.evalsets.snapshot import read_snapshot
    from llmops.tracing.langfuse_api import LangfuseUnavailableError

    if settings.dataset_source == "snapshot":
        return "snapshot", None
    current = read_snapshot(path)
    if settings.langfuse is None:
        if current is None:
            raise ConfigError(f"cases_from: Langfuse dataset '{spec.langfuse_dataset}' needs Langfuse, which is "
                              f"not configured, or its snapshot {path}, which does not exist",
                              key="LANGFUSE_PUBLIC_KEY",
                              hint="set LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST to fetch it "
                                   "(then commit the snapshot), or restore the committed snapshot")
        return "snapshot", None
    try:
        fetched = fetch_snapshot(settings, spec)
    except LangfuseUnavailableError as exc:
        if current is None:
            raise LangfuseUnavailableError(f"{exc.message}; and there is no snapshot {path} to run from",
                                           hint=exc.hint) from None
        return "snapshot", f"Langfuse dataset {spec.langfuse_dataset} not fetched ({exc.message}); ran the " \
                           f"cases of the snapshot {path.name} (fetched {current.fetched_at})"
    _store(path, current, fetched)
    return "langfuse", None


def snapshot_suite(settings: Settings, suite_path: Path | str) -> tuple[Path, DatasetPin]:
    """``llmops datasets snapshot SUITE``: fetch a ``cases_from:`` suite's dataset into its snapshot.

    Raises:
        UserError: the suite has no ``cases_from:``.
        ConfigError, LangfuseUnavailableError: as :func:`refresh_snapshot` (Langfuse is required here).
    """
    from llmops.evalsets.loader import load_suite
    from llmops.evalsets.snapshot import snapshot_path

    def fetch(spec: CasesFrom, path: Path) -> tuple[str, str | None]:
        from llmops.evalsets.snapshot import read_snapshot

        _store(path, read_snapshot(path), fetch_snapshot(settings, spec))
        return "langfuse", None

    loaded = load_suite(suite_path, refresh=fetch)
    if loaded.dataset is None or loaded.suite.cases_from is None:
        raise UserError(f"{suite_path}: the suite has no cases_from: (its cases are not a Langfuse dataset)",
                        key="cases_from")
    return snapshot_path(loaded.path, loaded.suite.cases_from), loaded.dataset


def _store(path: Path, current: DatasetSnapshot | None, fetched: DatasetSnapshot) -> None:
    """Write the fetched snapshot unless the file already holds the same items (no churn in git)."""
    from llmops.evalsets.snapshot import write_snapshot

    same = (current is not None and (current.dataset, current.dataset_id, current.version)
            == (fetched.dataset, fetched.dataset_id, fetched.version)
            and [i.model_dump() for i in current.items] == [i.model_dump() for i in fetched.items])
    if not same:
        write_snapshot(path, fetched)
