"""The one-snapshot read path: STABLE functions only, one snapshot, cold start, late events, append-only landing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from tests.cards import INSERT


def land(
    conn: psycopg.Connection,
    event_id: str,
    card: str,
    when: datetime,
    amount: int = 10,
    country: str = "FR",
    merchant: str = "m1",
) -> None:
    conn.execute(INSERT, (event_id, card, merchant, Decimal(amount), "EUR", country, "pos", None, when))


def vector(conn: psycopg.Connection, card: str, as_of: datetime | None = None) -> dict:
    row = conn.execute(
        "SELECT (v).features FROM lake.read_vector('fraud', %s, coalesce(%s, now())) v", (card, as_of)
    ).fetchone()
    assert row is not None
    return row[0]


def test_read_functions_are_stable_and_audit_is_clean(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT p.provolatile, l.lanname FROM lake.feature_sets fs JOIN pg_proc p ON p.oid = fs.read_function "
        "JOIN pg_language l ON l.oid = p.prolang"
    ).fetchall()
    assert rows and all(r == ("s", "plpgsql") for r in rows)
    assert conn.execute("SELECT * FROM lake.read_path_problems()").fetchall() == []


def test_volatile_function_on_read_path_is_caught(conn: psycopg.Connection) -> None:
    fn = conn.execute("SELECT read_function::text FROM lake.feature_sets WHERE name = 'fraud'").fetchone()[0]  # type: ignore[index]
    conn.execute(f"ALTER FUNCTION {fn} VOLATILE")
    conn.execute("ALTER FUNCTION lake_gen.card_txn_lifetime_at(text, timestamptz) VOLATILE")
    problems = conn.execute("SELECT object FROM lake.read_path_problems()").fetchall()
    assert {p[0] for p in problems} == {fn, "lake_gen.card_txn_lifetime_at(text,timestamp with time zone)"}


def test_volatile_expression_slipped_into_catalog_is_caught(conn: psycopg.Connection) -> None:
    # Bypassing the definition API: the audit still finds the volatile call.
    conn.execute(
        "UPDATE lake.features SET expression = 'extract(epoch FROM clock_timestamp() - f.card_last_seen)' "
        "WHERE name = 'seconds_since_last_txn'"
    )
    problems = conn.execute("SELECT object, problem FROM lake.read_path_problems()").fetchall()
    assert problems == [("feature seconds_since_last_txn in fraud v1", "calls VOLATILE clock_timestamp()")]


def test_vector_carries_the_snapshot_it_was_read_in(conn: psycopg.Connection) -> None:
    land(conn, "a1", "c1", datetime.now(UTC))
    same = conn.execute("SELECT (v).snapshot = pg_current_snapshot()::text FROM lake.read_vector('fraud', 'c1') v")
    assert same.fetchone() == (True,)


def test_repeatable_read_sees_one_snapshot(dsn: str, conn: psycopg.Connection) -> None:
    land(conn, "a1", "c1", datetime.now(UTC))
    with psycopg.connect(dsn) as reader:
        reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        reader.read_only = True
        first = vector(reader, "c1")
        land(conn, "a2", "c1", datetime.now(UTC))
        assert vector(reader, "c1") == first
        reader.commit()
        assert vector(reader, "c1")["card_txn_count"] == 2


def test_unseen_entity_gets_cold_start_values(conn: psycopg.Connection) -> None:
    f = vector(conn, "never-seen")
    assert f["card_txn_count"] == 0 and f["card_txn_count_60s"] == 0 and f["card_merchants_5m"] == 0
    assert f["card_amount_sum"] == 0 and f["card_amount_avg"] is None and f["card_last_country"] is None
    assert f["card_credit_limit"] == 500 and f["card_tenure_days"] == 0  # declared cold-start values


def test_unknown_feature_set_is_a_clear_error(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject, match='feature set "nope" is not defined'):
        conn.execute("SELECT lake.read_vector('nope', 'c1')")


def test_late_event_updates_the_right_tiles(conn: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    land(conn, "new", "c1", now - timedelta(seconds=5), country="FR")
    land(conn, "late", "c1", now - timedelta(hours=3), amount=70, country="DE", merchant="m9")
    f = vector(conn, "c1")
    assert f["card_txn_count"] == 2 and f["card_txn_count_1h"] == 1 and f["card_amount_sum_24h"] == 80
    assert f["card_last_country"] == "FR"  # the late event is older than the newest: it does not become "last"
    past = vector(conn, "c1", now - timedelta(hours=3) + timedelta(seconds=30))
    assert past["card_txn_count"] == 1 and past["card_txn_count_60s"] == 1 and past["card_last_country"] == "DE"
    assert conn.execute("SELECT count(*) FROM lake.verify_state()").fetchone() == (0,)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE cards.transactions SET amount = 1",
        "DELETE FROM cards.transactions",
        "TRUNCATE cards.transactions",
    ],
)
def test_landing_tables_are_append_only(conn: psycopg.Connection, statement: str) -> None:
    land(conn, "a1", "c1", datetime.now(UTC))
    with pytest.raises(psycopg.errors.ProhibitedSqlStatementAttempted, match="landing tables are append-only"):
        conn.execute(statement)
    assert vector(conn, "c1")["card_txn_count"] == 1


def test_null_entity_or_as_of_is_a_clear_error(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.NullValueNotAllowed, match="entity and as_of are required"):
        conn.execute("SELECT * FROM api.read_fraud_v1(NULL)")
    with pytest.raises(psycopg.errors.NullValueNotAllowed, match="entity and as_of are required"):
        conn.execute("SELECT * FROM api.read_fraud_v1('c1', NULL)")


def test_typed_vector_lines_up_with_names(conn: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    land(conn, "a1", "c1", now - timedelta(seconds=30))
    conn.execute("INSERT INTO cards.profiles VALUES ('c1', %s, 2, 700, 90)", (now - timedelta(hours=2),))
    typed = conn.execute("SELECT * FROM api.read_fraud_v1('c1', %s, '{\"amount\": 1000}')", (now,))
    names = [d.name for d in typed.description or []]
    row = dict(zip(names, typed.fetchone() or (), strict=True))
    features = conn.execute("SELECT features FROM lake.feature_sets WHERE name = 'fraud'").fetchone()[0]  # type: ignore[index]
    rules = [r[0] for r in conn.execute("SELECT name FROM lake.rules WHERE feature_set = 'fraud' ORDER BY ordinal")]
    assert names == ["entity", "as_of", "snapshot", *features, "ages", "rules"]
    ages = dict(zip(features, row["ages"], strict=True))
    assert ages["card_txn_count"] == pytest.approx(30, abs=0.01)
    assert ages["card_credit_tier"] == pytest.approx(7200, abs=0.01)
    assert dict(zip(rules, row["rules"], strict=True))["over_limit_24h"] is True  # 10 + 1000 > 700
    named = conn.execute(
        "SELECT (v).features, (v).ages FROM lake.read_vector('fraud', 'c1', %s, '{\"amount\": 1000}') v", (now,)
    ).fetchone()
    assert named is not None
    assert named[1] == pytest.approx(ages)
    assert named[0]["card_credit_limit"] == 700 and row["card_credit_limit"] == 700
