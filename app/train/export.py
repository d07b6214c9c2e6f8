"""contextlake export-training: a point-in-time training set, streamed to Parquet.

One row per event of the label's events source: the feature set's vector read by its own generated
read function as of just before the event (lake.training_statement), the event's label as known at
the cutoff, the event id, entity, event time and the as_of of the read. Rows stream from server-side
cursors in batches (memory holds a few batches, whatever the size of the set); with several workers
the events are split by entity over that many connections and merged back in (time, id) order.
"""

from __future__ import annotations

import heapq
import json
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql
from psycopg.types.numeric import FloatLoader

from app.cli.progress import Progress
from app.lake.queries import query

BATCH = 5_000
METADATA_KEY = "contextlake.training_set"
BASE_COLUMNS = ("event_id", "entity", "event_time", "as_of", "label")


@dataclass(frozen=True)
class TrainingSet:
    """What to export: a feature set version, a label, the events' period and the label cutoff."""

    feature_set: str
    version: int
    label: str
    start: datetime
    end: datetime
    cutoff: datetime
    offset: timedelta = timedelta(microseconds=1)  # how long before its event each vector is read


@dataclass
class ExportResult:
    rows: int = 0
    positives: int = 0
    seconds: float = 0.0
    columns: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / max(self.seconds, 1e-9)


def _arrow_type(sql_type: str) -> pa.DataType:
    if sql_type in ("boolean",):
        return pa.bool_()
    if sql_type.startswith(("numeric", "double", "real", "integer", "bigint", "smallint")):
        return pa.float64()
    if sql_type.startswith("timestamp"):
        return pa.timestamp("us", tz="UTC")
    return pa.string()


def schema(conn: psycopg.Connection, ts: TrainingSet) -> pa.Schema:
    """The export's columns: event id, entity, event time, as_of, label, every feature of the set
    (numbers as float64, booleans, times in UTC, anything else as text), and the set's rule hits."""
    rows = conn.execute(query("training_columns"), {"feature_set": ts.feature_set, "version": ts.version}).fetchall()
    if not rows:
        raise ValueError(f"unknown feature set {ts.feature_set} v{ts.version}")
    meta = {
        "feature_set": ts.feature_set,
        "version": ts.version,
        "label": ts.label,
        "start": ts.start.isoformat(),
        "end": ts.end.isoformat(),
        "cutoff": ts.cutoff.isoformat(),
        "offset_seconds": ts.offset.total_seconds(),
    }
    base = [
        ("event_id", pa.string()),
        ("entity", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("as_of", pa.timestamp("us", tz="UTC")),
        ("label", pa.bool_()),
    ]
    fields = base + [(name, _arrow_type(sql_type)) for name, sql_type in rows] + [("rule_hits", pa.list_(pa.bool_()))]
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(meta)})


