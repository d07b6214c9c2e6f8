"""Benchmarks of the lake core, as ratios measured in one run on one cluster.

  ingest: maintained (features kept by the trigger) vs the same inserts into a bare table
          - single-row transactions, 8 clients (pgbench)
          - 1,000-row INSERT batches, 1 and 2 clients (pgbench)
          - COPY of 1,000,000 rows (server-side file)
  reads:  vector reads of the fraud feature set (23 features, 5 windows, 3 rules), 8 clients,
          of quiet cards (windows from raw events) and busy cards (windows from tiles),
          vs pgbench -S -M prepared on the same cluster; two references bound what a state layout can
          reach (bench/read_bounds.sql): windows from one state row per card, and no windows at all

Uses DATABASE_URL when set, else starts a throwaway cluster with the lake settings.
Usage: .venv/bin/python bench/run.py [--seconds 15] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.lake.cluster import find_bindir  # noqa: E402
from app.lake.migrations import migrate  # noqa: E402
from bench.common import fresh_database, machine, server  # noqa: E402
from examples.cards.sql import cards_project  # noqa: E402

HERE = Path(__file__).resolve().parent
COPY_FILE = "/tmp/contextlake-bench-copy.csv"
COLS = "event_id, card_id, merchant_id, amount, currency, country, channel, device_id, event_time"


def pgbench(dsn: str, script: list[str], clients: int, seconds: int) -> float:
    """Transactions per second of a pgbench run (scripts by -f path or builtin flags)."""
    cmd = [
        str(find_bindir() / "pgbench"),
        "-n",
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-T",
        str(seconds),
        "-M",
        "prepared",
        *script,
        dsn,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    assert m, out
    return float(m.group(1))


def paired(
    name: str,
    a: tuple[str, str, list[str]],
    b: tuple[str, str, list[str]],
    clients: int,
    seconds: int,
    rounds: int,
    rows_per_tx: int = 1,
) -> dict[str, object]:
    """Alternate two pgbench runs (label, dsn, script) `rounds` times, so noise hits both alike;
    report the mean rates and their ratio."""
    runs: dict[str, list[float]] = {a[0]: [], b[0]: []}
    for _ in range(rounds):
        for label, dsn, script in (a, b):
            runs[label].append(pgbench(dsn, script, clients, seconds) * rows_per_tx)
    ra, rb = statistics.mean(runs[a[0]]), statistics.mean(runs[b[0]])
    print(f"  {name}: {a[0]} {ra:,.0f}/s, {b[0]} {rb:,.0f}/s, ratio {ra / rb:.2f}", flush=True)
    return {"benchmark": name, a[0]: ra, b[0]: rb, "ratio": ra / rb, "runs": runs}


def timed(conn: psycopg.Connection, sql: str) -> float:
    t0 = time.perf_counter()
    conn.execute(sql)
    conn.commit()
    return time.perf_counter() - t0


def measure(base: str, args: argparse.Namespace) -> None:
    lake, version = fresh_database(base, "bench_lake")
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS bench_pgbench")
        admin.execute("CREATE DATABASE bench_pgbench")
        settings = admin.execute(
            "SELECT string_agg(name || '=' || setting, ', ') FROM pg_settings WHERE name IN "
            "('synchronous_commit', 'fsync', 'shared_buffers', 'wal_level', 'track_commit_timestamp')"
        ).fetchone()[0]  # type: ignore[index]
    pgb = base.rsplit("/", 1)[0] + "/bench_pgbench"
    print(f"settings: {settings}", flush=True)
    migrate(lake, cards_project())
    subprocess.run([str(find_bindir() / "pgbench"), "-i", "-q", "-s", "10", pgb], check=True, capture_output=True)
    results = []
    with psycopg.connect(lake) as conn:
        conn.execute((HERE / "setup.sql").read_text())
        conn.commit()
        conn.execute(f"COPY bench.copy_source TO '{COPY_FILE}' (FORMAT csv)")
        conn.commit()

        t_bare = timed(conn, f"COPY bench.bare_transactions ({COLS}) FROM '{COPY_FILE}' (FORMAT csv)")
        t_lake = timed(conn, f"COPY cards.transactions ({COLS}) FROM '{COPY_FILE}' (FORMAT csv)")
        res = {
            "benchmark": "COPY 1,000,000 rows",
            "maintained": 1e6 / t_lake,
            "bare": 1e6 / t_bare,
            "ratio": t_bare / t_lake,
        }
        print("ingest by COPY, maintained vs bare:", flush=True)
        print(
            f"  COPY 1,000,000 rows: maintained {res['maintained']:,.0f} rows/s, bare {res['bare']:,.0f} rows/s, "
            f"ratio {res['ratio']:.2f}",
            flush=True,
        )
        results.append(res)
        conn.execute((HERE / "load_busy.sql").read_text())
        conn.commit()
    with psycopg.connect(lake, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE cards.transactions")
        conn.execute("VACUUM ANALYZE lake_gen.card_txn_tiles")
        busy = conn.execute("SELECT count(*) FROM lake_gen.card_txn_tiles WHERE tiled_since IS NOT NULL").fetchone()
        print(f"  ({busy[0]:,} busy cards have tiles)", flush=True)  # type: ignore[index]
        conn.execute((HERE / "read_bounds.sql").read_text())
        conn.execute("VACUUM ANALYZE bench.card_state")
        differ = conn.execute((HERE / "read_bounds_check.sql").read_text()).fetchone()
        if differ is None or differ[0] != 0:
            raise SystemExit(f"bench.read_state differs from api.read_fraud_v1 for {differ} of 2,000 cards")

    f = lambda n: ["-f", str(HERE / "pgbench" / n)]  # noqa: E731
    print("reads, 8 clients, vs pgbench -S -M prepared on the same cluster:", flush=True)
    for label, script in (
        ("quiet cards (30 days, ~10 events each)", "read_vector.sql"),
        ("busy cards (200 events in the last day, tiled)", "read_vector_busy.sql"),
        ("reference: quiet cards, hand-written single statement, typed columns", "read_one_statement.sql"),
        ("reference: quiet cards, one state row per card with its recent events", "read_state.sql"),
        ("bound: the same read with no window computed", "read_ceiling.sql"),
    ):
        pair = (("vector", lake, f(script)), ("pgbench_S", pgb, ["-S"]))
        results.append(paired(f"vector read, {label}", *pair, 8, args.seconds, args.rounds))

    print("ingest by pgbench, maintained vs bare:", flush=True)
    for label, clients, kind, rows in (
        ("single-row tx, 8 clients", 8, "insert", 1),
        ("1,000-row INSERT, 1 client", 1, "batch", 1000),
        ("1,000-row INSERT, 2 clients", 2, "batch", 1000),
    ):
        pair = (("maintained", lake, f(f"{kind}_lake.sql")), ("bare", lake, f(f"{kind}_bare.sql")))
        results.append(paired(label, *pair, clients, args.seconds, args.rounds, rows))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"core-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps({"machine": machine(), "server": version, "results": results}, indent=2)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=15, help="length of each pgbench run")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per comparison")
    args = ap.parse_args()

    try:
        with server() as base:
            measure(base, args)
    finally:
        Path(COPY_FILE).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
