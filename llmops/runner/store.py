"""The run store: every unit result is committed to SQLite the moment it completes.

A run killed at any point (SIGKILL included) keeps what it finished; resume reads the plan and
the finished unit keys back and does only the rest. WAL mode lets several runs (and several
processes, e.g. pytest-xdist workers) write to one store at once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from llmops._sqlite import open_sqlite
from llmops.errors import StoreError, UserError
from llmops.runner.results import Manifest, RunResult, UnitResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    suite TEXT NOT NULL,
    created REAL NOT NULL,
    plan TEXT NOT NULL,
    manifest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    seq INTEGER NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (run_id, unit)
);
-- The next seq of a run is MAX(seq) + 1: without this index each insert scanned the whole run.
CREATE INDEX IF NOT EXISTS results_by_seq ON results (run_id, seq);
"""
STORE_FORMAT = "1"


class RunPlan(BaseModel):
    """What a run was asked to do; enough to resume it in another process."""

    suite_path: str
    models: list[str]
    prompts: list[str]
    repeat: int
    seed: int
    params: dict[str, Any] = {}
    cache: str = "read-write"
    concurrency: int = 4
    shard: str | None = None
    max_cost_usd: float | None = None
    max_errors: float | None = None


class RunStore:
    """SQLite store of runs and their unit results.

    Args:
        path: The database file (created with its folder).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_sqlite(
                self.path, SCHEMA, what="run store", timeout=60, format_version=STORE_FORMAT, setting="store_path",
                hint="move it aside and re-run; finished results in it may be recoverable with the sqlite3 "
                     "'.recover' command")
        return self._conn

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db().execute(sql, args).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: {exc}") from None

    # ---- runs -----------------------------------------------------------------------------
    def create_run(self, manifest: Manifest, plan: RunPlan) -> None:
        """Register a new run."""
        self._execute("INSERT INTO runs (run_id, suite, created, plan, manifest) VALUES (?,?,?,?,?)",
                      (manifest.run_id, manifest.suite, time.time(), plan.model_dump_json(),
                       manifest.model_dump_json()))

    def update_manifest(self, manifest: Manifest) -> None:
        """Replace the stored manifest of a run."""
        self._execute("UPDATE runs SET manifest = ? WHERE run_id = ?",
                      (manifest.model_dump_json(), manifest.run_id))

    def add_result(self, run_id: str, result: UnitResult) -> bool:
        """Commit one unit result. Returns False if the unit already had one (never duplicated)."""
        with self._lock:
            try:
                cur = self._db().execute(
                    "INSERT OR IGNORE INTO results (run_id, unit, seq, result) VALUES "
                    "(?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM results WHERE run_id = ?), ?)",
                    (run_id, result.key, run_id, result.model_dump_json()))
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: {exc}") from None
            return cur.rowcount == 1

    def _parse(self, model: type[BaseModel], blob: str, what: str) -> Any:
        try:
            return model.model_validate_json(blob)
        except ValidationError as exc:
            raise StoreError(f"{self.path}: corrupted {what} ({exc.errors()[0]['msg']})",
                             hint="the row was written by another version or damaged; start a new run") from None

    def plan(self, run_id: str) -> RunPlan:
        """The stored plan of a run."""
        rows = self._execute("SELECT plan FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise UserError(f"no run '{run_id}' in {self.path}", key=run_id,
                            hint="`llmops runs list` shows the runs in the store")
        return self._parse(RunPlan, rows[0][0], f"plan of run {run_id}")  # type: ignore[no-any-return]

    def manifest(self, run_id: str) -> Manifest:
        """The stored manifest of a run."""
        rows = self._execute("SELECT manifest FROM runs WHERE run_id = ?", (self.resolve_id(run_id),))
        return self._parse(Manifest, rows[0][0], f"manifest of run {run_id}")  # type: ignore[no-any-return]

    def resolve_id(self, run_id: str) -> str:
        """Accept a unique prefix of a run id, or ``latest``."""
        if run_id == "latest":
            rows = self._execute("SELECT run_id FROM runs ORDER BY created DESC LIMIT 1")
        else:
            rows = self._execute("SELECT run_id FROM runs WHERE run_id = ? OR run_id LIKE ? LIMIT 2",
                                 (run_id, run_id.replace("%", "") + "%"))
        if len(rows) == 1 or (rows and rows[0][0] == run_id):
            return str(rows[0][0])
        if not rows:
            raise UserError(f"no run '{run_id}' in {self.path}", key=run_id,
                            hint="`llmops runs list` shows the runs in the store")
        raise UserError(f"run id prefix '{run_id}' is ambiguous", key=run_id)

    def results(self, run_id: str) -> list[UnitResult]:
        """Unit results of a run in completion order (read in batches: no copy of every row at once)."""
        return list(self.iter_results(run_id))

    def count(self, run_id: str) -> int:
        """How many unit results a run has."""
        return int(self._execute("SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,))[0][0])

    def spent(self, run_id: str) -> float:
        """USD spent by the stored results of a run (calls and judges), summed in SQL."""
        rows = self._execute("SELECT SUM(json_extract(result, '$.cost_usd') + json_extract(result, "
                             "'$.judge_cost_usd')) FROM results WHERE run_id = ?", (run_id,))
        return float(rows[0][0] or 0.0)

    def iter_results(self, run_id: str, batch: int = 1000) -> Iterator[UnitResult]:
        """Stream results without loading the whole run."""
        last = 0
        while True:
            rows = self._execute("SELECT seq, result FROM results WHERE run_id = ? AND seq > ? "
                                 "ORDER BY seq LIMIT ?", (run_id, last, batch))
            if not rows:
                return
            for seq, blob in rows:
                last = seq
                yield self._parse(UnitResult, blob, f"result in run {run_id}")

    def done_units(self, run_id: str) -> set[str]:
        """Keys of the units that already have a result."""
        return {r[0] for r in self._execute("SELECT unit FROM results WHERE run_id = ?", (run_id,))}

    def load(self, run_id: str) -> RunResult:
        """A whole run (manifest and results)."""
        rid = self.resolve_id(run_id)
        return RunResult(manifest=self.manifest(rid), results=self.results(rid))

    def runs(self, limit: int = 50) -> list[Manifest]:
        """Most recent runs first."""
        rows = self._execute("SELECT manifest FROM runs ORDER BY created DESC LIMIT ?", (limit,))
        return [self._parse(Manifest, r[0], "manifest") for r in rows]

    def result_counts(self, run_id: str) -> dict[str, int]:
        """Units by status, computed in SQL (cheap for big runs)."""
        rows = self._execute("SELECT json_extract(result, '$.status'), COUNT(*) FROM results "
                             "WHERE run_id = ? GROUP BY 1", (run_id,))
        return {str(k): int(v) for k, v in rows}

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def dumps(data: Any) -> str:
    """Stable JSON (sorted keys) for files meant to be diffed and committed."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
