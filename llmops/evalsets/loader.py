"""Load and validate suite files, with errors that name the file, line and key.

YAML is composed to a node tree first so every validation error can point at the line of the
offending key; aliases are expanded under a budget (no "billion laughs"), files are size-capped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from llmops._jsonl import json_objects
from llmops._yaml import YAMLProblem, line_at, load_yaml
from llmops.errors import EvalsetError, did_you_mean
from llmops.evalsets.models import Case, CasesFrom, DatasetPin, EvaluatorSpec, Gate, Suite

#: Called before a ``cases_from:`` suite reads its snapshot: may refresh it from Langfuse. Gets the
#: spec and the snapshot path; returns where the cases came from (``langfuse`` or ``snapshot``)
#: and a note to show (why the snapshot was used although Langfuse is configured), or None.
RefreshHook = Callable[[CasesFrom, Path], tuple[str, str | None]]

MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class LoadedSuite:
    """A validated suite with where it came from.

    Attributes:
        suite: The validated model (with bulk cases merged in).
        path: The suite file.
        name: ``suite.name`` or the file stem.
        dataset_hash: sha256 over the canonical JSON of the cases (for manifests).
        case_lines: Line of each case id in its file (for pytest locations and errors).
        dataset: For a ``cases_from:`` suite, the Langfuse dataset items its cases are.
    """

    suite: Suite
    path: Path
    name: str
    dataset_hash: str
    case_lines: dict[str, tuple[str, int]] = field(default_factory=dict)
    dataset: DatasetPin | None = None

    @property
    def cases(self) -> list[Case]:
        """The cases."""
        return self.suite.cases


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise EvalsetError("is a directory, not a suite file", file=path,
                               hint="name a .yaml file, e.g. evalsets/<suite>.yaml")
        if not path.is_file():  # /dev/zero would fill memory, a FIFO would block forever
            raise EvalsetError("is not a regular file (a device, FIFO or socket)", file=path,
                               hint="name a .yaml, .jsonl or .csv file")
        if size > MAX_FILE_BYTES:
            raise EvalsetError(f"file is {size / 1e6:.0f} MB, above the {MAX_FILE_BYTES // 2**20} MiB limit",
                               file=path, hint="move bulk cases into a JSONL file referenced by cases_file")
        with path.open("rb") as fh:  # read at most one byte past the limit, whatever stat said
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise EvalsetError(f"file is above the {MAX_FILE_BYTES // 2**20} MiB limit", file=path,
                               hint="move bulk cases into a JSONL file referenced by cases_file")
    except FileNotFoundError:
        raise EvalsetError("suite file not found", file=path) from None
    except OSError as exc:
        raise EvalsetError(f"cannot read: {exc.strerror or exc}", file=path) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise EvalsetError(f"not valid UTF-8 (byte {exc.start})", file=path, line=line,
                           hint="save the file as UTF-8") from None


def _parse(text: str, path: Path) -> tuple[Any, yaml.Node | None]:
    try:
        return load_yaml(text)
    except YAMLProblem as exc:
        raise EvalsetError(exc.message, file=path, line=exc.line, key=exc.key) from None


def _model_for(loc: tuple[Any, ...]) -> type[BaseModel]:
    model: type[BaseModel] = Suite
    nested: dict[tuple[str, ...], type[BaseModel]] = {("cases",): Case, ("evaluators",): EvaluatorSpec, ("gate",): Gate,
              ("cases", "assert"): EvaluatorSpec}
    names = tuple(p for p in loc[:-1] if isinstance(p, str))
    for size in range(len(names), 0, -1):
        if names[:size] in nested:
            return nested[names[:size]]
    return model


def _validation_error(exc: ValidationError, path: Path, root: yaml.Node | None,
                      line_offset: int | None = None) -> EvalsetError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    line = line_offset if line_offset is not None else line_at(root, loc)
    hint = None
    if err["type"] == "extra_forbidden" and loc:
        hint = did_you_mean(str(loc[-1]), _model_for(loc).model_fields)
        if hint is None:
            fields = [f.alias or n for n, f in _model_for(loc).model_fields.items()]
            hint = f"allowed keys: {', '.join(fields)}"
        return EvalsetError(f"unknown key '{loc[-1]}' at {key}", file=path, line=line, key=key, hint=hint)
    return EvalsetError(f"{key}: {err['msg']}", file=path, line=line, key=key, hint=hint)


def _load_cases_file(path: Path) -> Iterator[tuple[dict[str, Any], int]]:
    """Yield each row of a bulk cases file with its line.

    One at a time: a 20k-case file never exists twice in memory, as rows and as cases.
    """
    text = _read_text(path)
    if path.suffix.lower() == ".jsonl":
        yield from json_objects(text, path, EvalsetError)
    elif path.suffix.lower() == ".csv":
        yield from _csv_cases(text.removeprefix("\ufeff"), path)  # a UTF-8 BOM is not part of the first column
    else:
        raise EvalsetError("cases_file must be .jsonl or .csv", file=path)


def _csv_cases(text: str, path: Path) -> Iterator[tuple[dict[str, Any], int]]:
    """Rows of a CSV cases file; broken rows (short, long, unclosed quote, huge field) name their line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return
        if len(set(header)) != len(header):
            raise EvalsetError("duplicate column names in the header", file=path, line=1)
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                more = "more" if len(cells) > len(header) else "fewer"
                raise EvalsetError(f"row has {more} cells ({len(cells)}) than the header ({len(header)})",
                                   file=path, line=start)
            case: dict[str, Any] = {"inputs": {}}
            for column, value in zip(header, cells, strict=True):
                if column in ("id", "expected"):
                    case[column] = value
                elif column == "contexts":
                    case["contexts"] = [c for c in (value or "").split("||") if c.strip()]
                else:
                    case["inputs"][column] = value
            yield case, start
    # strict: a quote left open swallows the next rows until a later quote, then fails here instead
    # of merging them silently; so does a field over csv's size limit or an unclosed quote at the end.
    except csv.Error as exc:
        raise EvalsetError(f"invalid CSV: {exc}", file=path, line=reader.line_num or 1) from None


