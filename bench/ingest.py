"""Benchmark of REST ingest against COPY, both landing through the lake (features maintained), in one run.

  COPY:  200,000 card transactions in one COPY FROM STDIN (psycopg), the bulk path
  REST:  200,000 more, POST /v1/events in batches of 1,000 from 2 concurrent keep-alive clients,
         against `contextlake serve` (a separate process, one worker)

Both sides use fresh event ids over the same 20,000 cards and 30 days, so both maintain the same
kind of state. Uses DATABASE_URL when set, else a throwaway cluster with the lake settings.
Usage: .venv/bin/python bench/ingest.py [--events 200000] [--batch 1000] [--clients 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import migrate, registry  # noqa: E402
from app.embedded import Cluster, free_port  # noqa: E402
from bench.http_client import Connection  # noqa: E402
from bench.run import machine  # noqa: E402

COLUMNS = ("event_id", "card_id", "merchant_id", "amount", "currency", "country", "channel", "event_time")


def events(prefix: str, n: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [
        {
            "event_id": f"{prefix}{i}",
            "card_id": f"card-{rng.randrange(20_000):06d}",
            "merchant_id": f"m{rng.randrange(5000)}",
            "amount": round(rng.uniform(1, 200), 2),
            "currency": "EUR",
            "country": "FR",
            "channel": "ecom",
            "event_time": (now - timedelta(seconds=rng.uniform(0, 30 * 86400))).isoformat(),
        }
        for i in range(n)
    ]


def copy_rate(dsn: str, rows: list[dict[str, object]]) -> float:
    with psycopg.connect(dsn) as conn:
        t0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY cards.transactions ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(tuple(r[c] for c in COLUMNS))
        conn.commit()
        return len(rows) / (time.perf_counter() - t0)


async def rest_rate(url: str, key: str, rows: list[dict[str, object]], batch: int, clients: int) -> float:
    host, _, port = url.removeprefix("http://").partition(":")
    batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    landed = 0

    async def worker(mine: list[list[dict[str, object]]]) -> None:
        nonlocal landed
        conn = Connection(host, int(port), {"Authorization": f"Bearer {key}"})
        await conn.open()
        try:
            for b in mine:
                status, body = await conn.post("/v1/events", {"source": "card_txn", "events": b})
                assert status == 200, body[:300]
                landed += len(b)
        finally:
            await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(batches[i::clients]) for i in range(clients)))
    return landed / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=2)
    args = ap.parse_args()
    cluster = None
    base = os.environ.get("DATABASE_URL")
    if not base:
        home = Path(tempfile.mkdtemp(prefix="contextlake-bench-", dir="/tmp"))
        os.chmod(home, 0o755)
        cluster = Cluster(home=home, port=free_port(), dbname="postgres")
        cluster.start()
        base = cluster.dsn()
    server = None
    try:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS bench_ingest")
            admin.execute("CREATE DATABASE bench_ingest")
            version = admin.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
        dsn = base.rsplit("/", 1)[0] + "/bench_ingest"
        print(f"machine: {machine()}\nserver: {version}", flush=True)
        migrate.upgrade(dsn)
        with psycopg.connect(dsn) as conn:
            key = registry.create_api_key(conn, "bench", ["ingest"])[1]
        port = free_port()
        env = dict(os.environ, DATABASE_URL=dsn)
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.2)
        copy = copy_rate(dsn, events("c", args.events, 1))
        rest = asyncio.run(rest_rate(url, key, events("r", args.events, 2), args.batch, args.clients))
        print(f"{args.events:,} events each side, through the lake (features maintained):")
        print(f"  COPY FROM STDIN, one statement: {copy:,.0f} events/s")
        print(f"  POST /v1/events, {args.batch:,}-event batches, {args.clients} clients: {rest:,.0f} events/s")
        print(f"  ratio REST / COPY: {rest / copy:.2f}", flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if cluster is not None:
            cluster.destroy()


if __name__ == "__main__":
    main()
