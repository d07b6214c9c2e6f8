"""/v1/decide: the event lands and is decided in one transaction, serialized per entity."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from app.lake import registry
from app.settings import Settings
from tests.cards import land_txn
from tests.onnx_models import constant
from tests.service import new_key, serving, wait_ready

LIMIT = 500  # the cold-start credit limit of the fraud set: over_limit_24h declines past it


@pytest.fixture
def client(dsn: str, conn: psycopg.Connection) -> Iterator[httpx.Client]:
    k = conn.execute("SELECT count(*) FROM lake.model_inputs('fraud', 1) WHERE usable").fetchone()[0]  # type: ignore[index]
    registry.register_model(conn, "fraud", constant(k, 0.01), "fraud", status="active")
    with serving(Settings(database_url=dsn, pool_max=20), new_key(dsn, "score", "ingest")) as c:
        wait_ready(c)
        yield c


def event(event_id: str, amount: float, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "merchant_id": "m1",
        "amount": amount,
        "currency": "EUR",
        "country": "FR",
        "channel": "ecom",
        **extra,
    }


def test_decide_lands_the_event_and_logs_the_decision_in_one_transaction(
    client: httpx.Client, conn: psycopg.Connection
) -> None:
    r = client.post("/v1/decide", json={"model": "fraud", "entity": "card-1", "event": event("t1", 120)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "approve" and body["event_id"] == "t1" and body["source"] == "card_txn"
    assert body["features"]["card_txn_count"]["value"] == 0  # the vector excludes the event being decided
    landed = conn.execute("SELECT card_id, amount FROM cards.transactions WHERE event_id = 't1'").fetchone()
    assert landed == ("card-1", 120)
    logged = conn.execute(
        "SELECT decision_id::text, route, source, event_id, outcome, request->>'amount' FROM lake.decisions"
    ).fetchall()
    assert logged == [(body["decision_id"], "decide", "card_txn", "t1", "approve", "120")]
    second = client.post("/v1/decide", json={"model": "fraud", "entity": "card-1", "event": event("t2", 10)}).json()
    assert second["features"]["card_txn_count"]["value"] == 1  # ... and sees every earlier one


def test_retry_with_the_same_event_id_returns_the_first_decision_and_lands_nothing(
    client: httpx.Client, conn: psycopg.Connection
) -> None:
    payload = {"model": "fraud", "entity": "card-2", "event": event("t1", 50)}
    first = client.post("/v1/decide", json=payload).json()
    again = client.post("/v1/decide", json=payload).json()
    assert again["replayed"] is True and again["decision_id"] == first["decision_id"]
    assert again["decision"] == first["decision"] and again["score"] == first["score"]
    assert again["features"] == first["features"]
    assert conn.execute("SELECT count(*) FROM cards.transactions WHERE card_id = 'card-2'").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM lake.decisions").fetchone() == (1,)
    assert conn.execute("SELECT card_txn_count FROM api.read_fraud_v1('card-2')").fetchone() == (1,)


def test_an_event_without_an_id_gets_one(client: httpx.Client, conn: psycopg.Connection) -> None:
    ev = event("x", 5)
    del ev["event_id"]
    body = client.post("/v1/decide", json={"model": "fraud", "entity": "card-3", "event": ev}).json()
    assert len(body["event_id"]) == 36
    assert conn.execute("SELECT event_id FROM cards.transactions").fetchone() == (body["event_id"],)


@pytest.mark.parametrize(
    ("ev", "status", "message"),
    [
        (event("b1", 5, colour="red"), 422, "unknown column(s) colour for source card_txn"),
        (event("b2", 5, channel="pigeon"), 422, "transactions_channel_check"),
        (event("b3", "five"), 422, "invalid input syntax for type numeric"),
        (event("b4", -5), 422, "transactions_amount_check"),
        (event("b5", 5, event_time="2026-01-01T00:00:00Z"), 422, "a decided event happens at the decision time"),
        (event("b6", 5, card_id="someone-else"), 422, "the request is for entity card-4"),
        (event("b7", 5, landed_at="2026-01-01T00:00:00Z"), 422, "landed_at is set by the lake"),
        ({"event_id": "b8", "amount": 5}, 422, "merchant_id"),
    ],
)
def test_a_bad_event_is_refused_and_nothing_lands(
    client: httpx.Client, conn: psycopg.Connection, ev: dict[str, Any], status: int, message: str
) -> None:
    r = client.post("/v1/decide", json={"model": "fraud", "entity": "card-4", "event": ev})
    assert r.status_code == status and message in r.json()["detail"], r.text
    assert conn.execute("SELECT count(*) FROM cards.transactions").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM lake.decisions").fetchone() == (0,)


def test_unknown_source_and_already_landed_event(client: httpx.Client, conn: psycopg.Connection) -> None:
    r = client.post("/v1/decide", json={"model": "fraud", "entity": "c", "source": "nope", "event": event("u", 1)})
    assert r.status_code == 422 and "unknown events source nope" in r.json()["detail"]
    land_txn(conn, "dup", "card-5", "m1", 5)
    r = client.post("/v1/decide", json={"model": "fraud", "entity": "card-5", "event": event("dup", 5)})
    assert r.status_code == 409 and "already landed without a decision" in r.json()["detail"]
    assert conn.execute("SELECT count(*) FROM lake.decisions").fetchone() == (0,)


def race(base_url: str, headers: dict[str, str], card: str, n: int, amount: float) -> list[str]:
    """n concurrent authorizations of one card, released together."""
    barrier = threading.Barrier(n)
    results: list[str] = [""] * n

    def one(i: int) -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as c:
            barrier.wait()
            r = c.post("/v1/decide", json={"model": "fraud", "entity": card, "event": event(f"{card}-{i}", amount)})
            results[i] = r.json()["decision"] if r.status_code == 200 else f"HTTP {r.status_code}: {r.text}"

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_authorizations_never_both_pass_a_limit_only_one_fits_under(
    client: httpx.Client, conn: psycopg.Connection
) -> None:
    n, amount = 12, 120.0
    k = int(LIMIT // amount)  # 4 fit under the limit, the 5th would exceed it
    headers = dict(client.headers)
    for attempt in range(15):
        card = f"race-{attempt}"
        results = race(str(client.base_url), headers, card, n, amount)
        assert sorted(results) == ["approve"] * k + ["decline"] * (n - k), results
        landed = conn.execute("SELECT count(*) FROM cards.transactions WHERE card_id = %s", (card,)).fetchone()
        approved = conn.execute(
            "SELECT count(*), sum((request->>'amount')::numeric) FROM lake.decisions "
            "WHERE entity = %s AND outcome = 'approve'",
            (card,),
        ).fetchone()
        assert landed == (n,) and approved == (k, k * amount)
    # Every decision saw the ones before it: the i-th decision of a card read i-1 earlier events.
    seen = conn.execute(
        "SELECT entity, array_agg((features->>'card_txn_count')::int ORDER BY decided_at) FROM lake.decisions "
        "GROUP BY entity"
    ).fetchall()
    assert len(seen) == 15 and all(counts == list(range(n)) for _, counts in seen), seen


def test_an_event_id_decided_for_another_entity_is_a_conflict(client: httpx.Client, conn: psycopg.Connection) -> None:
    assert (
        client.post("/v1/decide", json={"model": "fraud", "entity": "card-6", "event": event("same", 5)}).status_code
        == 200
    )
    r = client.post("/v1/decide", json={"model": "fraud", "entity": "card-7", "event": event("same", 5)})
    assert r.status_code == 409 and "decided for another entity" in r.json()["detail"]
    assert conn.execute("SELECT card_id FROM cards.transactions").fetchall() == [("card-6",)]


def test_a_busy_entity_is_refused_with_429_and_starves_nothing(dsn: str, conn: psycopg.Connection) -> None:
    k = conn.execute("SELECT count(*) FROM lake.model_inputs('fraud', 1) WHERE usable").fetchone()[0]  # type: ignore[index]
    registry.register_model(conn, "fraud", constant(k, 0.01), "fraud", status="active")
    settings = Settings(database_url=dsn, pool_max=3, decide_queue_max=1, decide_lock_timeout_ms=300)
    with serving(settings, new_key(dsn, "score", "ingest")) as c, psycopg.connect(dsn) as holder:
        # Another transaction holds the card's decision lock (as a long decision would).
        holder.execute("SELECT pg_advisory_xact_lock(hashtextextended('card:card-8', 0))")
        results: list[int] = [0] * 6

        def one(i: int) -> None:
            with httpx.Client(base_url=c.base_url, headers=c.headers, timeout=30) as h:
                body = {"model": "fraud", "entity": "card-8", "event": event(f"busy-{i}", 5)}
                results[i] = h.post("/v1/decide", json=body).status_code

        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        # Meanwhile the other routes still get connections.
        assert c.post("/v1/score", json={"model": "fraud", "entity": "card-1"}).status_code == 200
        for t in threads:
            t.join()
        holder.rollback()
        assert set(results) == {429}, results  # the lock timeout or the per-entity queue, never a hang
        r = c.post("/v1/decide", json={"model": "fraud", "entity": "card-8", "event": event("busy-after", 5)})
        assert r.status_code == 200
    assert conn.execute("SELECT count(*) FROM cards.transactions WHERE card_id = 'card-8'").fetchone() == (1,)
