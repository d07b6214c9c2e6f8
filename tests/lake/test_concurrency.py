"""Concurrency: eight writers on one hot card while readers read vectors.

No update may be lost, and no read may return a vector that no single moment
had: every read is checked against the raw events visible in its own snapshot.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg

from tests.cards import COPY, INSERT

HOT = "card-hot"
# One statement, one snapshot: the vector as of now() and the raw count and sum it must agree with
# (an event stamped after the reader's now() can already be committed; as of now() it does not count).
READ = (
    "SELECT (v).features, (v).rules, r.n, r.s FROM lake.read_vector('fraud', %s, now(), %s) AS v, "
    "(SELECT count(*) AS n, coalesce(sum(amount), 0) AS s FROM cards.transactions "
    " WHERE card_id = %s AND event_time <= now()) AS r"
)
REQUEST = '{"amount": 40, "country": "FR"}'


def violations(f: dict[str, Any], rules: dict[str, bool], raw_n: int | None, raw_sum: Decimal | None) -> list[str]:
    """What a vector read at one moment can never show."""
    bad = []
    if raw_n is not None and f["card_txn_count"] != raw_n:
        bad.append(f"lifetime count {f['card_txn_count']} but {raw_n} events in the same snapshot")
    if raw_sum is not None and Decimal(str(f["card_amount_sum"])) != raw_sum:
        bad.append(f"lifetime sum {f['card_amount_sum']} but {raw_sum} in the same snapshot")
    if not f["card_txn_count_60s"] <= f["card_txn_count_1h"] <= f["card_txn_count"]:
        bad.append(
            f"windows exceed lifetime: {f['card_txn_count_60s']}, {f['card_txn_count_1h']}, {f['card_txn_count']}"
        )
    testing = f["card_txn_count_60s"] >= 5 and f["card_merchants_5m"] >= 3
    if rules["card_testing"] != testing:
        bad.append(f"rule card_testing={rules['card_testing']} disagrees with its features")
    over = Decimal(str(f["card_amount_sum_24h"])) + 40 > Decimal(str(f["card_credit_limit"]))
    if rules["over_limit_24h"] != over:
        bad.append(f"rule over_limit_24h={rules['over_limit_24h']} disagrees with its features")
    return bad


def test_hot_entity_no_lost_update_and_consistent_reads(dsn: str, conn: psycopg.Connection) -> None:
    writers, per_writer, batch_writers = 8, 60, 2
    landed = [0] * (writers + batch_writers)
    errors: list[BaseException] = []
    reads: list[list[str]] = []
    done = threading.Event()

    def write_single(w: int) -> None:
        rng = random.Random(w)
        with psycopg.connect(dsn, autocommit=True) as c:
            for i in range(per_writer):
                c.execute(
                    INSERT,
                    (
                        f"s{w}-{i}",
                        HOT,
                        f"m{rng.randrange(20)}",
                        Decimal(rng.randrange(1, 500)),
                        "EUR",
                        "FR",
                        "ecom",
                        None,
                        datetime.now(UTC),
                    ),
                )
                landed[w] += 1

    def write_batches(w: int) -> None:
        # Multi-card batches in random order: the fold upserts in key order, so no deadlock.
        rng = random.Random(100 + w)
        with psycopg.connect(dsn) as c:
            for b in range(15):
                with c.cursor().copy(COPY) as cp:
                    for i in range(40):
                        card = HOT if i % 3 == 0 else f"card-b{rng.randrange(30)}"
                        cp.write_row(
                            (
                                f"b{w}-{b}-{i}",
                                card,
                                f"m{rng.randrange(20)}",
                                Decimal(rng.randrange(1, 500)),
                                "EUR",
                                "DE",
                                "pos",
                                None,
                                datetime.now(UTC),
                            )
                        )
                        landed[w] += card == HOT
                c.commit()

    def read() -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            last = -1
            while not done.is_set():
                f, rules, n, s = c.execute(READ, (HOT, REQUEST, HOT)).fetchone()  # type: ignore[misc]
                bad = violations(f, rules, n, s)
                if f["card_txn_count"] < last:
                    bad.append(f"lifetime count went back from {last} to {f['card_txn_count']}")
                last = f["card_txn_count"]
                reads.append(bad)

    def guard(fn: Any, *a: Any) -> Any:
        def run() -> None:
            try:
                fn(*a)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        return run

    readers = [threading.Thread(target=guard(read)) for _ in range(3)]
    workers = [threading.Thread(target=guard(write_single, w)) for w in range(writers)]
    workers += [threading.Thread(target=guard(write_batches, writers + w)) for w in range(batch_writers)]
    for t in readers + workers:
        t.start()
    for t in workers:
        t.join()
    done.set()
    for t in readers:
        t.join()

    assert errors == []
    assert len(reads) > 20
    assert [b for b in reads if b] == []
    f, rules, n, s = conn.execute(READ, (HOT, REQUEST, HOT)).fetchone()  # type: ignore[misc]
    assert f["card_txn_count"] == n == sum(landed)
    assert violations(f, rules, n, s) == []
    assert conn.execute("SELECT count(*) FROM lake.verify_state()").fetchone() == (0,)


def test_a_read_in_two_snapshots_is_caught(dsn: str, conn: psycopg.Connection) -> None:
    """Negative control: reading the lifetime row and a window in two statements, with a commit
    in between, produces a vector no moment had, and the same checks flag it."""
    for i in range(3):
        conn.execute(INSERT, (f"t{i}", HOT, f"m{i}", Decimal(10), "EUR", "FR", "ecom", None, datetime.now(UTC)))
    with psycopg.connect(dsn) as reader:  # READ COMMITTED: each statement takes a new snapshot
        first = reader.execute("SELECT (lake.read_vector('fraud', %s, now(), %s)).features", (HOT, REQUEST)).fetchone()
        for i in range(5):
            conn.execute(INSERT, (f"u{i}", HOT, f"n{i}", Decimal(10), "EUR", "FR", "ecom", None, datetime.now(UTC)))
        second = reader.execute(
            "SELECT (lake.read_vector('fraud', %s, clock_timestamp(), %s)).features", (HOT, REQUEST)
        ).fetchone()
    assert first is not None and second is not None
    torn = dict(
        first[0], card_txn_count_60s=second[0]["card_txn_count_60s"], card_merchants_5m=second[0]["card_merchants_5m"]
    )
    rules = {"card_testing": False, "over_limit_24h": False}
    assert any("windows exceed lifetime" in b for b in violations(torn, rules, None, None))
    assert any("card_testing" in b for b in violations(torn, rules, None, None))