# Case fields added after suites were first hashed (scripted tools of agent loops).
_NEWER_CASE_FIELDS = ("tools", "max_steps")


def dataset_hash(cases: list[Case]) -> str:
    """Canonical hash of a list of cases: sha256 of their JSON array (sorted keys), built case by case.

    Byte for byte the JSON ``json.dumps([...], sort_keys=True, ensure_ascii=False)`` would make,
    so hashes stay comparable with earlier runs, without holding that whole document in memory.
    """
    digest = hashlib.sha256(b"[")
    for index, case in enumerate(cases):
        if index:
            digest.update(b", ")
        data = case.model_dump(mode="json", by_alias=True)
        for key in _NEWER_CASE_FIELDS:  # unset, they leave the hash as it was before they existed
            if not data.get(key):
                data.pop(key, None)
        digest.update(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    digest.update(b"]")
    return digest.hexdigest()


def load_suite(path: Path | str, *, refresh: RefreshHook | None = None) -> LoadedSuite:
    """Read, validate and expand a suite file.

    Args:
        path: The suite file.
        refresh: For a ``cases_from:`` suite, called before its snapshot is read (a run passes
            one that fetches the dataset from Langfuse); None reads the snapshot as it is.

    Raises:
        EvalsetError: naming the file, line and key of the first problem (a ``cases_from:`` suite
            without a snapshot names the snapshot and how to make it).
    """
    path = Path(path)
    text = _read_text(path)
    data, root = _parse(text, path)
    if data is None:
        raise EvalsetError("suite file is empty", file=path,
                           hint="a suite needs at least 'prompt:' and 'cases:'")
    if not isinstance(data, dict):
        raise EvalsetError("a suite file must be a YAML mapping (prompt:, cases:, ...)", file=path, line=1)
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, path, root) from None
    case_lines: dict[str, tuple[str, int]] = {}
    for index, case in enumerate(suite.cases):
        line = line_at(root, ("cases", index)) or 1
        if case.id in case_lines:
            raise EvalsetError(f"duplicate case id '{case.id}' (first at line {case_lines[case.id][1]})",
                               file=path, line=line, key=f"cases.{index}.id")
        case_lines[case.id] = (str(path), line)
    cases = list(suite.cases)
    files = [suite.cases_file] if isinstance(suite.cases_file, str) else list(suite.cases_file or [])
    for name in files:
        bulk = (path.parent / name).resolve()
        bulk_name = str(bulk)  # one string shared by every case's location
        for row, line in _load_cases_file(bulk):
            try:
                case = Case.model_validate(row)
            except ValidationError as exc:
                raise _validation_error(exc, bulk, None, line_offset=line) from None
            if case.id in case_lines:
                where = case_lines[case.id]
                raise EvalsetError(f"duplicate case id '{case.id}' (also at {where[0]}:{where[1]})",
                                   file=bulk, line=line, key="id")
            case_lines[case.id] = (bulk_name, line)
            cases.append(case)
    pin: DatasetPin | None = None
    if suite.cases_from is not None:
        pin = _dataset_cases(suite.cases_from, path, root, refresh, cases, case_lines)
    if not suite.prompts:
        raise EvalsetError("suite names no prompt", file=path, line=1, key="prompt",
                           hint="add 'prompt: name@version' (or 'prompts: [...]')")
    if not cases:
        raise EvalsetError("suite has no cases", file=path, line=line_at(root, ("cases",)), key="cases",
                           hint="add cases: [...] or cases_file: cases.jsonl")
    _check_gate_names(suite, cases, path, root)
    suite = suite.model_copy(update={"cases": cases})
    digest = dataset_hash(cases)
    if pin is not None:
        pin = pin.model_copy(update={"content_hash": digest})
    return LoadedSuite(suite=suite, path=path, name=suite.name or path.stem,
                       dataset_hash=digest, case_lines=case_lines, dataset=pin)


