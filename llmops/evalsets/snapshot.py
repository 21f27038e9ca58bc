"""Snapshots of a Langfuse dataset's items: the cases of a ``cases_from:`` suite, on disk.

A suite whose cases come from a Langfuse dataset reads them from its snapshot file (by default
``<suite stem>.dataset.json`` next to the suite). A run with Langfuse reachable fetches the items
and rewrites the snapshot when they changed (:mod:`llmops.tracing.datasets`); a run without
Langfuse reads the committed snapshot, so a CI replay runs exactly the cases that were pinned.
This module only reads and writes the file (no network).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmops._files import atomic_write_text
from llmops.errors import EvalsetError
from llmops.evalsets.models import Case, CasesFrom

FORMAT_VERSION: Final = 1


class SnapshotItem(BaseModel):
    """One dataset item as a case: the Langfuse item id and the case it maps to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    case: dict[str, Any]


class DatasetSnapshot(BaseModel):
    """The snapshot file: which dataset, as of when, and its items as cases (sorted by case id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: Literal[1] = FORMAT_VERSION
    dataset: str
    dataset_id: str | None = None
    version: str = "latest"
    fetched_at: str = ""
    items: list[SnapshotItem] = Field(default_factory=list)


def snapshot_path(suite_path: Path, spec: CasesFrom) -> Path:
    """Where a suite's dataset snapshot lives (``snapshot:`` relative to the suite, or the default)."""
    name = spec.snapshot or f"{suite_path.stem}.dataset.json"
    return (suite_path.parent / name).resolve()


def case_hash(case: Case) -> str:
    """A short content hash of one case (its inputs, expected output, contexts, metadata...)."""
    data = json.dumps(case.model_dump(mode="json", by_alias=True), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]


def dumps_snapshot(snapshot: DatasetSnapshot) -> str:
    """Serialise a snapshot: sorted keys, indent 2, trailing newline (diff-friendly)."""
    return json.dumps(snapshot.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_snapshot(path: Path, snapshot: DatasetSnapshot) -> None:
    """Write a snapshot atomically (a crash leaves the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, dumps_snapshot(snapshot))


def read_snapshot(path: Path) -> DatasetSnapshot | None:
    """The snapshot at ``path``, or None when there is none.

    Raises:
        EvalsetError: the file exists but is not a valid snapshot.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EvalsetError(f"cannot read the dataset snapshot: {exc.strerror or exc}", file=path) from None
    try:
        return DatasetSnapshot.model_validate_json(text)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise EvalsetError(f"not a valid dataset snapshot ({where}: {err['msg']})", file=path,
                           hint="delete it and run with Langfuse reachable to fetch the dataset again") from None


def snapshot_cases(snapshot: DatasetSnapshot, path: Path) -> list[tuple[Case, str]]:
    """The snapshot's cases with their Langfuse item ids.

    Raises:
        EvalsetError: an item does not make a valid case (naming the item).
    """
    out: list[tuple[Case, str]] = []
    for index, item in enumerate(snapshot.items):
        try:
            out.append((Case.model_validate(item.case), item.id))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise EvalsetError(f"item {item.id}: {key}: {err['msg']}", file=path, key=f"items.{index}.case.{key}",
                               hint="fix the item in Langfuse, then run with Langfuse reachable") from None
    return out
