"""Where the card generator (`python -m examples.cards generate`) writes: CSV or Parquet files loadable
by `contextlake load`, or straight into the lake through the same idempotent landing (a second run lands
nothing twice)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import psycopg

from app.cli.progress import Progress
from app.ingest.bulk_load import LoadResult, land_chunk
from examples.cards.generator import (
    CHARGEBACK_COLUMNS,
    INCIDENT_COLUMNS,
    PROFILE_COLUMNS,
    TRANSACTION_COLUMNS,
    Generated,
)
from examples.cards.sql import query

CHUNK = 20_000


@dataclass
class Written:
    transactions: int = 0
    frauds: int = 0
    chargebacks: int = 0
    incidents: int = 0
    profiles: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    files: tuple[Path, ...] = ()


def _chunks(rows: Iterable[tuple[object, ...]], size: int) -> Iterator[list[tuple[object, ...]]]:
    chunk: list[tuple[object, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _counted(generated: Generated, written: Written, bar: Progress) -> Iterator[tuple[object, ...]]:
    expected = generated.expected_transactions
    for tx in generated.transactions():
        written.transactions += 1
        written.frauds += tx.fraud
        if written.transactions % 1000 == 0:
            bar.update(written.transactions / expected, written.transactions, f"fraudulent {written.frauds:,}")
        yield generated.transaction_row(tx)


class _Sink:
    suffix = ""

    def __init__(self, path: Path, columns: Sequence[str], types: Sequence[str]) -> None:
        raise NotImplementedError

    def write(self, rows: list[tuple[object, ...]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _CsvSink(_Sink):
    suffix = ".csv"

    def __init__(self, path: Path, columns: Sequence[str], types: Sequence[str]) -> None:
        self.f: TextIO = path.open("w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.f, lineterminator="\n")
        self.writer.writerow(columns)

    def write(self, rows: list[tuple[object, ...]]) -> None:
        self.writer.writerows(
            [("" if v is None else v.isoformat() if isinstance(v, datetime) else v) for v in row] for row in rows
        )

    def close(self) -> None:
        self.f.close()


class _ParquetSink(_Sink):
    suffix = ".parquet"

    def __init__(self, path: Path, columns: Sequence[str], types: Sequence[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrow = {
            "text": pa.string(),
            "money": pa.decimal128(14, 2),
            "int": pa.int32(),
            "time": pa.timestamp("us", tz="UTC"),
        }
        self.pa = pa
        self.convert: list[Callable[[Any], Any]] = [
            (lambda v: None if v is None else Decimal(str(v))) if t == "money" else (lambda v: v) for t in types
        ]
        self.schema = pa.schema([(c, arrow[t]) for c, t in zip(columns, types, strict=True)])
        self.writer = pq.ParquetWriter(path, self.schema)

    def write(self, rows: list[tuple[object, ...]]) -> None:
        columns = [[conv(r[i]) for r in rows] for i, conv in enumerate(self.convert)]
        self.writer.write_table(self.pa.Table.from_arrays(columns, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


TABLES: dict[str, tuple[Sequence[str], Sequence[str]]] = {
    "transactions": (TRANSACTION_COLUMNS, ("text", "text", "text", "money", "text", "text", "text", "text", "time")),
    "chargebacks": (CHARGEBACK_COLUMNS, ("text", "text", "text", "text", "money", "time")),
    "profiles": (PROFILE_COLUMNS, ("text", "time", "int", "int", "int")),
    "incidents": (INCIDENT_COLUMNS, ("text", "text", "time", "int")),
}


def write_files(generated: Generated, out_dir: Path, fmt: str, progress: TextIO | None) -> Written:
    """transactions, chargebacks, profiles and incidents (the injected fraud, for analysis) as files."""
    sinks: dict[str, type[_Sink]] = {"csv": _CsvSink, "parquet": _ParquetSink}
    sink_type = sinks.get(fmt)
    if sink_type is None:
        raise ValueError(f"unknown format {fmt!r}: csv or parquet")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = Written()
    bar = Progress(progress, "transactions")
    paths = {name: out_dir / f"{name}{sink_type.suffix}" for name in TABLES}

    def dump(name: str, rows: Iterable[tuple[object, ...]]) -> int:
        sink = sink_type(paths[name], *TABLES[name])
        n = 0
        try:
            for chunk in _chunks(rows, CHUNK):
                sink.write(chunk)
                n += len(chunk)
        finally:
            sink.close()
        return n

    dump("transactions", _counted(generated, written, bar))
    bar.update(1.0, written.transactions, f"fraudulent {written.frauds:,}", force=True)
    bar.close()
    written.chargebacks = dump("chargebacks", map(generated.chargeback_row, generated.chargebacks()))
    written.profiles = dump("profiles", generated.profiles())
    written.incidents = dump("incidents", map(generated.incident_row, generated.incidents()))
    written.seconds = bar.seconds
    written.files = tuple(paths.values())
    return written


def _as_text(row: tuple[object, ...]) -> list[str | None]:
    return [None if v is None else v.isoformat() if isinstance(v, datetime) else str(v) for v in row]


def _land(
    conn: psycopg.Connection, source: str, columns: Sequence[str], rows: Iterable[tuple[object, ...]]
) -> LoadResult:
    result = LoadResult()
    line = 0
    for chunk in _chunks(rows, CHUNK):
        staged = []
        for row in chunk:
            line += 1
            staged.append((line, _as_text(row)))
        bad = land_chunk(conn, source, list(columns), staged, result)
        if bad:
            raise ValueError(f"the lake refused a generated {source} row (line {bad[0][0]}): {bad[0][1]}")
    return result


def into_lake(generated: Generated, conn: psycopg.Connection, progress: TextIO | None) -> Written:
    """Profiles first (the batch features), then transactions in time order, then the chargebacks known
    by the end of the period; each chunk lands in its own transaction through lake.land_events."""
    written = Written()
    bar = Progress(progress, "transactions")
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(query("land_profile"), list(generated.profiles()))
    written.profiles = generated.params.cards
    landed = _land(conn, "card_txn", TRANSACTION_COLUMNS, _counted(generated, written, bar))
    bar.update(1.0, written.transactions, f"fraudulent {written.frauds:,}", force=True)
    bar.close()
    labels = _land(conn, "card_chargeback", CHARGEBACK_COLUMNS, map(generated.chargeback_row, generated.chargebacks()))
    written.chargebacks = labels.loaded + labels.duplicates
    written.incidents = len(generated.incidents())
    written.duplicates = landed.duplicates + labels.duplicates
    written.seconds = bar.seconds
    return written
