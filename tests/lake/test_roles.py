"""The contract: the service role may call and read the api schema and nothing else (no table, no
engine function, no temporary table, no DDL); the analyst role reads the contract's views and vectors,
never key hashes or the service's writes, and is read only. Checked against every object of the lake's
schemas, and by using each privilege for real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from app.lake.migrations import migrate
from examples.cards.sql import cards_project
from tests.cards import land_txn

READ_VIEWS = {
    "api.sources", "api.features", "api.feature_sets", "api.rules", "api.labels", "api.models", "api.cdc_mappings",
    "api.settings", "api.feature_freshness", "api.ingest_lag", "api.cdc_lag", "api.subscription_lag",
    "api.cdc_dead_letters_open",
}  # fmt: skip
READ_FUNCTIONS = {
    "api.feature_freshness_now()", "api.ingest_lag_now()", "api.ingest_lag_over(interval)", "api.cdc_lag_now()",
    "api.subscription_lag_now()", "api.cdc_dead_letters_open_now()",
    "api.read_vector(text,text,timestamp with time zone,jsonb,integer)",
    "api.read_fraud_v1(text,timestamp with time zone,jsonb)",
}  # fmt: skip
SERVICE_FUNCTIONS = {
    "api.api_key(text)", "api.land_events(text,jsonb)", "api.apply_changes(jsonb)",
    "api.dead_letter_changes(jsonb)", "api.lock_entity(text,text,jsonb,text)", "api.land_event(text,text,jsonb)",
    "api.log_decisions(jsonb)",
}  # fmt: skip

PRIVILEGES = (Path(__file__).parent / "privileges.sql").read_text()


def reach(conn: psycopg.Connection, role: str) -> set[tuple[str, str]]:
    return {(k, v) for k, v in conn.execute(PRIVILEGES, {"role": role}).fetchall()}


@pytest.fixture
def migrated(dsn: str) -> None:
    """This test's database migrated by its own name: grants of the database itself (CONNECT, TEMPORARY)
    do not travel with the template copy it is made from."""
    migrate(dsn, cards_project())


@pytest.fixture
def service(migrated: None, dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(make_conninfo(dsn, user="contextlake_service"), autocommit=True) as c:
        yield c


@pytest.fixture
def analyst(migrated: None, dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(make_conninfo(dsn, user="contextlake_analyst"), autocommit=True) as c:
        yield c


def test_each_role_reaches_exactly_the_contract(migrated: None, conn: psycopg.Connection) -> None:
    public = "public"  # PostgreSQL's own public schema: usable by every role, CREATE revoked since 15
    expected_service = (
        {("schema", "api"), ("schema", public)}
        | {("relation", v) for v in READ_VIEWS}
        | {("function", f) for f in READ_FUNCTIONS | SERVICE_FUNCTIONS}
    )
    assert reach(conn, "contextlake_service") == expected_service
    expected_analyst = (
        {("schema", "api"), ("schema", public), ("relation", "api.decisions")}
        | {("relation", v) for v in READ_VIEWS}
        | {("function", f) for f in READ_FUNCTIONS}
    )
    assert reach(conn, "contextlake_analyst") == expected_analyst


def test_the_service_uses_its_contract(service: psycopg.Connection, conn: psycopg.Connection) -> None:
    assert service.execute("SELECT card_txn_count FROM api.read_fraud_v1('c1')").fetchone() == (0,)
    ev = '{"event_id": "e1", "merchant_id": "m", "amount": 3, "currency": "EUR", "country": "FR", "channel": "pos"}'
    with service.transaction():
        lock = service.execute("SELECT api.lock_entity('card_txn', 'c1', %s)", (ev,)).fetchone()
        assert lock is not None and lock[0]["entity"] == "card"
        assert service.execute("SELECT api.land_event('card_txn', 'c1', %s)", (ev,)).fetchone() == ("e1",)
    assert service.execute("SELECT card_txn_count FROM api.read_fraud_v1('c1')").fetchone() == (1,)
    batch = '[{"event_id": "e2", "card_id": "c1", "merchant_id": "m", "amount": 3, "currency": "EUR", ' \
        '"country": "FR", "channel": "pos", "event_time": "2026-01-01T00:00:00Z"}]'  # fmt: skip
    assert service.execute("SELECT status FROM api.land_events('card_txn', %s)", (batch,)).fetchone() == ("landed",)
    assert service.execute("SELECT (features->>'card_txn_count') FROM api.read_vector('fraud', 'c1')").fetchone() == (
        "2",
    )
    assert service.execute("SELECT count(*) FROM api.feature_freshness").fetchone()[0] > 0  # type: ignore[index]
    assert service.execute("SELECT revoked FROM api.api_key('nosuch')").fetchone() is None
    assert service.execute("SELECT read_function FROM api.feature_sets").fetchone() == ("api.read_fraud_v1",)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM lake.features",
        "SELECT * FROM lake.api_keys",
        "SELECT * FROM lake_gen.card_txn_tiles",
        "SELECT * FROM cards.transactions",
        "SELECT * FROM api.decisions",
        "SELECT * FROM lake.read_vector('fraud', 'c1')",
        "SELECT lake.define_feature('x_count', 'card_txn', 'count')",
        "SELECT lake.create_api_key('me', '{admin}')",
        "SELECT lake.land_events('card_txn', '[]')",
        "INSERT INTO cards.transactions (event_id) VALUES ('x')",
        "CREATE TEMP TABLE t (i int)",
        "CREATE TABLE public.x (i int)",
        "CREATE TABLE api.x (i int)",
        "CREATE FUNCTION api.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "ALTER TABLE cards.transactions ADD COLUMN x int",
        "DROP TABLE lake.decisions",
    ],
)
def test_the_service_reaches_nothing_else(service: psycopg.Connection, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        service.execute(statement)


def test_the_analyst_reads_the_contract_and_writes_nothing(
    analyst: psycopg.Connection, conn: psycopg.Connection
) -> None:
    land_txn(conn, "e1", "c1", "m1", 5)
    assert analyst.execute(
        "SELECT (v).features->>'card_txn_count' FROM api.read_vector('fraud', 'c1') v"
    ).fetchone() == ("1",)
    assert analyst.execute("SELECT count(*) FROM api.feature_freshness").fetchone()[0] > 0  # type: ignore[index]
    assert analyst.execute("SELECT count(*) FROM api.ingest_lag_over('1 hour')").fetchone() == (2,)  # events sources
    assert analyst.execute("SELECT count(*) FROM api.decisions").fetchone() == (0,)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        analyst.execute("CREATE TEMP TABLE t (i int)")
    analyst.execute("SET default_transaction_read_only = off")  # it can, but it holds no write privilege
    for statement in (
        "SELECT api.log_decisions('[]')",
        "SELECT * FROM api.api_key('x')",
        "SELECT api.land_events('card_txn', '[]')",
        "SELECT secret_sha256 FROM lake.api_keys",
        "DELETE FROM lake.decisions",
        "CREATE TEMP TABLE t (i int)",
        "CREATE TABLE api.x ()",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute(statement)


def test_a_feature_set_defined_later_is_readable_by_both(
    conn: psycopg.Connection, service: psycopg.Connection, analyst: psycopg.Connection
) -> None:
    conn.execute("SELECT lake.define_feature_set('slim', 1, ARRAY['card_txn_count'])")
    for role in (service, analyst):
        assert role.execute("SELECT card_txn_count FROM api.read_slim_v1('c9')").fetchone() == (0,)
    assert ("function", "api.read_slim_v1(text,timestamp with time zone,jsonb)") in reach(conn, "contextlake_service")
