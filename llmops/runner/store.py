"""The run store: every unit result that cost a provider call is committed the moment it completes.

Results the cache answered alone are committed in small batches (see ``RunStore.add_result``).
A run killed at any point (SIGKILL included) keeps every answer it paid for; resume reads the plan and
the finished unit keys back and does only the rest. WAL mode lets several runs (and several
processes, e.g. pytest-xdist workers) write to one store at once.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from pydantic import BaseModel, ValidationError

from llmops._sqlite import close_sqlite, open_sqlite
from llmops.errors import StoreError, UserError
from llmops.runner.results import Manifest, RunResult, UnitResult, group_key

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
-- The runs list (`llmops runs list`, `llmops view`) reads newest first, optionally of one suite.
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created);
CREATE INDEX IF NOT EXISTS runs_by_suite ON runs (suite, created);
-- Provider calls of a run, counted as each is sent by whichever process sends it: a run killed
-- and resumed (or split across worker processes) reports every call it paid for.
CREATE TABLE IF NOT EXISTS provider_calls (
    run_id TEXT PRIMARY KEY,
    calls INTEGER NOT NULL
);
"""
STORE_FORMAT = "1"
# A unit that already has a result keeps it; seq is the run's completion order.
_INSERT_RESULT = ("INSERT OR IGNORE INTO results (run_id, unit, seq, result) VALUES "
                  "(?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM results WHERE run_id = ?), ?)")


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
        self._held: list[tuple[str, str, str, str]] = []
        self._held_since = 0.0

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
                if self._held:  # every read sees every result added, held ones included
                    self._commit_held()
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

    def count_provider_call(self, run_id: str) -> None:
        """Count one provider call of ``run_id``, committed before the call is sent.

        Raises:
            StoreError: when the store cannot be written.
        """
        self._execute("INSERT INTO provider_calls (run_id, calls) VALUES (?, 1) "
                      "ON CONFLICT (run_id) DO UPDATE SET calls = calls + 1", (run_id,))

    def provider_calls(self, run_id: str) -> int:
        """Provider calls counted for ``run_id`` by every process that worked on it (0 if none)."""
        rows = self._execute("SELECT calls FROM provider_calls WHERE run_id = ?", (run_id,))
        return int(rows[0][0]) if rows else 0

    def add_result(self, run_id: str, result: UnitResult, *, hold: bool = False) -> None:
        """Store one unit result; a unit that already has one keeps it (never duplicated).

        Args:
            run_id: The run.
            result: The unit's result.
            hold: The result cost no provider call (the cache answered everything): it may wait
                for a batched commit, at most :attr:`HOLD_MAX` results or :attr:`HOLD_S` seconds,
                and is committed before any read, by :meth:`flush` and by :meth:`close`. A
                crash loses at most those, which a resume answers from the cache again for
                free; a 2,000-unit replay no longer pays 2,000 commits. Otherwise (the default)
                the result is committed now, with any held before it.
        """
        row = (run_id, result.key, run_id, result.model_dump_json())
        with self._lock:
            try:
                if not hold and not self._held:  # the usual live result: one autocommit insert
                    self._db().execute(_INSERT_RESULT, row)
                    return
                if not self._held:
                    self._held_since = time.monotonic()
                self._held.append(row)
                if hold and len(self._held) < self.HOLD_MAX and time.monotonic() - self._held_since < self.HOLD_S:
                    return
                self._commit_held()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: {exc}") from None

    #: Most results held for one batched commit (see :meth:`add_result`).
    HOLD_MAX = 500
    #: Longest a held result waits for its commit, in seconds (checked as results arrive).
    HOLD_S = 0.5

    def _commit_held(self) -> None:
        """Commit the held results in one transaction (the caller holds the lock)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_INSERT_RESULT, self._held)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise  # the rows stay held: the next commit retries them
        self._held = []

    def flush(self) -> None:
        """Commit any held results now.

        Raises:
            StoreError: when the store cannot be written.
        """
        with self._lock:
            if self._held:
                try:
                    self._commit_held()
                except sqlite3.DatabaseError as exc:
                    raise StoreError(f"{self.path}: {exc}") from None

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

    def iter_results(self, run_id: str, batch: int = 1000, *, max_seq: int | None = None,
                     statuses: Collection[str] | None = None) -> Iterator[UnitResult]:
        """Stream results without loading the whole run (``max_seq``: only rows stored up to it).

        ``statuses`` keeps only results with one of these statuses, filtered in SQL (the
        others are never parsed).
        """
        for (blob,) in self._paged(run_id, "result", batch, max_seq, statuses):
            yield self._parse(UnitResult, blob, f"result in run {run_id}")

    def _paged(self, run_id: str, columns: str, batch: int = 1000, max_seq: int | None = None,
               statuses: Collection[str] | None = None) -> Iterator[tuple[Any, ...]]:
        """``columns`` of a run's rows in completion order, a batch per query (never all rows at once)."""
        last = 0
        limit = max_seq if max_seq is not None else 2**62
        where, wanted = "", tuple(statuses or ())
        if statuses is not None:
            where = f" AND json_extract(result, '$.status') IN ({','.join('?' * len(wanted)) or 'NULL'})"
        while True:
            rows = self._execute(f"SELECT seq, {columns} FROM results WHERE run_id = ? AND seq > ? AND seq <= ?"
                                 f"{where} ORDER BY seq LIMIT ?", (run_id, last, limit, *wanted, batch))
            if not rows:
                return
            for row in rows:
                last = row[0]
                yield tuple(row[1:])

    def iter_results_by_unit(self, run_id: str, batch: int = 1000, *,
                             max_seq: int | None = None) -> Iterator[UnitResult]:
        """Stream results ordered by unit key, so the repeats of a case × prompt × model are adjacent.

        The primary key index serves the order: nothing is sorted in memory.
        """
        last = ""
        limit = max_seq if max_seq is not None else 2**62
        while True:
            rows = self._execute("SELECT unit, result FROM results WHERE run_id = ? AND unit > ? AND seq <= ? "
                                 "ORDER BY unit LIMIT ?", (run_id, last, limit, batch))
            if not rows:
                return
            for unit, blob in rows:
                last = unit
                yield self._parse(UnitResult, blob, f"result in run {run_id}")

    def last_seq(self, run_id: str) -> int:
        """The highest sequence number of a run's results (0 without results)."""
        return int(self._execute("SELECT COALESCE(MAX(seq), 0) FROM results WHERE run_id = ?", (run_id,))[0][0])

    def result_at(self, run_id: str, index: int, max_seq: int | None = None) -> UnitResult:
        """The ``index``-th result (0-based, completion order) of a run."""
        limit = max_seq if max_seq is not None else 2**62
        rows = self._execute("SELECT result FROM results WHERE run_id = ? AND seq <= ? ORDER BY seq "
                             "LIMIT 1 OFFSET ?", (run_id, limit, index))
        if not rows:
            raise IndexError(index)
        return self._parse(UnitResult, rows[0][0], f"result in run {run_id}")  # type: ignore[no-any-return]

    def variant_keys(self, run_id: str, max_seq: int | None = None) -> set[tuple[str, str]]:
        """The (prompt, model) pairs a run's results cover, computed in SQL."""
        limit = max_seq if max_seq is not None else 2**62
        rows = self._execute("SELECT DISTINCT json_extract(result, '$.prompt'), json_extract(result, '$.model') "
                             "FROM results WHERE run_id = ? AND seq <= ?", (run_id, limit))
        return {(str(p), str(m)) for p, m in rows}

    def usage(self, run_id: str) -> RunUsage:
        """Totals of a run's stored results for its manifest, without holding the results.

        The sums are taken in Python in completion order (the order the runner used to sum
        them in), so they are the same floats as before; the latency percentiles come from
        SQL's ORDER BY, exactly as :func:`percentile` would interpolate them.
        """
        out = RunUsage()
        for p_tok, c_tok, cost, judge, cached, recorded in self._paged(
                run_id, "json_extract(result, '$.prompt_tokens'), json_extract(result, '$.completion_tokens'), "
                "json_extract(result, '$.cost_usd'), json_extract(result, '$.judge_cost_usd'), "
                "json_extract(result, '$.cached'), json_extract(result, '$.recorded_cost_usd')", batch=5000):
            out.units += 1
            out.prompt_tokens += int(p_tok or 0)
            out.completion_tokens += int(c_tok or 0)
            out.cost_usd += float(cost or 0.0)
            out.judge_cost_usd += float(judge or 0.0)
            out.cache_hits += bool(cached)
            out.recorded_cost_usd += float(recorded or 0.0)
        where = "run_id = ? AND json_extract(result, '$.latency_s') IS NOT NULL"
        n = int(self._execute(f"SELECT COUNT(*) FROM results WHERE {where}", (run_id,))[0][0])
        for q in (0.5, 0.95):
            value: float | None = None
            if n:
                pos = q * (n - 1)
                low = int(pos)
                rows = self._execute(f"SELECT json_extract(result, '$.latency_s') FROM results WHERE {where} "
                                     "ORDER BY 1 LIMIT 2 OFFSET ?", (run_id, low))
                lo = float(rows[0][0])
                hi = float(rows[1][0]) if len(rows) > 1 else lo
                value = lo + (hi - lo) * (pos - low)
            out.latency_percentiles[q] = value
        return out

    def forget_errors(self, run_id: str) -> int:
        """Delete the run's results that ended in ``error`` (so a resume runs those units again).

        Returns:
            How many results were deleted.
        """
        with self._lock:
            try:
                if self._held:
                    self._commit_held()
                cur = self._db().execute("DELETE FROM results WHERE run_id = ? AND "
                                         "json_extract(result, '$.status') = 'error'", (run_id,))
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: {exc}") from None
        return int(cur.rowcount)

    def completion_token_means(self, suite: str, runs: int = 5) -> dict[tuple[str, str], float]:
        """Mean completion tokens per (prompt, model) of paid answers in the last ``runs`` runs of a suite.

        What a dry run prices as the typical call (cached, errored and skipped units left out).
        """
        rows = self._execute(
            "SELECT json_extract(result, '$.prompt'), json_extract(result, '$.model'), "
            "AVG(json_extract(result, '$.completion_tokens')) FROM results WHERE run_id IN "
            "(SELECT run_id FROM runs WHERE suite = ? ORDER BY created DESC LIMIT ?) "
            "AND json_extract(result, '$.status') NOT IN ('error', 'skipped') "
            "AND NOT json_extract(result, '$.cached') GROUP BY 1, 2", (suite, runs))
        return {(str(p), str(m)): float(avg) for p, m, avg in rows if avg is not None}

    def done_units(self, run_id: str) -> set[str]:
        """Keys of the units that already have a result."""
        return {r[0] for r in self._execute("SELECT unit FROM results WHERE run_id = ?", (run_id,))}

    def load(self, run_id: str) -> RunResult:
        """A whole run: its manifest, and its results read from the store as they are used.

        Every row is parsed once here (and dropped), so a damaged row is a :class:`StoreError`
        now rather than in the middle of a report.
        """
        rid = self.resolve_id(run_id)
        results = StoredResults(self, rid)
        for _ in results:
            pass
        return RunResult(manifest=self.manifest(rid), results=results)

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
        """Commit any held results and close the connection."""
        self.flush()
        with self._lock:
            if self._conn is not None:
                close_sqlite(self._conn)
                self._conn = None


