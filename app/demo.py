"""The demo: start the lake, apply the migrations, land a week of card transactions and their
chargebacks, land live ones, train and register the fraud model, then serve and score over HTTP."""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from app import migrate, registry
from app.demo_model import train_and_register
from app.demo_stream import COLUMNS, card_name, stream
from app.local_server import serving
from app.queries import query
from app.settings import Settings
from app.table import render

HISTORY_EVENTS = 50_000
CARDS = 2_000
SHOWN = (
    "card_txn_count",
    "card_txn_count_60s",
    "card_merchants_5m",
    "card_amount_sum_24h",
    "card_credit_limit",
    "amount_to_avg_30d",
    "seconds_since_last_txn",
)


def land_history(conn: psycopg.Connection, seed: int) -> tuple[int, int]:
    """Bulk-load a week of history with COPY (the trigger maintains the features per COPY statement), the
    card profiles an offline job would load, and a chargeback for every fraudulent transaction."""
    now = datetime.now(UTC)
    rng = random.Random(seed)
    n, frauds = 0, []
    with conn.cursor() as cur, cur.copy("COPY cards.transactions ({}) FROM STDIN".format(", ".join(COLUMNS))) as copy:
        for tx in stream(seed, CARDS, HISTORY_EVENTS, now - timedelta(days=7), now - timedelta(minutes=5)):
            copy.write_row(tx.row())
            n += 1
            if tx.fraud:
                frauds.append(tx)
    with (
        conn.cursor() as cur,
        cur.copy("COPY cards.profiles (card_id, loaded_at, credit_tier, credit_limit, tenure_days) FROM STDIN") as copy,
    ):
        for c in range(CARDS):
            copy.write_row(
                (
                    card_name(c),
                    now - timedelta(days=8),
                    rng.randint(1, 5),
                    rng.choice([500, 1000, 5000]),
                    rng.randint(0, 4000),
                )
            )
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY cards.chargebacks (chargeback_id, event_id, card_id, reason_code, amount, reported_at) FROM STDIN"
        ) as copy,
    ):
        for i, tx in enumerate(frauds):
            # Labels arrive days later (never after now: the history is one week long).
            reported = min(tx.event_time + timedelta(days=rng.uniform(1, 6)), now - timedelta(minutes=1))
            copy.write_row((f"cb{i}", tx.event_id, tx.card_id, "10.4", tx.amount, reported))
    conn.commit()
    return n, len(frauds)


def land_live(conn: psycopg.Connection, seed: int, seconds: float) -> tuple[int, str]:
    """Land single transactions as they happen, one per transaction; returns the count and the busiest card."""
    rng = random.Random(seed + 1)
    hot = card_name(rng.randrange(CARDS))
    deadline = time.monotonic() + seconds
    n = 0
    insert = "INSERT INTO cards.transactions ({}) VALUES ({})".format(
        ", ".join(COLUMNS), ", ".join(["%s"] * len(COLUMNS))
    )
    while time.monotonic() < deadline:
        card = hot if n % 4 == 0 else card_name(rng.randrange(CARDS))
        merchant = f"m{n % 7}" if card == hot else f"m{rng.randrange(500)}"
        row = (
            f"live-{seed}-{n}",
            card,
            merchant,
            round(rng.uniform(1, 80), 2),
            "EUR",
            "FR",
            "ecom",
            None,
            datetime.now(UTC),
        )
        conn.execute(insert, row)
        conn.commit()
        n += 1
    return n, hot


def show(title: str, body: dict[str, Any]) -> None:
    features = body["features"]
    print(
        f"\n{title}: {str(body['decision']).upper()} (score {body['score']:.3f}, "
        f"model {body['model']['name']} v{body['model']['version']})"
    )
    for reason in body["reasons"]:
        print(f"  because {reason}")
    rows = [
        (f, features[f]["value"], "-" if features[f]["age_seconds"] is None else f"{features[f]['age_seconds']:.3f}")
        for f in SHOWN
    ]
    print(render(["feature", "value", "age_s"], rows))
    print(f"  snapshot {body['snapshot']}, as of {body['as_of']}, timing ms {body['timing_ms']}")


def run(dsn: str, seed: int = 7, live_seconds: float = 3.0) -> None:
    print(f"lake: {dsn}")
    migrate.upgrade(dsn)
    with psycopg.connect(dsn) as conn:
        already = conn.execute("SELECT count(*) FROM cards.transactions").fetchone()[0]  # type: ignore[index]
        if already == 0:
            t0 = time.perf_counter()
            n, frauds = land_history(conn, seed)
            print(
                f"landed {n:,} historical transactions by COPY ({frauds} fraudulent, each with a chargeback) "
                f"in {time.perf_counter() - t0:.1f} s"
            )
        else:
            print(f"{already:,} transactions already landed; adding live ones")
        n, hot = land_live(conn, seed + already, live_seconds)
        print(f"landed {n:,} live transactions one per transaction in {live_seconds:.0f} s")
        if conn.execute(query("active_model"), {"name": "fraud"}).fetchone() is None:
            train_and_register(conn, seed)
        conn.commit()
        tester = conn.execute(query("card_with_most_chargebacks")).fetchone()[0]  # type: ignore[index]
        api_key = registry.create_api_key(conn, "demo", ["score", "ingest"])[1]

    with serving(Settings(database_url=dsn), api_key) as http:
        print(f"\nserving on {http.base_url} (OpenAPI at /docs); API key for this run: {api_key}")
        request = {"amount": 250.0, "country": "US"}
        for title, card in (
            (f"busiest live card {hot}", hot),
            (f"card with most chargebacks {tester}", tester),
            ("unseen card", "card-never-seen"),
        ):
            body = http.post("/v1/score", json={"model": "fraud", "entity": card, "request": request}).json()
            show(f"POST /v1/score {title}, 250 USD abroad", body)
        event = {
            "event_id": f"demo-decide-{time.time_ns()}",
            "merchant_id": "m42",
            "amount": 35.0,
            "currency": "EUR",
            "country": "FR",
            "channel": "pos",
        }
        body = http.post("/v1/decide", json={"model": "fraud", "entity": hot, "event": event}).json()
        show(f"POST /v1/decide {hot}: lands the event and decides in one transaction", body)

        latencies = []
        t0 = time.perf_counter()
        for i in range(1000):
            t = time.perf_counter()
            http.post("/v1/score", json={"model": "fraud", "entity": card_name(i % CARDS), "request": request})
            latencies.append((time.perf_counter() - t) * 1e3)
        dt = time.perf_counter() - t0
        q = statistics.quantiles(latencies, n=100)
        print(
            f"\n1,000 /v1/score calls from one HTTP client: {1000 / dt:,.0f}/s, "
            f"p50 {q[49]:.2f} ms, p99 {q[98]:.2f} ms (read, model, rules, decision, log)"
        )

    with psycopg.connect(dsn) as conn:
        logged = conn.execute(query("decisions_by_outcome")).fetchall()
        print("\ndecision log (lake.decisions): " + ", ".join(f"{o} {c:,}" for o, c in logged))
        print("\ningest lag (lake.ingest_lag):")
        cur = conn.execute(query("ingest_lag"))
        print(render([d.name for d in cur.description or []], cur.fetchall()))
