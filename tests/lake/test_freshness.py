"""Freshness views: what a person queries with psql."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from tests.cards import INSERT


def test_feature_freshness_names_the_newest_absorbed_event(conn: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    for i, lag in enumerate([30, 20, 2]):
        conn.execute(INSERT, (f"e{i}", "c1", "m1", Decimal(5), "EUR", "FR", "pos", None, now - timedelta(seconds=lag)))
    rows = conn.execute(
        "SELECT feature, newest_event_id, absorbed, state_committed_at IS NOT NULL, age_seconds "
        "FROM lake.feature_freshness WHERE source = 'card_txn'"
    ).fetchall()
    assert {r[0] for r in rows} >= {"card_txn_count", "card_txn_count_60s", "card_merchants_5m"}
    for _, newest, absorbed, committed, age in rows:
        assert newest == "e2" and absorbed and committed
        assert 2 <= age < 60


def test_ingest_lag_percentiles(conn: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    for i in range(101):
        conn.execute(
            INSERT, (f"e{i}", "c1", "m1", Decimal(5), "EUR", "FR", "pos", None, now - timedelta(seconds=i / 10))
        )
    lags = [
        r[0]
        for r in conn.execute(
            "SELECT extract(epoch FROM landed_at - event_time)::float8 FROM cards.transactions"
        ).fetchall()
    ]
    row = conn.execute(
        "SELECT events, p50_seconds, p99_seconds, max_seconds FROM lake.ingest_lag WHERE source = 'card_txn'"
    ).fetchone()
    assert row is not None
    assert row[0] == 101
    assert abs(row[1] - statistics.median(lags)) < 1e-6
    assert abs(row[3] - max(lags)) < 1e-6 and row[2] <= row[3]
