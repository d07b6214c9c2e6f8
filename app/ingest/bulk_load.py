"""contextlake load: a CSV or Parquet file into one source's landing table.

The file is read in chunks; each chunk is streamed with COPY into a staging table of text columns
(COPY itself never fails on a value there), then landed by lake.land_events: one INSERT for a clean
chunk, so the maintenance trigger folds it set-wise, and event by event only for a chunk holding a
bad row. Bad rows go to a reject file (line number, reason, the row) and the load goes on. Events
already landed (same event id) are counted as duplicates, so a load can be run again after a crash.

CSV: a header row of landing column names; an empty field is NULL. Parquet: columns named like the
landing columns; timestamps are written in ISO 8601 (naive ones are taken as UTC).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg import sql

from app.cli.progress import Progress
from app.lake.queries import query

CHUNK = 10_000


@dataclass
class LoadResult:
    loaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return text if text != "" else None


def _csv_chunks(path: Path, size: int) -> Iterator[tuple[list[str], list[tuple[int, list[str | None]]], float]]:
    """(header, [(line, values)], fraction of the file read) per chunk."""
    total = max(path.stat().st_size, 1)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: no header row")
        chunk: list[tuple[int, list[str | None]]] = []
        for row in reader:
            chunk.append((reader.line_num, [_text(v) for v in row]))
            if len(chunk) >= size:
                # the byte position (a text file's tell() is off while it is iterated)
                yield header, chunk, f.buffer.tell() / total  # type: ignore[attr-defined]
                chunk = []
        if chunk:
            yield header, chunk, 1.0


def _parquet_chunks(path: Path, size: int) -> Iterator[tuple[list[str], list[tuple[int, list[str | None]]], float]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    total = max(pf.metadata.num_rows, 1)
    header = list(pf.schema_arrow.names)
    line = 0
    for batch in pf.iter_batches(batch_size=size):
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        rows = []
        for values in zip(*columns, strict=True):
            line += 1
            rows.append((line, [_text(v) for v in values]))
        yield header, rows, line / total


def load(
    conn: psycopg.Connection,
    path: Path,
    source: str,
    reject_path: Path,
    chunk: int = CHUNK,
    progress: TextIO | None = sys.stderr,
) -> LoadResult:
    if path.suffix.lower() in (".parquet", ".pq"):
        chunks = _parquet_chunks(path, chunk)
    elif path.suffix.lower() in (".csv", ".txt"):
        chunks = _csv_chunks(path, chunk)
    else:
        raise ValueError(f"{path}: load reads .csv or .parquet files")
    result = LoadResult()
    bar = Progress(progress)
    with reject_path.open("w", newline="", encoding="utf-8") as rf:
        rejects = csv.writer(rf)
        rejects.writerow(["line", "reason", "row"])
        for header, rows, fraction in chunks:
            width = len(header)
            staged = []
            bad: list[list[Any]] = []  # [line, reason, row]
            for line, values in rows:
                if len(values) != width:
                    bad.append([line, f"{len(values)} fields, the header has {width}", values])
                else:
                    staged.append((line, values))
            if staged:
                bad += land_chunk(conn, source, header, staged, result)
            result.rejected += len(bad)
            bad.sort(key=lambda b: int(b[0]))  # in file order
            rejects.writerows(bad)
            done = result.loaded + result.duplicates + result.rejected
            bar.update(fraction, done, f"loaded {result.loaded:,}  rejected {result.rejected:,}", force=True)
    bar.close()
    result.seconds = bar.seconds
    return result


def land_chunk(
    conn: psycopg.Connection,
    source: str,
    header: list[str],
    rows: list[tuple[int, list[str | None]]],
    result: LoadResult,
) -> list[list[Any]]:
    """COPY the chunk into a staging table of text columns, then land it in one transaction."""
    columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in header)
    names = sql.SQL(", ").join(sql.Identifier(c) for c in header)
    with conn.transaction():
        conn.execute(sql.SQL("CREATE TEMP TABLE lake_load (line bigint, {}) ON COMMIT DROP").format(columns))
        with conn.cursor().copy(sql.SQL("COPY lake_load (line, {}) FROM STDIN").format(names)) as copy:
            for line, values in rows:
                copy.write_row([line, *values])
        outcome = conn.execute(query("land_staged"), {"source": source}).fetchall()
        conn.execute("DROP TABLE lake_load")  # also when this block is a savepoint of the caller's transaction
    bad = []
    for line, status, reason, row in outcome:
        if status == "landed":
            result.loaded += 1
        elif status == "duplicate":
            result.duplicates += 1
        else:
            bad.append([line, reason, row])
    return bad
