"""Compaction drops what no read needs and changes no value a read returns."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from examples.cards.generator import TRANSACTION_COLUMNS as COLUMNS

COPY = "COPY cards.transactions ({}) FROM STDIN".format(", ".join(COLUMNS))
READ = "SELECT (v).features, (v).ages FROM lake.read_vector('fraud', %s, %s, '{\"amount\": 5}') v"


def land_history(conn: psycopg.Connection, days: int) -> datetime:
    now = datetime.now(UTC)
    rng = random.Random(3)
    with conn.cursor().copy(COPY) as cp:
        for i in range(3000):
            when = now - timedelta(seconds=rng.uniform(0, days * 86400))
            cp.write_row(
                (
                    f"h{i}",
                    f"c{i % 7}",
                    f"m{rng.randrange(9)}",
                    Decimal(rng.randrange(1, 900)),
                    "EUR",
                    rng.choice(["FR", "DE"]),
                    "pos",
                    None,
                    when,
                )
            )
    return now


def test_compact_keeps_every_read_and_refuses_reads_before_the_horizon(conn: psycopg.Connection) -> None:
    now = land_history(conn, days=70)
    times = [now, now - timedelta(hours=5), now - timedelta(days=1, minutes=7)]
    before = {(c, t): conn.execute(READ, (f"c{c}", t)).fetchone() for c in range(8) for t in times}

    removed = conn.execute("SELECT source, raw_deleted, tiles_deleted, read_horizon FROM lake.compact(%s)", (now,))
    by_source = {r[0]: r for r in removed.fetchall()}
    assert by_source["card_txn"][1] > 0 and by_source["card_txn"][2] > 0
    horizon = by_source["card_txn"][3]
    assert now - timedelta(days=2) < horizon < now - timedelta(hours=1)
    oldest = conn.execute("SELECT min(event_time) FROM cards.transactions").fetchone()[0]  # type: ignore[index]
    assert oldest > now - timedelta(days=33)  # 30-day window + grace, rounded to days

    after = {(c, t): conn.execute(READ, (f"c{c}", t)).fetchone() for c in range(8) for t in times}
    assert after == before
    assert conn.execute("SELECT count(*) FROM lake.verify_state()").fetchone() == (0,)
    with pytest.raises(psycopg.errors.DataException, match="before the retention horizon"):
        conn.execute(READ, ("c1", horizon - timedelta(seconds=1)))


def test_min_raw_retention_keeps_raw_events(conn: psycopg.Connection) -> None:
    now = land_history(conn, days=70)
    conn.execute("UPDATE lake.settings SET value = '100 days' WHERE key = 'min_raw_retention'")
    removed = conn.execute("SELECT sum(raw_deleted) FROM lake.compact(%s)", (now,)).fetchone()
    assert removed == (0,)
    assert conn.execute("SELECT count(*) FROM cards.transactions").fetchone() == (3000,)


def test_schedule_without_pg_cron_is_a_clear_error(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject, match="pg_cron is not installed"):
        conn.execute("SELECT lake.schedule_compaction()")
