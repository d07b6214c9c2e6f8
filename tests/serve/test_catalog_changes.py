"""The catalog changes under a running service: a committed feature set version is sealed (adding a rule
to it is refused with the way forward), and everything that does change under the service (a read
function generated again for a new feature of its source, a new version with its rules, a model moved to
it, an engine reinstall regenerating every read) costs no request an error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from app.lake import registry
from app.lake.migrations import migrate
from app.settings import Settings
from examples.cards.sql import cards_project
from tests.cards import land_txn
from tests.onnx_models import constant
from tests.service import new_key, serving

FRAUD_V1_INPUTS = 19


@pytest.fixture
def client(dsn: str, conn: psycopg.Connection) -> Iterator[httpx.Client]:
    registry.register_model(conn, "fraud", constant(FRAUD_V1_INPUTS, 0.2), "fraud", status="active")
    land_txn(conn, "e1", "c1", "m1", 30)
    with serving(Settings(database_url=dsn), new_key(dsn, "score")) as c:
        yield c


def test_a_rule_for_a_committed_version_is_refused_with_the_way_forward(
    client: httpx.Client, conn: psycopg.Connection
) -> None:
    assert client.post("/v1/score", json={"model": "fraud", "entity": "c1"}).status_code == 200
    with pytest.raises(
        psycopg.errors.ObjectNotInPrerequisiteState, match='feature set "fraud" version 1 is sealed'
    ) as e:
        conn.execute("SELECT lake.define_rule('fraud', 1, 'late', 'f.card_txn_count > 100', 'review', 'late rule')")
    assert e.value.diag.message_hint is not None and "define version 2" in e.value.diag.message_hint
    r = client.post("/v1/score", json={"model": "fraud", "entity": "c1"})
    assert r.status_code == 200 and "late" not in [h["rule"] for h in r.json()["rule_hits"]]
    # In the transaction that defines a version, its rules are part of the definition.
    with conn.transaction():
        conn.execute("SELECT lake.define_feature_set('fraud', 2, ARRAY['card_txn_count', 'card_txn_count_60s'])")
        conn.execute("SELECT lake.define_rule('fraud', 2, 'any', 'f.card_txn_count >= 1', 'review', 'seen before')")
    r = client.get("/v1/features/fraud/c1", params={"version": 2})
    assert r.status_code == 200 and r.json()["rules"] == {"any": True}, r.text


def test_catalog_changes_under_load_answer_no_request_with_an_error(
    dsn: str, client: httpx.Client, conn: psycopg.Connection
) -> None:
    statuses: list[int] = []
    bodies: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=client.base_url, headers=client.headers, timeout=10) as c:
            while not stop.is_set():
                r = c.post("/v1/score", json={"model": "fraud", "entity": "c1", "request": {"amount": 10}})
                statuses.append(r.status_code)
                if r.status_code != 200:
                    bodies.append(r.text)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()

    def served_a_while() -> None:
        seen = len(statuses)
        deadline = time.monotonic() + 10
        while len(statuses) < seen + 20 and time.monotonic() < deadline:
            time.sleep(0.01)

    try:
        served_a_while()
        # A new feature of the source: its state is rebuilt and fraud v1's read generated again.
        conn.execute("SELECT lake.define_feature('card_txn_count_10m', 'card_txn', 'count', p_window => '10 minutes')")
        served_a_while()
        # A new version with a rule, and the model moved to it.
        with conn.transaction():
            conn.execute(
                "SELECT lake.define_feature_set('fraud', 2, ARRAY['card_txn_count', 'card_txn_count_10m', "
                "'card_amount_sum_24h'])"
            )
            conn.execute("SELECT lake.define_rule('fraud', 2, 'busy', 'f.card_txn_count_10m >= 1', 'review', 'busy')")
        registry.register_model(conn, "fraud", constant(3, 0.3), "fraud", feature_set_version=2, status="active")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = client.post("/v1/score", json={"model": "fraud", "entity": "c1"})
            if r.status_code == 200 and r.json()["model"]["version"] == 2:
                break
            time.sleep(0.02)
        assert r.json()["model"]["version"] == 2 and [h["rule"] for h in r.json()["rule_hits"]] == ["busy"]
        served_a_while()
        # An engine reinstall: every read function is generated again.
        conn.execute("UPDATE lake.installed_code SET sha256 = 'an earlier release'")
        assert ("feature set", "fraud v2") in migrate(dsn, cards_project()).regenerated
        served_a_while()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(statuses) > 80
    assert set(statuses) == {200}, bodies[:3]
