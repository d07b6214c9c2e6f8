"""Benchmark of the scoring service over HTTP, against the lake read it is built on, in one run.

  baseline: the fraud vector read (the generated function, one prepared statement) from C
            concurrent asyncio psycopg connections, no HTTP, no model
  score:    POST /v1/score from C concurrent HTTP clients against `contextlake serve` (a separate
            process, one worker): auth, read, ONNX model (gradient-boosted trees), rules, decision
            log
  decide:   POST /v1/decide likewise: entity lock, read, model, landing the event, logging, commit

Quiet cards: 100,000 cards, 300,000 events over 30 days. The load generator is one Python process
(asyncio, a minimal keep-alive HTTP/1.1 client, bench/http_client.py) on the same cores as the
service and PostgreSQL: the figures are the whole machine's, ratios in one run.

Uses DATABASE_URL when set, else starts a throwaway cluster with the lake settings.
Usage: .venv/bin/python bench/service.py [--seconds 10] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.lake import registry  # noqa: E402
from app.lake.migrations import migrate
from app.lake.queries import query  # noqa: E402
from app.serve.scoring import Catalog  # noqa: E402
from bench.common import fresh_database, server, service  # noqa: E402
from bench.http_client import Connection  # noqa: E402
from examples.cards.sql import cards_project

HERE = Path(__file__).resolve().parent
CARDS = 100_000
REQUEST = {"amount": 42.5, "country": "FR"}


def card(rng: random.Random) -> str:
    return f"card-{rng.randrange(1, CARDS + 1):06d}"


def model_onnx(k: int) -> bytes:
    """A gradient-boosted model of k inputs (the cost of a real tree model, not a constant)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, k)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0.8).astype(int)
    model = make_pipeline(SimpleImputer(strategy="median"), GradientBoostingClassifier(n_estimators=80, max_depth=3))
    model.fit(x, y)
    return to_onnx(model, x[:1], options={"zipmap": False}).SerializeToString()


def prepare_lake(dsn: str, scopes: list[str]) -> str:
    """The card example migrated, the quiet cards' events landed, the tree model active, vacuumed;
    returns an API key of `scopes`."""
    migrate(dsn, cards_project())
    with psycopg.connect(dsn) as conn:
        conn.execute((HERE / "service_setup.sql").read_text())
        k = len(conn.execute(query("model_inputs"), {"feature_set": "fraud", "version": 1}).fetchall())
        registry.register_model(conn, "fraud", model_onnx(k), "fraud", status="active")
        key = registry.create_api_key(conn, "bench", scopes)[1]
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return key


def summary(name: str, latencies: list[float], seconds: float, errors: int) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100)
    rate = len(latencies) / seconds
    print(f"  {name}: {rate:,.0f}/s, p50 {q[49]:.2f} ms, p99 {q[98]:.2f} ms, errors {errors}", flush=True)
    return {"rate": rate, "p50": q[49], "p99": q[98]}


async def read_baseline(dsn: str, clients: int, seconds: float) -> dict[str, float]:
    async with AsyncConnectionPool(dsn, min_size=clients, max_size=clients, kwargs={"autocommit": True}) as pool:
        async with pool.connection() as conn:
            catalog = Catalog()
            read = catalog.statement(conn, [await catalog.get(conn, "fraud", 1)])  # what /v1/score runs
        latencies: list[float] = []
        stop = time.monotonic() + seconds

        async def worker(i: int) -> None:
            rng = random.Random(i)
            async with pool.connection() as conn:
                while time.monotonic() < stop:
                    t = time.perf_counter()
                    params = {"entity": card(rng), "as_of": None, "request": Jsonb(REQUEST)}
                    await (await conn.execute(read, params, prepare=True)).fetchone()
                    latencies.append((time.perf_counter() - t) * 1e3)

        t0 = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        return summary("baseline: vector read, psycopg, no HTTP", latencies, time.monotonic() - t0, 0)


async def http_load(base: str, key: str, route: str, clients: int, seconds: float, label: str = "") -> dict[str, float]:
    host, _, port = base.removeprefix("http://").partition(":")
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def worker(i: int) -> None:
        nonlocal errors
        rng = random.Random(100 + i)
        conn = Connection(host, int(port), {"Authorization": f"Bearer {key}"})
        await conn.open()
        n = 0
        try:
            while time.monotonic() < stop:
                if route == "/v1/score":
                    body: dict[str, object] = {"model": "fraud", "entity": card(rng), "request": REQUEST}
                else:
                    n += 1
                    event = {
                        "event_id": f"bench-{i}-{n}-{time.time_ns()}",
                        "merchant_id": f"m{rng.randrange(500)}",
                        "amount": 42.5,
                        "currency": "EUR",
                        "country": "FR",
                        "channel": "ecom",
                    }
                    body = {"model": "fraud", "entity": card(rng), "event": event}
                t = time.perf_counter()
                status, _ = await conn.post(route, body)
                if status != 200:
                    errors += 1
                latencies.append((time.perf_counter() - t) * 1e3)
        finally:
            await conn.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return summary(label or f"POST {route} over HTTP", latencies, time.monotonic() - t0, errors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    with server() as base:
        dsn, _ = fresh_database(base, "bench_service")
        key = prepare_lake(dsn, ["score", "ingest"])
        with service(dsn, CONTEXTLAKE_POOL_MAX=str(args.clients)) as url:
            print(f"{args.clients} concurrent clients, {args.seconds:.0f} s each, quiet cards:", flush=True)
            asyncio.run(http_load(url, key, "/v1/score", args.clients, 2, "warm-up (prepared statements, sessions)"))
            baseline = asyncio.run(read_baseline(dsn, args.clients, args.seconds))
            score = asyncio.run(http_load(url, key, "/v1/score", args.clients, args.seconds))
            decide = asyncio.run(http_load(url, key, "/v1/decide", args.clients, args.seconds))
        print(
            f"  ratios to the baseline read: score {score['rate'] / baseline['rate']:.2f}, "
            f"decide {decide['rate'] / baseline['rate']:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
