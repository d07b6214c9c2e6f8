"""The demo: start the lake, apply the migrations, land a stream of card transactions, read vectors."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta

import psycopg

from app import migrate
from app.demo_stream import COLUMNS, card_name, stream
from app.queries import query, read_vector_sql
from app.table import render

HISTORY_EVENTS = 50_000
CARDS = 2_000


def land_history(conn: psycopg.Connection, seed: int) -> int:
    """Bulk-load a week of history with COPY (the trigger maintains the features per COPY statement)."""
    now = datetime.now(UTC)
    n = 0
    with conn.cursor() as cur, cur.copy("COPY cards.transactions ({}) FROM STDIN".format(", ".join(COLUMNS))) as copy:
        for tx in stream(seed, CARDS, HISTORY_EVENTS, now - timedelta(days=7), now - timedelta(seconds=5)):
            copy.write_row(tx.row())
            n += 1
    rng = random.Random(seed)
    with (
        conn.cursor() as cur,
        cur.copy("COPY cards.profiles (card_id, loaded_at, credit_tier, credit_limit, tenure_days) FROM STDIN") as copy,
    ):
        for c in range(CARDS):
            copy.write_row(
                (
                    card_name(c),
                    now - timedelta(hours=6),
                    rng.randint(1, 5),
                    rng.choice([500, 1000, 5000]),
                    rng.randint(0, 4000),
                )
            )
    conn.commit()
    return n


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
        conn.execute(
            insert,
            (
                f"live-{seed}-{n}",
                card,
                f"m{rng.randrange(500)}",
                round(rng.uniform(1, 80), 2),
                "EUR",
                "FR",
                "ecom",
                None,
                datetime.now(UTC),
            ),
        )
        conn.commit()
        n += 1
    return n, hot


def run(dsn: str, seed: int = 7, live_seconds: float = 3.0) -> None:
    print(f"lake: {dsn}")
    migrate.upgrade(dsn)
    with psycopg.connect(dsn) as conn:
        already = conn.execute("SELECT count(*) FROM cards.transactions").fetchone()[0]  # type: ignore[index]
        if already == 0:
            t0 = time.perf_counter()
            n = land_history(conn, seed)
            print(f"landed {n:,} historical transactions by COPY in {time.perf_counter() - t0:.1f} s")
        else:
            print(f"{already:,} transactions already landed; adding live ones")
        n, hot = land_live(conn, seed + already, live_seconds)
        print(f"landed {n:,} live transactions one per transaction in {live_seconds:.0f} s")

        fn, features = conn.execute(query("read_function"), {"feature_set": "fraud", "version": None}).fetchone()  # type: ignore[misc]
        request = json.dumps({"amount": 250.0, "country": "US"})
        for card in (hot, card_name(1), "card-never-seen"):
            params = {"feature_set": "fraud", "entity": card, "as_of": None, "version": None, "request": request}
            row = conn.execute(query("read_vector_by_name"), params).fetchone()
            assert row is not None
            _, _, entity, as_of, snapshot, values, ages, rules = row
            print(f"\nvector of {entity} as of {as_of:%H:%M:%S.%f} (snapshot {snapshot})")
            print(
                render(
                    ["feature", "value", "age_s"],
                    [(f, values[f], None if ages.get(f) is None else f"{ages[f]:.3f}") for f in features],
                )
            )
            print("rules: " + ", ".join(f"{r}={'HIT' if hit else 'no'}" for r, hit in rules.items()))

        # What a service runs: the generated function, typed values (no jsonb), as a prepared statement.
        read = read_vector_sql(fn)
        reads = 2000
        t0 = time.perf_counter()
        for i in range(reads):
            conn.execute(read, (card_name(i % CARDS), datetime.now(UTC), request)).fetchone()
        dt = time.perf_counter() - t0
        print(
            f"\n{reads} vector reads (23 features, 5 windows, 3 rules) from one client: {reads / dt:,.0f}/s, "
            f"{dt / reads * 1e3:.2f} ms each incl. the round trip"
        )
        print("\nfreshness (lake.feature_freshness):")
        cur = conn.execute(query("freshness"))
        print(render([d.name for d in cur.description or []], cur.fetchall()))
        cur = conn.execute(query("ingest_lag"))
        print("\ningest lag (lake.ingest_lag):")
        print(render([d.name for d in cur.description or []], cur.fetchall()))
