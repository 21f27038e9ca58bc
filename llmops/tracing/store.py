"""The local trace store: every span and score, in SQLite, whether or not Langfuse is configured.

It is the default destination without Langfuse keys, and it keeps every span when Langfuse is
down (delivery never decides what is kept). ``llmops traces list/show/export/score/drift`` read
it. WAL mode lets the application's tracer write while a CLI in another process reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_serializer, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic_core import ArgsKwargs

from llmops._sqlite import close_sqlite, open_sqlite
from llmops.errors import StoreError, UserError
from llmops.tracing.model import ScoreRecord, SpanRecord, TraceAttributes

SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    span_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    parent_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_time REAL NOT NULL,
    end_time REAL NOT NULL,
    status TEXT NOT NULL,
    prompt_name TEXT,
    prompt_version INTEGER,
    model TEXT,
    cost_usd REAL,
    environment TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id);
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_time);
CREATE INDEX IF NOT EXISTS spans_prompt ON spans (prompt_name, start_time);
CREATE TABLE IF NOT EXISTS scores (
    score_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT,
    name TEXT NOT NULL,
    value REAL,
    created REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS scores_trace ON scores (trace_id);
-- One row per tracer that had an exporter: what reached its server (``llmops traces status``).
CREATE TABLE IF NOT EXISTS deliveries (
    ended REAL NOT NULL,
    exporter TEXT NOT NULL,
    spans INTEGER NOT NULL,
    delivered INTEGER NOT NULL,
    cause TEXT
);
-- Spans meant for an exporter that its server has not acknowledged yet: written with the span,
-- deleted on acknowledgement, so a process that exits (or dies) before delivering leaves them
-- here and ``llmops traces push`` re-sends them.
CREATE TABLE IF NOT EXISTS outbox (
    span_id TEXT PRIMARY KEY,
    added REAL NOT NULL
);
"""
STORE_FORMAT = "1"


# The stored (and JSON) form of a span is flat: the trace attributes sit beside the span's own
# fields, the trace's metadata as ``trace_metadata``. Derived from the records' fields, so a field
# added to :class:`SpanRecord` or :class:`TraceAttributes` is stored, read and shown with no other edit.
_ATTRIBUTE_KEYS: dict[str, str] = {f.name: "trace_metadata" if f.name == "metadata" else f.name
                                   for f in dataclasses.fields(TraceAttributes)}
SPAN_KEYS: tuple[str, ...] = (*(f.name for f in dataclasses.fields(SpanRecord) if f.name != "attributes"),
                              *_ATTRIBUTE_KEYS.values())


def flat_span(span: SpanRecord) -> dict[str, Any]:
    """A span's stored form: its fields, then its trace attributes beside them (:data:`SPAN_KEYS`)."""
    data = dict(span.__dict__)  # a frozen dataclass without slots: exactly its fields, in order
    a = data.pop("attributes")
    for name, key in _ATTRIBUTE_KEYS.items():
        data[key] = getattr(a, name)
    return data