def described(path: Path) -> dict[str, Any]:
    """What an exported file holds: feature set, version, label, period, cutoff and offset."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(METADATA_KEY.encode())
    if raw is None:
        raise ValueError(f"{path}: not a contextlake training set (no {METADATA_KEY} metadata)")
    out: dict[str, Any] = json.loads(raw)
    return out


def statement(conn: psycopg.Connection, ts: TrainingSet, part: int = 0, parts: int = 1) -> str:
    params = {
        "feature_set": ts.feature_set,
        "version": ts.version,
        "label": ts.label,
        "start": ts.start,
        "end": ts.end,
        "cutoff": ts.cutoff,
        "offset": ts.offset,
        "part": part,
        "parts": parts,
    }
    row = conn.execute(query("training_statement"), params).fetchone()
    assert row is not None
    return str(row[0])


def _batches(dsn: str, text: str, batch: int, snapshot: str | None) -> Generator[list[tuple[Any, ...]]]:
    """Rows of one export statement, a batch at a time, from a server-side cursor; in the exported
    `snapshot` when given, so every worker of one export reads the same state."""
    with psycopg.connect(dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        conn.adapters.register_loader("numeric", FloatLoader)  # features go to float64 columns anyway
        with conn.transaction(), conn.cursor(name="training_export") as cur:
            if snapshot is not None:
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            cur.execute(text.encode())
            while rows := cur.fetchmany(batch):
                yield rows


def _threaded(produce: Generator[list[tuple[Any, ...]]], depth: int = 4) -> Iterator[list[tuple[Any, ...]]]:
    """Run a batch producer in its own thread (the server works on the next batch meanwhile)."""
    q: queue.Queue[list[tuple[Any, ...]] | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: list[tuple[Any, ...]] | BaseException | None) -> bool:
        while not stop.is_set():  # the consumer may be gone: never block for good
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for b in produce:
                if not put(b):
                    return
            put(None)
        except BaseException as exc:  # handed over to the consumer, raised there
            put(exc)
        finally:
            produce.close()  # the producer's connection closes in the thread that opened it

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


def rows(dsn: str, ts: TrainingSet, workers: int = 1, batch: int = BATCH) -> Iterator[tuple[Any, ...]]:
    """Every training row in (event time, event id) order, all workers in one snapshot."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    with psycopg.connect(dsn) as conn:
        texts = [statement(conn, ts, k, workers) for k in range(workers)]
        conn.commit()
        if workers == 1:
            for b in _threaded(_batches(dsn, texts[0], batch, None)):
                yield from b
            return
        # The snapshot stays importable while this transaction is open: until the export ends.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            snapshot = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]

            def flat(k: int) -> Iterator[tuple[Any, ...]]:
                for b in _threaded(_batches(dsn, texts[k], batch, snapshot)):
                    yield from b

            yield from heapq.merge(*(flat(k) for k in range(workers)), key=lambda r: (r[2], r[0].encode()))


def export(
    dsn: str,
    ts: TrainingSet,
    out: Path,
    workers: int = 1,
    batch: int = BATCH,
    progress: TextIO | None = None,
) -> ExportResult:
    """Stream the training set to a Parquet file (a row group per `batch` rows)."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    with psycopg.connect(dsn) as conn:
        sch = schema(conn, ts)
        period = conn.execute(query("label_events"), {"label": ts.label, "start": ts.start, "end": ts.end}).fetchone()
    expected = max(int(period[2]) if period else 0, 1)
    result = ExportResult(columns=list(sch.names))
    bar = Progress(progress, "rows")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    width = len(sch.names)
    text = {i for i, f in enumerate(sch) if pa.types.is_string(f.type)}  # dates, intervals, json: as text
    try:
        with pq.ParquetWriter(tmp, sch) as writer:
            chunk: list[tuple[Any, ...]] = []

            def flush() -> None:
                columns = [
                    [None if r[i] is None else str(r[i]) for r in chunk] if i in text else [r[i] for r in chunk]
                    for i in range(width)
                ]
                writer.write_table(pa.Table.from_arrays(columns, schema=sch))
                result.rows += len(chunk)
                result.positives += sum(1 for r in chunk if r[4])
                bar.update(result.rows / expected, result.rows, f"labelled {result.positives:,}")
                chunk.clear()

            for row in rows(dsn, ts, workers, batch):
                chunk.append(row)
                if len(chunk) >= batch:
                    flush()
            if chunk:
                flush()
        tmp.replace(out)  # a finished file only: an interrupted export leaves no half-written set behind
    finally:
        tmp.unlink(missing_ok=True)
    bar.update(1.0, result.rows, f"labelled {result.positives:,}", force=True)
    bar.close()
    result.seconds = bar.seconds
    return result


def matrix(table: pa.Table, features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs (float32, NaN for NULL) and labels (0/1) of an exported table."""
    x = np.column_stack(
        [table.column(f).cast(pa.float64()).to_numpy(zero_copy_only=False) for f in features]
        or [np.empty((table.num_rows, 0))]
    ).astype(np.float32)
    y = table.column("label").to_numpy(zero_copy_only=False).astype(np.int64)
    return x, y
