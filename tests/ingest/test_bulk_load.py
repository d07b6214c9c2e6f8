"""contextlake load: CSV and Parquet files into a source, bad rows to a reject file, nothing twice."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

NOW = datetime.now(UTC).replace(microsecond=0)
HEADER = ["event_id", "card_id", "merchant_id", "amount", "currency", "country", "channel", "device_id", "event_time"]


def cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=dict(os.environ, DATABASE_URL=dsn),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def row(i: int, **change: str) -> list[str]:
    values = {
        "event_id": f"f{i}",
        "card_id": f"c{i % 4}",
        "merchant_id": f"m{i % 9}",
        "amount": f"{1 + i % 70}.50",
        "currency": "EUR",
        "country": "FR",
        "channel": "pos",
        "device_id": "",
        "event_time": (NOW - timedelta(seconds=13 * i)).isoformat(),
    }
    values.update(change)
    return [values[h] for h in HEADER]


def test_csv_load_with_bad_rows_and_a_second_run(dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(2500):
            if i == 100:
                w.writerow(row(i, amount="12,50"))  # line 102
            elif i == 200:
                w.writerow(row(i)[:5])  # line 202: too few fields
            elif i == 300:
                w.writerow(row(i, event_time=""))  # line 302: no event time
            elif i == 400:
                w.writerow(row(i, channel="fax"))  # line 402
            else:
                w.writerow(row(i))
        w.writerow(row(5))  # line 2502: the id of line 7 again
    r = cli(dsn, "load", str(path), "--source", "card_txn", "--chunk", "1000")
    assert r.returncode == 0, r.stderr
    assert "loaded 2,496, duplicates 1, rejected 4" in r.stdout and "%" in r.stderr  # the progress bar
    rejects = list(csv.DictReader(io.StringIO((tmp_path / "events.csv.rejected.csv").read_text())))
    assert [int(x["line"]) for x in rejects] == [102, 202, 302, 402]
    assert 'invalid input syntax for type numeric: "12,50"' in rejects[0]["reason"]
    assert "5 fields, the header has 9" in rejects[1]["reason"]
    assert "event_time" in rejects[2]["reason"] and "transactions_channel_check" in rejects[3]["reason"]
    assert conn.execute("SELECT count(*), count(device_id) FROM cards.transactions").fetchone() == (2496, 0)
    assert conn.execute("SELECT count(*) FROM lake.verify_state()").fetchone() == (0,)
    again = cli(dsn, "load", str(path), "--source", "card_txn")
    assert "loaded 0, duplicates 2,497, rejected 4" in again.stdout, again.stdout
    assert conn.execute("SELECT count(*) FROM cards.transactions").fetchone() == (2496,)


def test_parquet_load(dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    n = 1200
    table = pa.table(
        {
            "event_id": [f"p{i}" for i in range(n)],
            "card_id": [f"c{i % 3}" for i in range(n)],
            "merchant_id": [f"m{i % 5}" for i in range(n)],
            "amount": pa.array([float(1 + i % 40) if i != 7 else -1.0 for i in range(n)]),
            "currency": ["EUR"] * n,
            "country": ["DE"] * n,
            "channel": ["ecom"] * n,
            "event_time": pa.array([NOW - timedelta(seconds=7 * i) for i in range(n)], pa.timestamp("us", tz="UTC")),
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    r = cli(dsn, "load", str(path), "--source", "card_txn", "--reject-file", str(tmp_path / "bad.csv"))
    assert r.returncode == 0 and "loaded 1,199, duplicates 0, rejected 1" in r.stdout, (r.stdout, r.stderr)
    (bad,) = list(csv.DictReader(io.StringIO((tmp_path / "bad.csv").read_text())))
    assert bad["line"] == "8" and "transactions_amount_check" in bad["reason"]
    first = conn.execute("SELECT event_time, amount FROM cards.transactions WHERE event_id = 'p3'").fetchone()
    assert first is not None and first[0] == NOW - timedelta(seconds=21) and float(first[1]) == 4.0
    assert conn.execute("SELECT count(*) FROM lake.verify_state()").fetchone() == (0,)


def test_unreadable_files_are_one_clear_line(dsn: str, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    r = cli(dsn, "load", str(tmp_path / "x.json"), "--source", "card_txn")
    assert r.returncode == 2 and "load reads .csv or .parquet files" in r.stderr
    r = cli(dsn, "load", str(tmp_path / "missing.csv"), "--source", "card_txn")
    assert r.returncode == 2 and "missing.csv" in r.stderr
    (tmp_path / "e.csv").write_text("event_id\n")
    r = cli(dsn, "load", str(tmp_path / "e.csv"), "--source", "nope")
    assert r.returncode == 0 and "loaded 0" in r.stdout  # an empty file lands nothing
    (tmp_path / "f.csv").write_text("event_id\nx\n")
    r = cli(dsn, "load", str(tmp_path / "f.csv"), "--source", "nope")
    assert r.returncode == 2 and "unknown events source nope" in r.stderr
