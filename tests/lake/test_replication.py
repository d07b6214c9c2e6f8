"""Native logical replication from an upstream PostgreSQL (a cluster of its own) into the lake:
inserts on the publisher become features on the lake, maintained by the replica row path."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from app.lake.cluster import throwaway_cluster
from tests.cards import land_txn
from tests.conftest import TEST_TMP

UPSTREAM_TABLE = """
CREATE SCHEMA cards;
CREATE TABLE cards.transactions (
    event_id text PRIMARY KEY, card_id text NOT NULL, merchant_id text NOT NULL, amount numeric(14, 2) NOT NULL,
    currency char(3) NOT NULL, country char(2) NOT NULL, channel text NOT NULL, device_id text,
    event_time timestamptz NOT NULL);
CREATE PUBLICATION lake_feed FOR TABLE cards.transactions WITH (publish = 'insert');
"""
INSERT = (
    "INSERT INTO cards.transactions (event_id, card_id, merchant_id, amount, currency, country, channel, event_time) "
    "SELECT 'u' || i, 'c' || (i %% 5), 'm' || (i %% 7), 1 + i %% 50, 'EUR', 'FR', 'pos', "
    "now() - make_interval(secs => i * 11) FROM generate_series(%s::int, %s::int) AS i"
)


@pytest.fixture
def upstream() -> Iterator[str]:
    with throwaway_cluster("contextlake-upstream-", TEST_TMP) as cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE payments")
        dsn = cluster.dsn("payments")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(UPSTREAM_TABLE)
        yield dsn


def wait_for(conn: psycopg.Connection, count: int, seconds: float = 30) -> float:
    t0 = time.monotonic()
    while conn.execute("SELECT count(*) FROM cards.transactions").fetchone() != (count,):
        assert time.monotonic() - t0 < seconds, f"{count} rows not replicated within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - t0


def test_upstream_inserts_become_features_on_the_lake(upstream: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT lake.enable_replica_maintenance('card_txn')")
    with psycopg.connect(upstream, autocommit=True) as up:
        up.execute(INSERT, (1, 150))  # before the subscription: the initial copy brings these
        conn.execute(
            f"CREATE SUBSCRIPTION lake_feed CONNECTION '{upstream}' PUBLICATION lake_feed WITH (copy_data = true)"
        )
        try:
            wait_for(conn, 150)
            up.execute(INSERT, (151, 400))  # one transaction of 250 rows
            for i in range(401, 411):  # and single-row transactions
                up.execute(INSERT, (i, i))
            wait_for(conn, 410)  # within 30 s
            # Every maintained feature equals its recomputation from the replicated raw events.
            assert conn.execute("SELECT count(*) FROM lake.verify_state()").fetchone() == (0,)
            for c in range(5):
                vector = conn.execute(
                    "SELECT card_txn_count, card_amount_sum FROM api.read_fraud_v1(%s)", (f"c{c}",)
                ).fetchone()
                raw = conn.execute(
                    "SELECT count(*), sum(amount) FROM cards.transactions WHERE card_id = %s", (f"c{c}",)
                ).fetchone()
                assert vector == raw
            # Lag: the lake's landed time against the publisher's commit time of each row.
            committed = dict(
                up.execute(
                    "SELECT event_id, pg_xact_commit_timestamp(xmin) FROM cards.transactions WHERE event_id = ANY(%s)",
                    ([f"u{i}" for i in range(401, 411)],),
                ).fetchall()
            )
            landed = dict(
                conn.execute(
                    "SELECT event_id, landed_at FROM cards.transactions WHERE event_id = ANY(%s)", (list(committed),)
                ).fetchall()
            )
            lags = [(landed[e] - committed[e]).total_seconds() for e in committed]
            assert len(lags) == 10 and all(-1 < lag < 30 for lag in lags), lags
            sub = conn.execute("SELECT subscription, received_lsn IS NOT NULL FROM lake.subscription_lag").fetchone()
            assert sub == ("lake_feed", True)
            assert conn.execute("SELECT events FROM lake.ingest_lag WHERE source = 'card_txn'").fetchone() is not None
        finally:
            conn.execute("DROP SUBSCRIPTION lake_feed")
    # Local inserts on the lake still go through the statement trigger, once.
    land_txn(conn, "local", "c0", "m1", 5, datetime.now(UTC) - timedelta(seconds=1))
    assert conn.execute("SELECT count(*) FROM lake.verify_state()").fetchone() == (0,)


def test_a_regenerated_source_regenerates_its_replica_maintenance(conn: psycopg.Connection) -> None:
    conn.execute("SELECT lake.enable_replica_maintenance('card_txn')")
    before = conn.execute("SELECT pg_get_functiondef('lake_gen.card_txn_maintain_row'::regproc)").fetchone()
    # New state (a distinct count of a new column) and tiles for every entity from its first event.
    conn.execute("SELECT lake.define_feature('card_devices_1h', 'card_txn', 'count_distinct', 'device_id', '1 hour')")
    conn.execute("SELECT lake.set_tile_threshold('card_txn', 1)")
    after = conn.execute("SELECT pg_get_functiondef('lake_gen.card_txn_maintain_row'::regproc)").fetchone()
    assert before != after and after is not None and "device_id" in after[0]
    conn.execute("SET session_replication_role = replica")  # what the apply worker runs with
    for i, device in enumerate(["d1", "d2", "d1"]):
        land_txn(conn, f"r{i}", "c1", "m1", 5, device=device)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="append-only"):
        conn.execute("DELETE FROM cards.transactions WHERE event_id = 'r0'")  # a replicated delete stops, loudly
    conn.execute("SET session_replication_role = origin")
    assert conn.execute("SELECT count(*) FROM lake.verify_state()").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM lake_gen.card_txn_tiles WHERE grain > 0").fetchone()[0] > 0  # type: ignore[index]


def test_a_replicated_truncate_stops_the_subscription_and_loses_nothing(
    upstream: str, conn: psycopg.Connection
) -> None:
    """A publication of PostgreSQL's defaults publishes truncates too: the lake refuses one, loudly."""
    conn.execute("SELECT lake.enable_replica_maintenance('card_txn')")
    land_txn(conn, "local", "c0", "m1", 5, datetime.now(UTC) - timedelta(seconds=1))
    with psycopg.connect(upstream, autocommit=True) as up:
        up.execute("CREATE PUBLICATION everything FOR TABLE cards.transactions")  # insert, update, delete, truncate
        up.execute(INSERT, (1, 40))
        conn.execute(
            f"CREATE SUBSCRIPTION lake_all CONNECTION '{upstream}' PUBLICATION everything WITH (copy_data = true)"
        )
        try:
            wait_for(conn, 41)
            up.execute("TRUNCATE cards.transactions")
            up.execute(INSERT, (41, 41))  # behind the truncate: never applied while it is refused
            deadline = time.monotonic() + 30
            while conn.execute(
                "SELECT coalesce(sum(apply_error_count), 0) FROM pg_stat_subscription_stats WHERE subname = 'lake_all'"
            ).fetchone() == (0,):
                assert time.monotonic() < deadline, "the replicated truncate was not refused"
                time.sleep(0.1)
            assert conn.execute("SELECT count(*) FROM cards.transactions").fetchone() == (41,)
            assert conn.execute("SELECT count(*) FROM lake.verify_state()").fetchone() == (0,)
            assert conn.execute("SELECT card_txn_count FROM api.read_fraud_v1('c0')").fetchone()[0] > 1  # type: ignore[index]
        finally:
            conn.execute("ALTER SUBSCRIPTION lake_all DISABLE")
            conn.execute("ALTER SUBSCRIPTION lake_all SET (slot_name = NONE)")
            conn.execute("DROP SUBSCRIPTION lake_all")
            up.execute("SELECT pg_drop_replication_slot('lake_all')")


def test_a_disabled_subscription_is_shown_as_such(upstream: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT lake.enable_replica_maintenance('card_txn')")
    conn.execute(f"CREATE SUBSCRIPTION lake_feed CONNECTION '{upstream}' PUBLICATION lake_feed")
    try:
        deadline = time.monotonic() + 30
        while conn.execute("SELECT state FROM api.subscription_lag").fetchone() != ("streaming",):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        conn.execute("ALTER SUBSCRIPTION lake_feed DISABLE")
        row = conn.execute("SELECT state, since_last_confirmed_seconds FROM api.subscription_lag").fetchone()
        assert row == ("disabled", None)
    finally:
        conn.execute("ALTER SUBSCRIPTION lake_feed DISABLE")
        conn.execute("DROP SUBSCRIPTION lake_feed")