def _nested(data: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`flat_span` (a dict that already has ``attributes`` is left as it is)."""
    if "attributes" in data:
        return data
    data = dict(data)
    data["attributes"] = {name: data.pop(key) for name, key in _ATTRIBUTE_KEYS.items() if key in data}
    return data


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="ignore"))
class SpanRow(SpanRecord):
    """A stored span: a validated :class:`~llmops.tracing.model.SpanRecord` (the fields' meaning).

    Its stored and JSON form is flat (:func:`flat_span`): ``user_id``, ``session_id``, ``tags``,
    ``environment``, ``release``, ``trace_name`` and ``trace_metadata`` beside the span's fields,
    readable here as properties of the row. Validate stored JSON with :data:`SPAN_ROW`.
    """

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        if isinstance(data, ArgsKwargs) and data.kwargs:
            return ArgsKwargs(data.args, _nested(data.kwargs))
        return _nested(data) if isinstance(data, dict) else data

    @model_serializer(mode="plain")
    def _to_flat(self) -> dict[str, Any]:
        return flat_span(self)

    @property
    def user_id(self) -> str | None:
        """The end user the trace belongs to."""
        return self.attributes.user_id

    @property
    def session_id(self) -> str | None:
        """The session (conversation) the trace belongs to."""
        return self.attributes.session_id

    @property
    def tags(self) -> list[str]:
        """The trace's tags (a list, as the stored form has them)."""
        return list(self.attributes.tags)

    @property
    def environment(self) -> str | None:
        """``production``, ``staging``, ..."""
        return self.attributes.environment

    @property
    def release(self) -> str | None:
        """The application release."""
        return self.attributes.release

    @property
    def trace_name(self) -> str | None:
        """The trace's name, when it was given one."""
        return self.attributes.trace_name

    @property
    def trace_metadata(self) -> Mapping[str, Any]:
        """Key/value pairs shared by every span of the trace."""
        return self.attributes.metadata

    @property
    def prompt_ref(self) -> str | None:
        """``name@version`` of the prompt behind a generation."""
        if self.prompt_name is None:
            return None
        return f"{self.prompt_name}@{self.prompt_version}" if self.prompt_version is not None else self.prompt_name

    @classmethod
    def from_record(cls, span: SpanRecord, *, json_safe: bool = False) -> SpanRow:
        """Build a row from a (redacted) in-memory span.

        ``json_safe``: the span came out of :class:`~llmops.tracing.redaction.Redactor` (its
        values are JSON-ready already): skip the copy and the validation (the tracer's worker).
        """
        if json_safe:
            row = object.__new__(cls)  # as model.evolve: the fields are those of a validated record
            row.__dict__.update(span.__dict__)
            return row
        data = flat_span(span)
        for key in ("input", "output", "metadata", "params", "trace_metadata"):
            data[key] = jsonable(data[key])
        return cls(**data)


SPAN_ROW: TypeAdapter[SpanRow] = TypeAdapter(SpanRow)
"""Validates a stored span (``SPAN_ROW.validate_json(data)``) and writes its flat JSON (``dump_json``)."""


class ScoreRow(BaseModel):
    """A stored score (see :class:`llmops.tracing.model.ScoreRecord`)."""

    model_config = ConfigDict(extra="ignore")

    score_id: str
    trace_id: str
    span_id: str | None = None
    name: str
    value: float | None = None
    status: str = "pass"
    comment: str | None = None
    source: str = "api"
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: float = 0.0

    @classmethod
    def from_record(cls, score: ScoreRecord, *, json_safe: bool = False) -> ScoreRow:
        """Build a row from a (redacted) in-memory score (``json_safe``: as for spans)."""
        fields: dict[str, Any] = dict(
            score_id=score.score_id, trace_id=score.trace_id, span_id=score.span_id, name=score.name,
            value=score.value, status=score.status, comment=score.comment, source=score.source,
            metadata=dict(score.metadata) if json_safe else jsonable(dict(score.metadata)),
            created_at=score.created_at)
        return cls.model_construct(**fields) if json_safe else cls(**fields)


class TraceSummary(BaseModel):
    """One line of ``llmops traces list``."""

    trace_id: str
    name: str
    start_time: float
    end_time: float
    spans: int
    generations: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    prompts: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    scores: dict[str, float | None] = Field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Wall time of the trace."""
        return max(0.0, self.end_time - self.start_time)


class TraceDetail(BaseModel):
    """A whole trace: its spans (start order) and scores."""

    trace_id: str
    spans: list[SpanRow]
    scores: list[ScoreRow]

    @property
    def root(self) -> SpanRow:
        """The root span (the earliest span without a parent in the trace)."""
        ids = {s.span_id for s in self.spans}
        roots = [s for s in self.spans if s.parent_id is None or s.parent_id not in ids]
        return (roots or self.spans)[0]

    def children(self, span_id: str | None) -> list[SpanRow]:
        """Direct children of a span, in start order."""
        return [s for s in self.spans if s.parent_id == span_id]

    @property
    def generations(self) -> list[SpanRow]:
        """The trace's LLM calls."""
        return [s for s in self.spans if s.kind == "generation"]


def _to_dict(value: Any) -> Any:
    """Objects with ``to_dict()`` (the call's messages) are stored as that, like the redactor sees them."""
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"{type(value).__name__} is not plain JSON")


# One encoder for every row: json.dumps with options builds a new encoder on each call.
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_to_dict).encode


