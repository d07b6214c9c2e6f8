"""Benchmark of REST ingest against COPY, both landing through the lake (features maintained), in one run.

  COPY:  200,000 card transactions in one COPY FROM STDIN (psycopg), the bulk path
  REST:  200,000 more, POST /v1/events in batches of 1,000 from 2 concurrent keep-alive clients,
         against `contextlake serve` (a separate process, one worker)
  CDC:   200,000 more as Debezium posts them (schemaless inserts of payments.authorizations),
         POST /v1/cdc/debezium, same batches and clients
  freshness: while 2 clients keep posting REST batches, a probe lands one event and reads the
         vector until it counts it, 100 times: p50/p99, next to the lag a store that promotes
         features every --refresh seconds has by construction

Both sides use fresh event ids over the same 20,000 cards and 30 days, so both maintain the same
kind of state. Uses DATABASE_URL when set, else a throwaway cluster with the lake settings.
Usage: .venv/bin/python bench/ingest.py [--events 200000] [--batch 1000] [--clients 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.lake import registry  # noqa: E402
from app.lake.migrations import migrate
from bench.common import fresh_database, server, service  # noqa: E402
from bench.http_client import Connection  # noqa: E402
from examples.cards.sql import cards_project

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


def debezium_batches(rows: list[dict[str, object]], batch: int) -> list[object]:
    """The same events as Debezium Server posts inserts into payments.authorizations (schemaless JSON:
    decimals as base64 unscaled bytes, timestamps as microseconds; the lake's mapping decodes them)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    out = []
    for i, r in enumerate(rows):
        unscaled = round(float(str(r["amount"])) * 100)
        micros = int((datetime.fromisoformat(str(r["event_time"])) - epoch).total_seconds() * 1e6)
        after = {
            "id": r["event_id"],
            "card_id": r["card_id"],
            "merchant_id": r["merchant_id"],
            "amount": base64.b64encode(unscaled.to_bytes(8, "big", signed=True)).decode(),
            "currency": r["currency"],
            "country": r["country"],
            "channel": r["channel"],
            "device_id": None,
            "created_at": micros,
        }
        ts_ms = int(time.time() * 1000)
        source = {"schema": "payments", "table": "authorizations", "lsn": 10_000 + i * 8, "ts_ms": ts_ms}
        out.append({"before": None, "after": after, "source": source, "op": "c", "ts_ms": ts_ms})
    return [out[i : i + batch] for i in range(0, len(out), batch)]


async def post_rate(url: str, key: str, path: str, bodies: list[object], per_body: int, clients: int) -> float:
    """Events per second posting these bodies from `clients` keep-alive connections."""
    host, _, port = url.removeprefix("http://").partition(":")
    done = 0

    async def worker(mine: list[object]) -> None:
        nonlocal done
        conn = Connection(host, int(port), {"Authorization": f"Bearer {key}"})
        await conn.open()
        try:
            for body in mine:
                status, text = await conn.post(path, body)
                assert status == 200, text[:300]
                done += per_body
        finally:
            await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(bodies[i::clients]) for i in range(clients)))
    return done / (time.perf_counter() - t0)


async def freshness_probe(url: str, key: str, background: list[object], probes: int) -> list[float]:
    """Seconds from posting one event to reading a vector that counts it, while REST batches land
    continuously on two other connections."""
    host, _, port = url.removeprefix("http://").partition(":")
    headers = {"Authorization": f"Bearer {key}"}
    stop = asyncio.Event()

    async def ingest(mine: list[object]) -> None:
        conn = Connection(host, int(port), headers)
        await conn.open()
        try:
            for body in mine:
                if stop.is_set():
                    break
                await conn.post("/v1/events", body)
        finally:
            await conn.close()

    async def probe() -> list[float]:
        writer, reader = Connection(host, int(port), headers), Connection(host, int(port), headers)
        await writer.open()
        await reader.open()
        lags = []
        try:
            for i in range(probes):
                event = {
                    "event_id": f"probe-{i}-{time.time_ns()}",
                    "card_id": "probe-card",
                    "merchant_id": "m1",
                    "amount": 1.0,
                    "currency": "EUR",
                    "country": "FR",
                    "channel": "pos",
                    "event_time": datetime.now(UTC).isoformat(),
                }
                t0 = time.perf_counter()
                status, _ = await writer.post("/v1/events", {"source": "card_txn", "event": event})
                assert status == 200
                while True:
                    status, body = await reader.get("/v1/features/fraud/probe-card")
                    if json.loads(body)["features"]["card_txn_count"] == i + 1:
                        break
                lags.append(time.perf_counter() - t0)
                await asyncio.sleep(0.05)
        finally:
            await writer.close()
            await reader.close()
            stop.set()
        return lags

    tasks = [asyncio.create_task(ingest(background[k::2])) for k in range(2)]
    lags = await probe()
    await asyncio.gather(*tasks)
    return lags


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--probes", type=int, default=100, help="freshness probes")
    ap.add_argument("--refresh", type=float, default=60, help="refresh interval of the promotion-based comparison (s)")
    args = ap.parse_args()
    with server() as base:
        dsn, _ = fresh_database(base, "bench_ingest")
        migrate(dsn, cards_project())
        with psycopg.connect(dsn) as conn:
            key = registry.create_api_key(conn, "bench", ["ingest", "score"])[1]
        with service(dsn) as url:
            copy = copy_rate(dsn, events("c", args.events, 1))
            rows = events("r", args.events, 2)
            bodies: list[object] = [
                {"source": "card_txn", "events": rows[i : i + args.batch]} for i in range(0, len(rows), args.batch)
            ]
            rest = asyncio.run(post_rate(url, key, "/v1/events", bodies, args.batch, args.clients))
            cdc_bodies = debezium_batches(events("d", args.events, 3), args.batch)
            cdc = asyncio.run(post_rate(url, key, "/v1/cdc/debezium", cdc_bodies, args.batch, args.clients))
            print(f"{args.events:,} events each side, through the lake (features maintained):")
            print(f"  COPY FROM STDIN, one statement: {copy:,.0f} events/s")
            print(f"  POST /v1/events, {args.batch:,}-event batches, {args.clients} clients: {rest:,.0f} events/s")
            print(f"  POST /v1/cdc/debezium, {args.batch:,}-event batches, {args.clients} clients: {cdc:,.0f} events/s")
            print(f"  ratios to COPY: REST {rest / copy:.2f}, Debezium {cdc / copy:.2f}", flush=True)
            background: list[object] = [
                {"source": "card_txn", "events": events(f"bg{k}-", args.batch, 10 + k)}
                for k in range(args.events // args.batch)
            ]
            lags = sorted(asyncio.run(freshness_probe(url, key, background, args.probes)))
            p50, p99 = lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))]
            print(f"end-to-end freshness under sustained REST ingest ({args.probes} probes: land one event over HTTP,")
            print("  read the vector over HTTP until it counts it):")
            print(f"  p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, max {lags[-1] * 1e3:.1f} ms")
            print(
                f"  a store promoting features every {args.refresh:.0f} s serves them 0-{args.refresh:.0f} s old by "
                f"construction (mean {args.refresh / 2:.0f} s) before its pipeline's own lag: "
                f"{args.refresh / 2 / p50:,.0f}x the p50 here",
                flush=True,
            )


if __name__ == "__main__":
    main()
