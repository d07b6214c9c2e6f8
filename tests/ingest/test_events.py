"""POST /v1/events: batches land in one statement and keep the features exact; bad events are named
and lose nothing; retries land nothing twice."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from app.settings import Settings
from tests.service import new_key, serving

NOW = datetime.now(UTC)


def event(i: int, card: str = "c1", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "card_id": card,
        "merchant_id": f"m{i % 7}",
        "amount": round(1 + i * 1.37 % 90, 2),
        "currency": "EUR",
        "country": "FR",
        "channel": "ecom",
        "event_time": (NOW - timedelta(seconds=37 * i)).isoformat(),
        **extra,
    }


@pytest.fixture
def client(dsn: str) -> Iterator[httpx.Client]:
    with serving(Settings(database_url=dsn), new_key(dsn, "ingest")) as c:
        yield c


def post(client: httpx.Client, events: list[Any], **extra: Any) -> httpx.Response:
    return client.post("/v1/events", json={"source": "card_txn", "events": events, **extra})


def recomputed(conn: psycopg.Connection, card: str) -> tuple[Any, ...]:
    """Lifetime count and sum and the 1-hour count, from scratch over the raw events."""
    row = conn.execute(
        "SELECT count(*), coalesce(sum(amount), 0), count(*) FILTER (WHERE event_time > now() - interval '1 hour') "
        "FROM cards.transactions WHERE card_id = %s",
        (card,),
    ).fetchone()
    assert row is not None
    return row


def maintained(conn: psycopg.Connection, card: str) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT card_txn_count, card_amount_sum, card_txn_count_1h FROM api.read_fraud_v1(%s)", (card,)
    ).fetchone()
    assert row is not None
    return row


def test_a_batch_lands_and_the_features_equal_a_recomputation(client: httpx.Client, conn: psycopg.Connection) -> None:
    events = [event(i, card=f"c{i % 5}") for i in range(500)]
    r = post(client, events)
    assert r.status_code == 200 and r.json() == {"landed": 500, "duplicates": 0, "rejected": []}
    for c in range(5):
        assert maintained(conn, f"c{c}") == recomputed(conn, f"c{c}")
    assert conn.execute("SELECT count(*) FROM lake.verify_state()").fetchone() == (0,)
    one = client.post("/v1/events", json={"source": "card_txn", "event": event(900)})
    assert one.status_code == 200 and one.json()["landed"] == 1


def test_redelivery_in_shuffled_batches_changes_nothing(client: httpx.Client, conn: psycopg.Connection) -> None:
    events = [event(i, card=f"c{i % 3}") for i in range(300)]
    assert post(client, events).json()["landed"] == 300
    before = [maintained(conn, f"c{c}") for c in range(3)]
    again = events + events[:50]
    random.Random(4).shuffle(again)
    for k in range(0, len(again), 70):
        body = post(client, again[k : k + 70]).json()
        assert body["landed"] == 0 and body["duplicates"] == len(again[k : k + 70])
    assert [maintained(conn, f"c{c}") for c in range(3)] == before
    assert conn.execute("SELECT count(*) FROM cards.transactions").fetchone() == (300,)


BAD = [
    (event(101, amount="lots"), 'invalid input syntax for type numeric: "lots"'),
    (event(102, amount=-3), "transactions_amount_check"),
    (event(103, amount=1e13), "numeric field overflow"),
    (event(104, channel="carrier pigeon"), "transactions_channel_check"),
    (event(105, colour="red"), "unknown column(s) colour"),
    (event(106, event_time="2999-01-01T00:00:00Z"), "ahead of the lake's clock"),
    (event(107, event_time="2026-11-24T07:00:00"), "needs a time zone"),
    (event(108, event_time="soon"), "needs a time zone"),
    (event(117, event_time="2026-11-24"), "needs a time zone"),
    (event(109, event_time=12345), "event_time (the source's event time"),
    (event(110, landed_at="2026-11-24T07:00:00Z"), "landed_at is set by the lake"),
    ({k: v for k, v in event(111).items() if k != "event_id"}, "event_id (the event id) is required"),
    ({k: v for k, v in event(112).items() if k != "card_id"}, "card_id (the entity) is required"),
    ({k: v for k, v in event(113).items() if k != "merchant_id"}, 'null value in column "merchant_id"'),
    ("not an object", "an event is a json object"),
    (event(114, currency="EURO"), "value too long for type character(3)"),
    (event(115, amount="NaN"), "amount: not a finite number"),
    (event(116, amount="-Infinity"), "amount: not a finite number"),
]


def test_bad_events_are_named_and_the_good_ones_land(client: httpx.Client, conn: psycopg.Connection) -> None:
    good = [event(i) for i in range(5)]
    batch = good[:2] + [b for b, _ in BAD] + good[2:]
    r = post(client, batch)
    assert r.status_code == 207
    body = r.json()
    assert body["landed"] == 5 and body["duplicates"] == 0
    assert [x["index"] for x in body["rejected"]] == list(range(2, 2 + len(BAD)))
    for x, (_, reason) in zip(body["rejected"], BAD, strict=True):
        assert reason in x["reason"], (x, reason)
    assert maintained(conn, "c1") == recomputed(conn, "c1") and recomputed(conn, "c1")[0] == 5
    # The rejected ones can be fixed and sent again: they land then.
    fixed = post(client, [event(101), event(105)]).json()
    assert fixed["landed"] == 2


def test_an_atomic_batch_with_a_bad_event_lands_nothing(client: httpx.Client, conn: psycopg.Connection) -> None:
    r = post(client, [event(1), event(2, amount="x"), event(3)], atomic=True)
    assert r.status_code == 422 and [x["index"] for x in r.json()["rejected"]] == [1]
    assert conn.execute("SELECT count(*) FROM cards.transactions").fetchone() == (0,)
    assert post(client, [event(1), event(3)], atomic=True).json()["landed"] == 2


def test_nan_and_infinite_numbers_are_rejected_by_index(client: httpx.Client, conn: psycopg.Connection) -> None:
    first = json.dumps(event(1))
    nan = json.dumps(event(2)).replace('"amount": ', '"amount": NaN, "x": ')
    inf = json.dumps(event(3, amount=1)).replace('"amount": 1', '"amount": Infinity')
    raw = f'{{"source": "card_txn", "events": [{first}, {nan}, {inf}]}}'
    r = client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 207, r.text
    assert [(x["index"], x["reason"]) for x in r.json()["rejected"]] == [
        (1, "a number is NaN or infinite"),
        (2, "a number is NaN or infinite"),
    ]
    assert conn.execute("SELECT event_id FROM cards.transactions").fetchall() == [("e1",)]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"source": "nope", "events": [event(1)]}, 422, "unknown events source nope"),
        ({"source": "card_profile", "events": [event(1)]}, 422, "unknown events source card_profile"),
        ({"source": "card_txn"}, 422, "give either event (one) or events (a batch)"),
        ({"source": "card_txn", "events": []}, 422, "events is empty"),
        ({"source": "card_txn", "events": [event(1)] * 10_001}, 422, "at most 10000"),
        ({"source": "card_txn", "events": {"a": 1}}, 422, "list"),
        ({"events": [event(1)]}, 422, "source"),
    ],
)
def test_bad_requests(client: httpx.Client, body: dict[str, Any], status: int, message: str) -> None:
    r = client.post("/v1/events", json=body)
    assert r.status_code == status and message in r.text, r.text


def test_malformed_json_and_scope(client: httpx.Client, dsn: str) -> None:
    r = client.post(
        "/v1/events", content=b'{"source": "card_txn", "events": [', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "json" in r.text.lower()
    score_only = new_key(dsn, "score")
    r = httpx.post(
        f"{client.base_url}/v1/events",
        json={"source": "card_txn", "event": event(1)},
        headers={"Authorization": f"Bearer {score_only}"},
    )
    assert r.status_code == 403


def test_a_column_left_out_takes_its_default_whatever_else_is_in_the_batch(
    client: httpx.Client, conn: psycopg.Connection
) -> None:
    conn.execute("ALTER TABLE cards.transactions ALTER COLUMN device_id SET DEFAULT 'unknown-device'")
    without = {k: v for k, v in event(1).items() if k != "device_id"}
    r = post(client, [without, event(2, device_id="dev-9")])
    assert r.json()["landed"] == 2
    got = dict(conn.execute("SELECT event_id, device_id FROM cards.transactions").fetchall())
    assert got == {"e1": "unknown-device", "e2": "dev-9"}


def test_events_older_than_the_compaction_horizon_are_refused(client: httpx.Client, conn: psycopg.Connection) -> None:
    conn.execute("UPDATE lake.sources SET compacted_before = now() - interval '1 day' WHERE name = 'card_txn'")
    old = event(1, event_time=(NOW - timedelta(days=3)).isoformat())
    r = post(client, [old, event(2)])
    assert r.status_code == 207 and "compaction horizon" in r.json()["rejected"][0]["reason"]