class RunUsage:
    """Totals over the stored results of a run (see :meth:`RunStore.usage`)."""

    def __init__(self) -> None:
        self.units = 0
        self.cache_hits = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0
        self.judge_cost_usd = 0.0
        self.recorded_cost_usd = 0.0
        self.latency_percentiles: dict[float, float | None] = {}


class StoredResults(Sequence[UnitResult]):
    """The results of a run, read from the run store when used instead of held in memory.

    It behaves like the list of results a run used to carry (``len``, iteration, indexing,
    slicing, truthiness, ``==`` with a list): a 20,000-unit run's results as Python objects take
    tens of MB, while this holds a store handle and a count. The rows are those stored when it
    was made (a run still being written to does not change under a reader); ``extra`` results
    (units skipped for the budget, never stored) follow them. Iterating again reads the store
    again; ``list(results)`` materialises them when that is really wanted. Pickling (and
    ``copy.deepcopy``) turns it into a plain list.

    Args:
        store: The run store.
        run_id: The run.
        extra: Results that follow the stored ones.
    """

    def __init__(self, store: RunStore, run_id: str, extra: Iterable[UnitResult] = ()) -> None:
        self.store = store
        self.run_id = run_id
        self.extra = tuple(extra)
        self._max_seq = store.last_seq(run_id)
        self._stored = store.count(run_id)

    def __len__(self) -> int:
        return self._stored + len(self.extra)

    def __iter__(self) -> Iterator[UnitResult]:
        yield from self.store.iter_results(self.run_id, max_seq=self._max_seq)
        yield from self.extra

    @overload
    def __getitem__(self, index: int) -> UnitResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[UnitResult]: ...

    def __getitem__(self, index: int | slice) -> UnitResult | list[UnitResult]:
        if isinstance(index, slice):
            return list(self)[index]
        n = len(self)
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("result index out of range")
        if i >= self._stored:
            return self.extra[i - self._stored]
        return self.store.result_at(self.run_id, i, self._max_seq)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StoredResults | list | tuple):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, like the list it stands for

    def __repr__(self) -> str:
        return f"<StoredResults of run {self.run_id}: {len(self)} results>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))

    def by_unit(self) -> Iterator[UnitResult]:
        """The results ordered by unit key: the repeats of a case × prompt × model are adjacent."""
        # Unit keys sort like their group keys, so the stored rows and the extra ones merge in order.
        yield from heapq.merge(self.store.iter_results_by_unit(self.run_id, max_seq=self._max_seq),
                               sorted(self.extra, key=group_key), key=group_key)

    def with_status(self, *statuses: str) -> Iterator[UnitResult]:
        """The results with one of ``statuses``, in order; the store filters them in SQL."""
        yield from self.store.iter_results(self.run_id, max_seq=self._max_seq, statuses=statuses)
        yield from (r for r in self.extra if r.status in statuses)

    def variant_keys(self) -> set[tuple[str, str]]:
        """The (prompt, model) pairs of the results."""
        return self.store.variant_keys(self.run_id, self._max_seq) | {(r.prompt, r.model) for r in self.extra}


def dumps(data: Any) -> str:
    """Stable JSON (sorted keys) for files meant to be diffed and committed."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