def span_json(span: SpanRecord) -> str | None:
    """The stored JSON of a span (:func:`flat_span`), or None if it is not plain JSON.

    One C-level ``json`` call instead of a pydantic row and its serializer: the tracer's worker
    writes every span through here. Objects with ``to_dict()`` are stored as its result; other
    values that plain JSON cannot hold (objects, non-dict mappings, NaN) give None, and the caller
    takes the validating path.
    """
    try:
        return _encode(flat_span(span))
    except (TypeError, ValueError, RecursionError):
        return None


def score_json(score: ScoreRecord) -> str | None:
    """The stored JSON of a score (the fields of :class:`ScoreRow`), or None (as :func:`span_json`)."""
    try:
        return _encode({
            "score_id": score.score_id, "trace_id": score.trace_id, "span_id": score.span_id, "name": score.name,
            "value": score.value, "status": score.status, "comment": score.comment, "source": score.source,
            "metadata": score.metadata, "created_at": score.created_at})
    except (TypeError, ValueError, RecursionError):
        return None


def span_columns(span: SpanRecord, data: str) -> tuple[Any, ...]:
    """The ``spans`` table row of a span whose stored JSON is ``data``."""
    return (span.span_id, span.trace_id, span.parent_id, span.name, span.kind, span.start_time, span.end_time,
            span.status, span.prompt_name, span.prompt_version, span.model, span.cost_usd,
            span.attributes.environment, data)


def score_columns(score: ScoreRecord, data: str) -> tuple[Any, ...]:
    """The ``scores`` table row of a score whose stored JSON is ``data``."""
    return (score.score_id, score.trace_id, score.span_id, score.name, score.value, score.created_at, data)


