"""One way to open the project's SQLite files (run store, trace store, response cache).

WAL mode lets several processes (xdist workers, parallel suites) read and write one file; a file
that is not SQLite, fails SQLite's quick check, or was written in another format is reported as
a :class:`StoreError` that says what to do, never used silently.

In WAL mode, committed data sits in the ``-wal`` file until a checkpoint copies it into the main
file. Users commit the main file (the response cache CI replays from), so every connection is
closed through :func:`close_sqlite`, which checkpoints first, and a process that exits with a
connection still open checkpoints and closes it in an exit hook: each file is complete on its own
when the command exits.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import sqlite3
import threading
import weakref
from pathlib import Path

from llmops.errors import StoreError

QUICK_CHECK_MAX_BYTES = 16 * 1024 * 1024

class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the exit hook must not keep it alive)."""


# Connections opened by this process (a forked child must never checkpoint or close its parent's).
_OPEN: weakref.WeakKeyDictionary[_Connection, int] = weakref.WeakKeyDictionary()
_OPEN_LOCK = threading.Lock()


def close_sqlite(conn: sqlite3.Connection) -> None:
    """Checkpoint the WAL into the main file, then close ``conn``.

    The checkpoint is best effort: another process reading the file at that moment can keep part
    of the WAL alive (the last connection to close checkpoints the rest); a failure never loses
    data, it only leaves it in the ``-wal`` file.
    """
    with _OPEN_LOCK:
        if isinstance(conn, _Connection):
            _OPEN.pop(conn, None)
    try:
        if conn.in_transaction:
            conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass
    conn.close()


def _close_all() -> None:
    with _OPEN_LOCK:
        mine = [c for c, pid in _OPEN.items() if pid == os.getpid()]
    for conn in mine:
        with contextlib.suppress(sqlite3.Error):
            close_sqlite(conn)


# Registered at import, before any other llmops exit hook: ``atexit`` runs hooks last-in first-out,
# so the stores close after the tracers' exit hook has written the spans still queued. Registered
# on first open instead, it ran before that hook whenever a tracer started before the first store
# opened (`llmops run`): the last units' spans hit a closed trace store and were lost.
atexit.register(_close_all)


def _track(conn: _Connection) -> None:
    with _OPEN_LOCK:
        _OPEN[conn] = os.getpid()


def require_columns(conn: sqlite3.Connection, path: Path, what: str, table: str, columns: set[str],
                    hint: str) -> None:
    """Refuse a file whose ``table`` lacks ``columns`` (a file crafted or written by something else).

    Raises:
        StoreError: naming the table and the missing columns.
    """
    have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})").fetchall()}
    missing = columns - have
    if missing:
        raise StoreError(f"{path}: the {what}'s table '{table}' lacks column(s) {', '.join(sorted(missing))}",
                         hint=hint)


def _refuse_foreign_objects(conn: sqlite3.Connection, path: Path, what: str, hint: str) -> None:
    """Refuse views and triggers: llmops never creates them, so a file holding one was crafted.

    A committed cache whose ``responses`` table was replaced by a view over an infinite recursive
    CTE would otherwise hang every replay on its first lookup; a trigger would run on our writes.
    """
    row = conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger') LIMIT 1").fetchone()
    if row is not None:
        conn.close()
        raise StoreError(f"{path}: the {what} holds a {row[0]} '{row[1]}', which llmops never creates "
                         "(the file was crafted or is not an llmops file); it is not used", hint=hint)


def is_disk_full(exc: BaseException) -> bool:
    """Whether an SQLite or OS error means "no space left" (SQLITE_FULL, ENOSPC, EDQUOT)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def open_sqlite(path: Path, schema: str, *, what: str, hint: str, timeout: float = 30.0,
                format_version: str | None = None, setting: str = "") -> sqlite3.Connection:
    """Open (creating with its folder) a WAL-mode SQLite file and apply ``schema``.

    Args:
        path: The database file.
        schema: ``CREATE ... IF NOT EXISTS`` statements.
        what: Human name of the file ("run store"), for messages.
        hint: What to do when the file is damaged.
        timeout: Seconds to wait on a lock held by another process.
        format_version: When given, recorded in a ``meta`` table and checked on every open.
        setting: The setting that chooses the path (named when the format differs).

    Raises:
        StoreError: when the file is not a usable SQLite database or has another format.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn: _Connection | None = None
    try:
        conn = sqlite3.connect(path, timeout=timeout, check_same_thread=False, isolation_level=None,
                               factory=_Connection)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        _refuse_foreign_objects(conn, path, what, hint)
        conn.executescript(schema)
        if format_version is not None:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
            if row is None:
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (format_version,))
            elif row[0] != format_version:
                conn.close()
                raise StoreError(f"{path}: {what} format {row[0]}, expected {format_version}",
                                 hint=f"use a new {setting or 'path'}, or the llmops version that wrote it")
        # quick_check reads every page: on a store grown over months it would cost more than the
        # command itself, on every command. Beyond the cap, damage is reported (as StoreError,
        # see each store's queries) by the first read that touches a damaged page.
        if _size(path) <= QUICK_CHECK_MAX_BYTES:
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check and check[0] != "ok":
                raise sqlite3.DatabaseError(check[0])
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        if is_disk_full(exc):  # not damage: moving the file aside would not help
            raise StoreError(f"{path}: disk full: cannot write the {what} ({exc})",
                             hint="free some disk space (the file itself is intact), then run again") from None
        raise StoreError(f"{path}: the {what} is corrupted or not a SQLite file ({exc})", hint=hint) from None
    _track(conn)
    return conn