def _dataset_cases(spec: CasesFrom, path: Path, root: Any, refresh: RefreshHook | None, cases: list[Case],
                   case_lines: dict[str, tuple[str, int]]) -> DatasetPin:
    """Add a ``cases_from:`` suite's cases from its snapshot (refreshed first when asked)."""
    from llmops.evalsets.snapshot import case_hash, read_snapshot, snapshot_cases, snapshot_path

    snap = snapshot_path(path, spec)
    line = line_at(root, ("cases_from",)) or 1
    source, note = refresh(spec, snap) if refresh is not None else ("snapshot", None)
    snapshot = read_snapshot(snap)
    if snapshot is None:
        raise EvalsetError(f"cases_from: no snapshot of Langfuse dataset '{spec.langfuse_dataset}' at {snap}",
                           file=path, line=line, key="cases_from",
                           hint="set LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST and run once "
                                "(`llmops datasets snapshot SUITE` or `llmops run`) to fetch it, then commit it")
    if snapshot.dataset != spec.langfuse_dataset or snapshot.version != spec.version:
        raise EvalsetError(f"cases_from: the snapshot {snap.name} holds dataset '{snapshot.dataset}' "
                           f"(version {snapshot.version}), the suite asks for '{spec.langfuse_dataset}' "
                           f"(version {spec.version})", file=path, line=line, key="cases_from",
                           hint="run with Langfuse reachable (`llmops datasets snapshot SUITE`) to fetch it again")
    items: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for case, item in snapshot_cases(snapshot, snap):
        if case.id in case_lines:
            where = case_lines[case.id]
            raise EvalsetError(f"duplicate case id '{case.id}' (item {item}; also at {where[0]}:{where[1]})",
                               file=snap, key="id")
        case_lines[case.id] = (str(snap), 1)
        cases.append(case)
        items[case.id] = item
        hashes[case.id] = case_hash(case)
    return DatasetPin(name=snapshot.dataset, dataset_id=snapshot.dataset_id, version=snapshot.version,
                      fetched_at=snapshot.fetched_at, items=items, case_hashes=hashes, source=source, note=note)


def _check_gate_names(suite: Suite, cases: list[Case], path: Path, root: Any) -> None:
    """``gate.min_mean`` may only name an evaluator of the suite (else it would fail only at the gate)."""
    if not suite.gate.min_mean:
        return
    names = [spec.display_name for spec in suite.evaluators]
    names += [spec.display_name for case in cases for spec in case.assertions if spec.display_name not in names]
    for name in suite.gate.min_mean:
        if name not in names:
            raise EvalsetError(f"gate.min_mean names evaluator '{name}', which the suite does not have",
                               file=path, line=line_at(root, ("gate", "min_mean", name)) or line_at(root, ("gate",)),
                               key=f"gate.min_mean.{name}",
                               hint=did_you_mean(name, names) or f"evaluators: {', '.join(names) or '(none)'}")


def suite_json_schema() -> dict[str, Any]:
    """JSON Schema of suite files (for editors: ``# yaml-language-server: $schema=...``)."""
    schema = Suite.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "llmops suite"
    return schema