def jsonable(value: Any, _depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` (unknown objects become their ``to_dict()`` or ``str``)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if _depth > 32:
        return "[TRUNCATED]"
    if isinstance(value, dict):
        return {str(k): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, _depth + 1) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return jsonable(to_dict(), _depth + 1)
        except Exception:
            pass
    return str(value)


class Delivery(BaseModel):
    """What one process's exporter delivered (recorded when its tracer shut down).

    Attributes:
        ended: When the tracer shut down (epoch seconds).
        exporter: The exporter's name (``langfuse``).
        spans: Spans meant for it (dropped and never-exported ones included).
        delivered: Spans its server acknowledged.
        cause: Why spans were not delivered, as the tracer saw it (None when all were, or
            in stores written before causes were recorded).
    """

    ended: float
    exporter: str
    spans: int
    delivered: int
    cause: str | None = None

    @property
    def undelivered(self) -> int:
        """Spans that did not reach the server (the local store has them, unless the queue dropped them)."""
        return max(0, self.spans - self.delivered)


class TraceStore:
    """SQLite store of spans and scores.

    Args:
        path: The database file (created with its folder on first write).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is not None:
            try:
                self._conn.total_changes  # noqa: B018 - raises once the connection is closed
            except sqlite3.ProgrammingError:
                # Closed by the SQLite exit hook before the tracer's own exit hook stored its last
                # spans and delivery record: open it again (the tracer closes it when done).
                self._conn = None
        if self._conn is None:
            conn = open_sqlite(self.path, SCHEMA, what="trace store", format_version=STORE_FORMAT,
                               setting="trace_path",
                               hint="move it aside; a new one is created on the next traced call")
            # Stores written before delivery causes were recorded lack the column.
            columns = {row[1] for row in conn.execute("PRAGMA table_info(deliveries)")}
            if "cause" not in columns:
                with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                    conn.execute("ALTER TABLE deliveries ADD COLUMN cause TEXT")
            self._conn = conn
        return self._conn

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db().execute(sql, tuple(args)).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: {exc}") from None

    def exists(self) -> bool:
        """Whether the database file exists (reading a missing store creates nothing)."""
        return self.path.exists()

    # ---- writes ------------------------------------------------------------------------------
    def add(self, spans: Iterable[SpanRow] = (), scores: Iterable[ScoreRow] = ()) -> None:
        """Write spans and scores in one transaction (a re-sent span or score replaces itself)."""
        span_rows = [span_columns(s, SPAN_ROW.dump_json(s).decode()) for s in spans]
        score_rows = [(s.score_id, s.trace_id, s.span_id, s.name, s.value, s.created_at, s.model_dump_json())
                      for s in scores]
        self.add_rows(span_rows, score_rows)

    def add_rows(self, span_rows: Sequence[tuple[Any, ...]], score_rows: Sequence[tuple[Any, ...]], *,
                 outbox: bool = False) -> None:
        """Write table rows (:func:`span_columns`, :func:`score_columns`) in one transaction.

        ``outbox``: the spans are meant for an exporter too; they wait in the outbox until
        :meth:`mark_delivered` (``llmops traces push`` re-sends what is left).
        """
        if not span_rows and not score_rows:
            return
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN")
                if span_rows:
                    db.executemany("INSERT OR REPLACE INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", span_rows)
                    if outbox:
                        now = time.time()
                        db.executemany("INSERT OR IGNORE INTO outbox VALUES (?, ?)",
                                       [(row[0], now) for row in span_rows])
                if score_rows:
                    db.executemany("INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?,?)", score_rows)
                db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise StoreError(f"{self.path}: {exc}") from None

    # ---- reads -------------------------------------------------------------------------------
    def _span(self, blob: str) -> SpanRow:
        try:
            return SPAN_ROW.validate_json(blob)
        except ValidationError as exc:
            raise StoreError(f"{self.path}: corrupted span row ({exc.errors()[0]['msg']})") from None

    def _score(self, blob: str) -> ScoreRow:
        try:
            return ScoreRow.model_validate_json(blob)
        except ValidationError as exc:
            raise StoreError(f"{self.path}: corrupted score row ({exc.errors()[0]['msg']})") from None

    def resolve_id(self, trace_id: str) -> str:
        """Accept a unique prefix of a trace id, or ``latest``.

        Raises:
            UserError: for an unknown or ambiguous id.
        """
        if trace_id == "latest":
            rows = self._query("SELECT trace_id FROM spans ORDER BY end_time DESC LIMIT 1")
        else:
            prefix = trace_id.strip().lower().replace("%", "").replace("_", "")
            rows = self._query("SELECT DISTINCT trace_id FROM spans WHERE trace_id LIKE ? LIMIT 2",
                               (prefix + "%",))
        if len(rows) == 1:
            return str(rows[0][0])
        if not rows:
            raise UserError(f"no trace '{trace_id}' in {self.path}", key=trace_id,
                            hint="`llmops traces list` shows the stored traces")
        raise UserError(f"trace id prefix '{trace_id}' is ambiguous", key=trace_id,
                        hint="give more characters of the id")

    def trace(self, trace_id: str) -> TraceDetail:
        """A whole trace by id (or unique prefix)."""
        tid = self.resolve_id(trace_id)
        spans = [self._span(r[0]) for r in self._query(
            "SELECT data FROM spans WHERE trace_id = ? ORDER BY start_time, end_time DESC", (tid,))]
        return TraceDetail(trace_id=tid, spans=spans, scores=self.scores([tid]))

    def scores(self, trace_ids: Sequence[str]) -> list[ScoreRow]:
        """Scores of the given traces, oldest first."""
        out: list[ScoreRow] = []
        for i in range(0, len(trace_ids), 500):  # SQLite caps the number of bound parameters
            chunk = list(trace_ids[i:i + 500])
            marks = ",".join("?" * len(chunk))
            out += [self._score(r[0]) for r in self._query(
                f"SELECT data FROM scores WHERE trace_id IN ({marks}) ORDER BY created", chunk)]
        return out

    def spans(self, *, kind: str | None = None, prompt_name: str | None = None,
              prompt_version: int | None = None, since: float | None = None, until: float | None = None,
              environment: str | None = None, trace_ids: Sequence[str] | None = None,
              limit: int | None = None) -> list[SpanRow]:
        """Spans matching all the given filters, oldest first."""
        where, args = self._filters(kind=kind, prompt_name=prompt_name, prompt_version=prompt_version,
                                    since=since, until=until, environment=environment)
        if trace_ids is not None:
            if not trace_ids:
                return []
            where.append(f"trace_id IN ({','.join('?' * len(trace_ids))})")
            args += list(trace_ids)
        sql = "SELECT data FROM spans" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY start_time"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [self._span(r[0]) for r in self._query(sql, args)]

    @staticmethod
    def _filters(*, kind: str | None = None, prompt_name: str | None = None, prompt_version: int | None = None,
                 since: float | None = None, until: float | None = None,
                 environment: str | None = None) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("kind", kind), ("prompt_name", prompt_name), ("prompt_version", prompt_version),
                              ("environment", environment)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("start_time >= ?")
            args.append(since)
        if until is not None:
            where.append("start_time < ?")
            args.append(until)
        return where, args

    def traces(self, *, prompt_name: str | None = None, prompt_version: int | None = None,
               since: float | None = None, until: float | None = None, errors_only: bool = False,
               tag: str | None = None, limit: int = 50) -> list[TraceSummary]:
        """Trace summaries, most recent first, filtered by the prompt behind their generations."""
        where, args = self._filters(prompt_name=prompt_name, prompt_version=prompt_version)
        # The prompt filter selects traces that contain a matching generation; the time filter
        # applies to the trace as a whole.
        inner = "SELECT DISTINCT trace_id FROM spans" + (" WHERE " + " AND ".join(where) if where else "")
        having: list[str] = []
        if since is not None:
            having.append("MIN(start_time) >= ?")
            args.append(since)
        if until is not None:
            having.append("MIN(start_time) < ?")
            args.append(until)
        if errors_only:
            having.append("SUM(status = 'error') > 0")
        if tag is not None:
            having.append("SUM(EXISTS (SELECT 1 FROM json_each(json_extract(data, '$.tags')) "
                          "WHERE value = ?)) > 0")
            args.append(tag)
        sql = (f"SELECT trace_id, MIN(start_time), MAX(end_time), COUNT(*) FROM spans "
               f"WHERE trace_id IN ({inner}) GROUP BY trace_id"
               + (" HAVING " + " AND ".join(having) if having else "")
               + " ORDER BY MIN(start_time) DESC LIMIT ?")
        args.append(limit)
        heads = self._query(sql, args)
        ids = [str(r[0]) for r in heads]
        by_trace: dict[str, list[SpanRow]] = {t: [] for t in ids}
        for span in self.spans(trace_ids=ids):
            by_trace[span.trace_id].append(span)
        scores: dict[str, dict[str, float | None]] = {t: {} for t in ids}
        for score in self.scores(ids):
            scores[score.trace_id][score.name] = score.value
        return [summarize(TraceDetail(trace_id=t, spans=by_trace[t], scores=[]), scores[t]) for t in ids]

    def record_delivery(self, delivery: Delivery) -> None:
        """Keep what an exporter delivered, for ``llmops traces status``."""
        with self._lock:
            try:
                self._db().execute(
                    "INSERT INTO deliveries (ended, exporter, spans, delivered, cause) VALUES (?,?,?,?,?)",
                    (delivery.ended, delivery.exporter, delivery.spans, delivery.delivered, delivery.cause))
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: {exc}") from None

    def deliveries(self, limit: int = 5) -> list[Delivery]:
        """The latest recorded deliveries, newest first."""
        rows = self._query("SELECT ended, exporter, spans, delivered, cause FROM deliveries "
                           "ORDER BY ended DESC LIMIT ?", (limit,))
        return [Delivery(ended=e, exporter=x, spans=s, delivered=d, cause=c) for e, x, s, d, c in rows]

    # ---- the outbox (spans not acknowledged by the exporter's server) ---------------------------
    def mark_delivered(self, span_ids: Sequence[str]) -> None:
        """Take acknowledged spans out of the outbox."""
        if not span_ids:
            return
        with self._lock:
            db = self._db()
            try:
                for i in range(0, len(span_ids), 500):  # SQLite caps the number of bound parameters
                    chunk = list(span_ids[i:i + 500])
                    db.execute(f"DELETE FROM outbox WHERE span_id IN ({','.join('?' * len(chunk))})", chunk)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: {exc}") from None

    def undelivered(self, *, before: float | None = None, limit: int | None = None) -> list[SpanRow]:
        """Spans waiting in the outbox (added before ``before``, epoch seconds), oldest first."""
        sql = "SELECT s.data FROM spans s JOIN outbox o ON o.span_id = s.span_id"
        args: list[Any] = []
        if before is not None:
            sql += " WHERE o.added < ?"
            args.append(before)
        sql += " ORDER BY s.start_time"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [self._span(r[0]) for r in self._query(sql, args)]

    def undelivered_count(self) -> int:
        """Spans waiting in the outbox."""
        return int(self._query("SELECT COUNT(*) FROM outbox o JOIN spans s ON s.span_id = o.span_id")[0][0])

    def count(self) -> tuple[int, int]:
        """(traces, spans) in the store."""
        rows = self._query("SELECT COUNT(DISTINCT trace_id), COUNT(*) FROM spans")
        return int(rows[0][0]), int(rows[0][1])

    def close(self) -> None:
        """Close the connection (it reopens on the next use)."""
        with self._lock:
            if self._conn is not None:
                close_sqlite(self._conn)
                self._conn = None


def summarize(detail: TraceDetail, scores: dict[str, float | None] | None = None) -> TraceSummary:
    """Aggregate a trace's spans into a summary line."""
    spans = detail.spans
    gens = [s for s in spans if s.kind == "generation"]
    root = detail.root
    prompts: list[str] = []
    models: list[str] = []
    for g in gens:
        if g.prompt_ref and g.prompt_ref not in prompts:
            prompts.append(g.prompt_ref)
        model = g.resolved_model or g.model
        if model and model not in models:
            models.append(model)
    return TraceSummary(
        trace_id=detail.trace_id, name=root.trace_name or root.name,
        start_time=min(s.start_time for s in spans), end_time=max(s.end_time for s in spans),
        spans=len(spans), generations=len(gens), errors=sum(s.status == "error" for s in spans),
        prompt_tokens=sum(g.prompt_tokens or 0 for g in gens),
        completion_tokens=sum(g.completion_tokens or 0 for g in gens),
        cost_usd=sum(g.cost_usd or 0.0 for g in gens), prompts=prompts, models=models,
        scores=scores if scores is not None else {s.name: s.value for s in detail.scores})


def dumps(value: Any) -> str:
    """Compact JSON for previews (unknown objects as strings)."""
    return json.dumps(jsonable(value), ensure_ascii=False)
