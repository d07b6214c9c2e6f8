"""Benchmark: an authorized client's /v1/score latency, alone and under a flood of requests carrying
made-up API keys (a new key id each time), against `contextlake serve` (one worker) in one run.

  alone:   one client, one keep-alive connection, /v1/score back to back
  flooded: the same, while F connections send a total of R requests per second, each with a key id
           nobody issued (401 each, and each a key lookup the cache cannot answer)

Rounds alternate alone and flooded; the figures are the authorized client's p50 and p99 and their
ratio flooded/alone (the service's target: within 3x). The load generator shares the machine's cores
with the service and PostgreSQL.

Uses DATABASE_URL when set, else starts a throwaway cluster with the lake settings.
Usage: .venv/bin/python bench/auth_flood.py [--seconds 10] [--rounds 2] [--rate 800] [--connections 8]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.lake import registry  # noqa: E402
from app.lake.migrations import migrate  # noqa: E402
from bench.common import fresh_database, server, service  # noqa: E402
from bench.http_client import Connection  # noqa: E402
from bench.service import model_onnx  # noqa: E402
from examples.cards.sql import cards_project  # noqa: E402

BODY = {"model": "fraud", "entity": "card-000001", "request": {"amount": 42.5, "country": "FR"}}


async def authorized(url: str, key: str, seconds: float) -> list[float]:
    host, port = url.removeprefix("http://").split(":")
    conn = Connection(host, int(port), {"Authorization": f"Bearer {key}"})
    await conn.open()
    took: list[float] = []
    stop = time.monotonic() + seconds
    try:
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            status, _ = await conn.post("/v1/score", BODY)
            took.append((time.perf_counter() - t0) * 1000)
            assert status == 200, status
    finally:
        await conn.close()
    return took


async def flood(url: str, seconds: float, rate: float, connections: int) -> int:
    host, port = url.removeprefix("http://").split(":")
    sent = 0

    async def one() -> None:
        nonlocal sent
        conn = Connection(host, int(port), {})
        await conn.open()
        interval = connections / rate
        next_at = time.monotonic()
        stop = next_at + seconds
        try:
            while time.monotonic() < stop:
                conn.fixed = f"Authorization: Bearer clk_{secrets.token_hex(6)}_{secrets.token_hex(32)}\r\n"
                status, _ = await conn.post("/v1/score", BODY)
                assert status == 401, status
                sent += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            await conn.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return sent


def summary(took: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(took, n=100)
    return statistics.median(took), q[98]


async def rounds(url: str, key: str, args: argparse.Namespace) -> None:
    alone: list[float] = []
    flooded: list[float] = []
    rates: list[float] = []
    for r in range(args.rounds):
        alone += await authorized(url, key, args.seconds)
        results = await asyncio.gather(
            authorized(url, key, args.seconds), flood(url, args.seconds, args.rate, args.connections)
        )
        flooded += results[0]
        rates.append(results[1] / args.seconds)
        print(f"round {r + 1}: flood {rates[-1]:,.0f} unknown keys/s", flush=True)
    a50, a99 = summary(alone)
    f50, f99 = summary(flooded)
    print(f"authorized /v1/score alone:   p50 {a50:.2f} ms, p99 {a99:.2f} ms ({len(alone):,} requests)")
    print(
        f"authorized /v1/score flooded: p50 {f50:.2f} ms, p99 {f99:.2f} ms ({len(flooded):,} requests), "
        f"flood {statistics.mean(rates):,.0f}/s"
    )
    print(f"ratio flooded/alone: p50 {f50 / a50:.2f}x, p99 {f99 / a99:.2f}x (target: within 3x)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rate", type=float, default=800, help="made-up keys per second (default 800)")
    p.add_argument("--connections", type=int, default=8, help="connections the flood uses (default 8)")
    args = p.parse_args()
    with server() as base:
        dsn, _ = fresh_database(base, "contextlake_bench_auth")
        migrate(dsn, cards_project())
        with psycopg.connect(dsn) as conn:
            inputs = registry.model_inputs(conn, "fraud", 1)
            registry.register_model(conn, "fraud", model_onnx(len(inputs)), "fraud", status="active")
            key = registry.create_api_key(conn, "bench", ["score"])[1]
        with service(dsn) as url:
            asyncio.run(rounds(url, key, args))


if __name__ == "__main__":
    main()
