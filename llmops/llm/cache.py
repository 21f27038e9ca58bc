"""Response cache keyed by content, in a SQLite file that survives the process.

The key covers everything that changes an answer: resolved model, messages, params, seed and
the repeat index (so ``--repeat 5`` gives five independent samples, not one sample five times).
Secrets (api keys, headers) are never part of the key or the stored row.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from llmops._sqlite import close_sqlite, open_sqlite, require_columns
from llmops.errors import StoreError
from llmops.llm.types import Completion, Message

# Params that identify *who* is asked but never change *what* is answered, or are secret.
_KEY_EXCLUDED = frozenset({"api_key", "headers", "extra_headers", "timeout", "metadata",
                           "max_retries", "num_retries"})
SCHEMA_VERSION = 1


def request_key(model: str, messages: list[Message], params: dict[str, Any], seed: int | None,
                repeat: int) -> str:
    """Content hash of a request (hex sha256)."""
    payload = {
        "v": SCHEMA_VERSION,
        "model": model,
        "messages": [m.to_dict() for m in messages],
        "params": {k: v for k, v in sorted(params.items()) if k not in _KEY_EXCLUDED},
        "seed": seed,
        "repeat": repeat,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """A process- and thread-safe SQLite response cache.

    Args:
        path: The SQLite file (created with its folder).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            hint = "delete it (it only holds cached responses) or point cache_path elsewhere"
            conn = open_sqlite(
                self.path, "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL,"
                           " completion TEXT NOT NULL, created REAL NOT NULL);",
                what="response cache", hint=hint)
            try:  # a committed cache is replayed in CI: verify its shape before the first lookup
                require_columns(conn, self.path, "response cache", "responses",
                                {"key", "model", "completion", "created"}, hint)
            except StoreError:
                close_sqlite(conn)
                raise
            self._conn = conn
        return self._conn

    def check(self) -> None:
        """Open the file now, so that a damaged cache is reported before a run starts.

        Raises:
            StoreError: when the file is not a usable SQLite database.
        """
        with self._lock:
            self._connect()

    def contains(self, key: str) -> bool:
        """Whether ``key`` has a cached completion (without reading it)."""
        with self._lock:
            try:
                row = self._connect().execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: cache read failed ({exc})",
                                 hint="delete the cache file; it will be rebuilt") from None
        return row is not None

    def get(self, key: str) -> Completion | None:
        """The cached completion for ``key``, marked ``cached=True``, or None."""
        with self._lock:
            try:
                row = self._connect().execute(
                    "SELECT completion FROM responses WHERE key = ?", (key,)).fetchone()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: cache read failed ({exc})",
                                 hint="delete the cache file; it will be rebuilt") from None
        if row is None:
            self.misses += 1
            return None
        try:
            data = json.loads(row[0])
            if not isinstance(data, dict):
                raise TypeError(f"expected a JSON object, got {type(data).__name__}")
            completion = Completion.from_dict(data)
        except (ValueError, TypeError, RecursionError) as exc:
            raise StoreError(f"{self.path}: corrupted cache entry {key[:12]} ({exc})",
                             hint="delete the cache file; it will be rebuilt") from None
        self.hits += 1
        return Completion(**{**completion.__dict__, "cached": True, "cache_key": key})

    def put(self, key: str, completion: Completion) -> None:
        """Store a completion (replacing any older entry for the key)."""
        data = completion.to_dict()
        data["cached"] = False
        blob = json.dumps(data, ensure_ascii=False)
        with self._lock:
            try:
                self._connect().execute(
                    "INSERT OR REPLACE INTO responses (key, model, completion, created) VALUES (?,?,?,?)",
                    (key, completion.resolved_model, blob, time.time()))
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: cache write failed ({exc})") from None

    def __len__(self) -> int:
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                close_sqlite(self._conn)
                self._conn = None
