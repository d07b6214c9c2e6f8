"""POST /v1/cdc/debezium with events written from Debezium's documented format: every op, both
converter modes, CloudEvents, batches, every type encoding, redelivery, and bad input."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from app.settings import Settings
from tests.debezium_events import (
    auth_row,
    cloudevent,
    decimal_bytes,
    heartbeat,
    message,
    payload,
    with_schema,
)
from tests.service import new_key, serving

NOW = datetime.now(UTC).replace(microsecond=0)
TS = int(NOW.timestamp() * 1000)


@pytest.fixture(autouse=True)
def updates_are_events(conn: psycopg.Connection) -> None:
    """In these tests an upstream update is an event of its own (the example mapping ignores updates)."""
    conn.execute("UPDATE lake.cdc_mappings SET on_update = 'land' WHERE upstream_table = 'payments.authorizations'")


@pytest.fixture
def client(dsn: str) -> Iterator[httpx.Client]:
    """The service refusing bad changes with a 422 (CONTEXTLAKE_CDC_REJECTS=refuse), so that the tests
    here see every refusal in the answer; tests/ingest/test_dead_letters.py covers the default mode."""
    with serving(Settings(database_url=dsn, cdc_rejects="refuse"), new_key(dsn, "ingest")) as c:
        yield c


def stream() -> list[dict[str, Any]]:
    """Upstream history of payments.authorizations in all three formats: a snapshot (several rows at one
    LSN), inserts, updates, deletes, a truncate, a logical message and heartbeats."""
    formats = [with_schema, lambda p: p, cloudevent]
    out: list[dict[str, Any]] = []
    lsn = 1000
    snapshot = [auth_row(i, f"c{i % 3}", f"{10 + i}.25", NOW - timedelta(minutes=50 - i)) for i in range(3)]
    for k, row in enumerate(snapshot):  # a snapshot reads every row at the same position
        out.append(formats[k % 3](payload("r", lsn, TS - 60_000, after=row)))
    for i in range(3, 30):
        lsn += 8
        row = auth_row(i, f"c{i % 3}", f"{i * 3}.{i % 100:02d}", NOW - timedelta(minutes=40 - i), merchant=f"m{i % 4}")
        out.append(formats[i % 3](payload("c", lsn, TS - 30_000 + i, after=row)))
        if i % 5 == 0:
            lsn += 8
            updated = dict(row, amount=decimal_bytes(Decimal("1.50"), 2))
            out.append(formats[(i + 1) % 3](payload("u", lsn, TS - 29_000 + i, before=row, after=updated)))
        if i % 7 == 0:
            lsn += 8
            out.append(formats[(i + 2) % 3](payload("d", lsn, TS - 28_000 + i, before=row)))
    lsn += 8
    out.append(with_schema(payload("t", lsn, TS - 1000)))
    out.append(message(lsn + 8, TS - 900))
    out.append(heartbeat(TS - 800, wrapped=True))
    out.append(heartbeat(TS - 700, wrapped=False))
    return out


def snapshot_of_lake(conn: psycopg.Connection) -> tuple[Any, ...]:
    rows = conn.execute(
        "SELECT event_id, card_id, merchant_id, amount, event_time FROM cards.transactions ORDER BY event_id"
    ).fetchall()
    vectors = [
        conn.execute(
            "SELECT card_txn_count, card_amount_sum, card_merchants_5m FROM api.read_fraud_v1(%s)", (c,)
        ).fetchone()
        for c in ("c0", "c1", "c2")
    ]
    return tuple(rows), tuple(vectors)


def test_every_op_in_every_format_applies_as_documented(client: httpx.Client, conn: psycopg.Connection) -> None:
    events = stream()
    r = client.post("/v1/cdc/debezium", json=events)
    assert r.status_code == 200, r.text
    body = r.json()
    creates, updates, deletes = 27, 5, 4  # i in 3..29; every 5th updated, every 7th deleted
    assert body == {"landed": 3 + creates + updates, "duplicate": 0, "ignored": deletes + 1 + 1 + 2, "rejected": []}
    # The landed rows are the upstream rows, decoded (decimal bytes, microsecond timestamps), in all formats.
    got = dict(conn.execute("SELECT event_id, amount FROM cards.transactions").fetchall())
    assert str(got["a0"]) == "10.25" and str(got["a12"]) == "36.12"
    updated = conn.execute(
        "SELECT event_id, amount::text FROM cards.transactions WHERE event_id LIKE 'a10@%'"
    ).fetchall()
    assert len(updated) == 1 and updated[0][1] == "1.50"  # an update lands its new image as a new event
    t = conn.execute("SELECT event_time FROM cards.transactions WHERE event_id = 'a5'").fetchone()
    assert t == (NOW - timedelta(minutes=35),)
    # Features equal their recomputation from the raw events.
    assert conn.execute("SELECT count(*) FROM lake.verify_state()").fetchone() == (0,)
    ledger = dict(conn.execute("SELECT op, count(*) FROM lake.cdc_applied GROUP BY op").fetchall())
    assert ledger == {"r": 3, "c": creates, "u": updates, "d": deletes, "t": 1}


def test_redelivery_in_shuffled_batches_changes_nothing(client: httpx.Client, conn: psycopg.Connection) -> None:
    events = stream()
    for k in range(0, len(events), 9):  # first delivery, in order, in batches
        assert client.post("/v1/cdc/debezium", json=events[k : k + 9]).status_code == 200
    once = snapshot_of_lake(conn)
    again = events * 2
    random.Random(11).shuffle(again)
    for k in range(0, len(again), 13):
        body = client.post("/v1/cdc/debezium", json=again[k : k + 13]).json()
        assert body["landed"] == 0 and body["rejected"] == [], body
    for e in events[:5]:  # and single events, one by one
        assert client.post("/v1/cdc/debezium", json=e).json()["landed"] == 0
    assert snapshot_of_lake(conn) == once


def test_schemaless_decimals_need_the_mappings_decode(client: httpx.Client, conn: psycopg.Connection) -> None:
    row = auth_row(1, "c9", "12.34", NOW)
    conn.execute("UPDATE lake.cdc_mappings SET decode = '{}' WHERE upstream_table = 'payments.authorizations'")
    r = client.post("/v1/cdc/debezium", json=payload("c", 10, TS, after=row))
    assert r.status_code == 422 and r.json()["rejected"][0]["index"] == 0
    assert "event_time" in r.json()["rejected"][0]["reason"]  # microseconds since 1970 are not a time to it
    with_schema_wrapper = client.post("/v1/cdc/debezium", json=with_schema(payload("c", 10, TS, after=row)))
    assert with_schema_wrapper.json()["landed"] == 1  # the schema says how to decode it
    assert conn.execute("SELECT amount FROM cards.transactions").fetchone() == (Decimal("12.34"),)


def test_each_type_encoding(client: httpx.Client, conn: psycopg.Connection) -> None:
    """VariableScaleDecimal, ZonedTimestamp, Timestamp (ms) and Date, through a mapping of chargebacks."""
    conn.execute(
        "SELECT lake.define_cdc_mapping('payments.chargebacks', 'card_chargeback', "
        """'{"id": "chargeback_id", "auth_id": "event_id", "card_id": "card_id", "reason": "reason_code",
             "amount": "amount", "reported": "reported_at"}', '{"reported": "date"}')"""
    )
    fields = [
        {"type": "string", "field": "id"},
        {"type": "string", "field": "auth_id"},
        {"type": "string", "field": "card_id"},
        {"type": "string", "field": "reason"},
        {
            "type": "struct",
            "name": "io.debezium.data.VariableScaleDecimal",
            "field": "amount",
            "fields": [{"type": "int32", "field": "scale"}, {"type": "bytes", "field": "value"}],
        },
    ]
    vsd = {"scale": 3, "value": decimal_bytes(Decimal("1234.567"), 3)}

    def cb(i: int, reported: Any, name: str | None) -> dict[str, Any]:
        row = {
            "id": f"cb{i}",
            "auth_id": f"a{i}",
            "card_id": "c1",
            "reason": "10.4",
            "amount": vsd,
            "reported": reported,
        }
        f = fields + [{"type": "int64" if name else "int32", "field": "reported", **({"name": name} if name else {})}]
        return with_schema(payload("c", 50 + i, TS, after=row, table="chargebacks"), f, "chargebacks")

    zoned = dict(cb(1, "2026-11-20T10:00:00.5Z", None))
    zoned["schema"]["fields"][1]["fields"][-1] = {
        "type": "string",
        "name": "io.debezium.time.ZonedTimestamp",
        "field": "reported",
    }
    events = [
        zoned,
        cb(2, int(datetime(2026, 11, 21, 8, tzinfo=UTC).timestamp() * 1000), "io.debezium.time.Timestamp"),
        cb(
            3, int(datetime(2026, 11, 22, 8, 30, tzinfo=UTC).timestamp() * 1_000_000), "io.debezium.time.MicroTimestamp"
        ),
        cb(4, 20413, "io.debezium.time.Date"),  # days since 1970-01-01: 2025-11-21
        payload(
            "c",
            60,
            TS,
            table="chargebacks",
            after={
                "id": "cb5",
                "auth_id": "a5",
                "card_id": "c1",
                "reason": "10.4",
                "amount": "1.00",
                "reported": 20414,
            },
        ),
    ]
    r = client.post("/v1/cdc/debezium", json=events)
    assert r.status_code == 200 and r.json()["landed"] == 5, r.text
    got = dict(conn.execute("SELECT chargeback_id, reported_at FROM cards.chargebacks").fetchall())
    assert got == {
        "cb1": datetime(2026, 11, 20, 10, 0, 0, 500000, tzinfo=UTC),
        "cb2": datetime(2026, 11, 21, 8, tzinfo=UTC),
        "cb3": datetime(2026, 11, 22, 8, 30, tzinfo=UTC),
        "cb4": datetime(2025, 11, 21, tzinfo=UTC),
        "cb5": datetime(2025, 11, 22, tzinfo=UTC),  # schemaless: the mapping's decode says date
    }
    amounts = conn.execute(
        "SELECT DISTINCT amount::text FROM cards.chargebacks WHERE chargeback_id <> 'cb5'"
    ).fetchall()
    assert amounts == [("1234.57",)]  # 1234.567 into numeric(14,2)


def test_source_commit_time_is_the_lag(client: httpx.Client, conn: psycopg.Connection) -> None:
    ts = int((datetime.now(UTC) - timedelta(seconds=5)).timestamp() * 1000)
    rows = [auth_row(i, "c1", "5.00", NOW) for i in range(3)]
    assert (
        client.post(
            "/v1/cdc/debezium", json=[with_schema(payload("c", 10 + i, ts, after=r)) for i, r in enumerate(rows)]
        ).status_code
        == 200
    )
    lag = conn.execute("SELECT changes, p50_seconds FROM lake.cdc_lag").fetchone()
    assert lag is not None and lag[0] == 3 and 5 <= lag[1] < 60


BAD = [
    ("not an object", "an event is a json object"),
    ({"payload": {"op": "c"}, "schema": {}}, "source.schema and source.table are required"),
    ({"op": "x", "source": {"schema": "payments", "table": "authorizations", "lsn": 1, "ts_ms": 1}}, "unknown op 'x'"),
    ({"before": None, "after": {}, "source": {"schema": "s", "table": "t"}}, "no op"),
    (
        payload("c", 1, TS, after={"id": "z"})
        | {"source": {"schema": "payments", "table": "authorizations", "lsn": "abc", "ts_ms": 1}},
        "source.lsn is not a number",
    ),
    (with_schema(payload("c", 2, TS, after=auth_row(90, "c1", "1.00", NOW) | {"amount": "%%%"})), "not base64"),
    (
        with_schema(payload("c", 3, TS, after=auth_row(91, "c1", "1.00", NOW)), table="other")
        | {"payload": payload("c", 3, TS, after=auth_row(91, "c1", "1.00", NOW), table="other")},
        "no CDC mapping for upstream table payments.other",
    ),
    (
        with_schema(payload("c", 4, TS, after=auth_row(92, "c1", "1.00", NOW) | {"channel": "pigeon"})),
        "transactions_channel_check",
    ),
    (
        with_schema(payload("c", 5, TS, after=auth_row(93, "c1", "1.00", NOW + timedelta(days=400)))),
        "ahead of the lake's clock",
    ),
]


def test_bad_events_get_a_4xx_naming_them_and_the_good_ones_land(
    client: httpx.Client, conn: psycopg.Connection
) -> None:
    good = [with_schema(payload("c", 100 + i, TS, after=auth_row(100 + i, "c1", "2.00", NOW))) for i in range(2)]
    r = client.post("/v1/cdc/debezium", json=[good[0], *(b for b, _ in BAD), good[1]])
    assert r.status_code == 422
    body = r.json()
    assert body["landed"] == 2
    assert [x["index"] for x in body["rejected"]] == list(range(1, 1 + len(BAD)))
    for x, (_, reason) in zip(body["rejected"], BAD, strict=True):
        assert reason in x["reason"], (x, reason)
    assert conn.execute("SELECT count(*) FROM cards.transactions").fetchone() == (2,)


def test_nan_is_named_not_a_server_error(client: httpx.Client, conn: psycopg.Connection) -> None:
    good = with_schema(payload("c", 7, TS, after=auth_row(7, "c1", "2.00", NOW)))
    raw = "[" + json.dumps(good) + ', {"op": "c", "ts_ms": NaN, "source": {}}]'
    r = client.post("/v1/cdc/debezium", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["rejected"] == [{"index": 1, "reason": "a number is NaN or infinite"}]
    assert r.json()["landed"] == 1


def test_malformed_oversized_and_unauthorized(client: httpx.Client, dsn: str) -> None:
    r = client.post("/v1/cdc/debezium", content=b'{"payload": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "malformed JSON" in r.text
    r = client.post("/v1/cdc/debezium", json=[heartbeat(TS, False)] * 10_001)
    assert r.status_code == 413
    r = httpx.post(
        f"{client.base_url}/v1/cdc/debezium",
        json=heartbeat(TS, False),
        headers={"Authorization": f"Bearer {new_key(dsn, 'score')}"},
    )
    assert r.status_code == 403
    assert client.post("/v1/cdc/debezium", json=heartbeat(TS, True)).json()["ignored"] == 1


@pytest.mark.parametrize("value", ["-0.125", "0", "99999999999.99", "-1", "127", "128", "-128", "-129"])
def test_decimal_bytes_are_signed_big_endian(value: str) -> None:
    from app.ingest.debezium import decode_value

    scale = len(value.split(".")[1]) if "." in value else 0
    encoded = decimal_bytes(Decimal(value), scale)
    assert Decimal(decode_value(encoded, "org.apache.kafka.connect.data.Decimal", {"scale": str(scale)})) == Decimal(
        value
    )


def test_updates_are_ignored_unless_the_mapping_lands_them(client: httpx.Client, conn: psycopg.Connection) -> None:
    conn.execute("UPDATE lake.cdc_mappings SET on_update = 'ignore'")
    row = auth_row(1, "c1", "3.00", NOW)
    body = client.post(
        "/v1/cdc/debezium", json=[payload("c", 1, TS, after=row), payload("u", 2, TS, before=row, after=row)]
    ).json()
    assert body["landed"] == 1 and body["ignored"] == 1
    assert conn.execute("SELECT event_id FROM cards.transactions").fetchall() == [("a1",)]


def test_a_repeat_of_a_rejected_change_in_one_batch_stays_rejected(
    client: httpx.Client, conn: psycopg.Connection
) -> None:
    bad = with_schema(payload("c", 9, TS, after=auth_row(9, "c1", "3.00", NOW) | {"channel": "pigeon"}))
    r = client.post("/v1/cdc/debezium", json=[bad, bad])
    assert r.status_code == 422 and [x["index"] for x in r.json()["rejected"]] == [0, 1]
    assert conn.execute("SELECT count(*) FROM lake.cdc_applied").fetchone() == (0,)
    again = client.post("/v1/cdc/debezium", json=[bad])  # redelivered: still refused, never recorded as applied
    assert again.status_code == 422


def test_mappings_that_could_collide_are_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="already has a CDC mapping"):
        conn.execute(
            "SELECT lake.define_cdc_mapping('shop.orders', 'card_txn', "
            """'{"id": "event_id", "card": "card_id"}')"""
        )


@pytest.mark.parametrize(
    ("encoded", "scale", "value"), [("AA==", 2, "0.00"), ("/w==", 2, "-0.01"), ("BNI=", 2, "12.34"), ("AIA=", 0, "128")]
)
def test_decimal_bytes_of_the_connect_format(encoded: str, scale: int, value: str) -> None:
    from app.ingest.debezium import decode_value

    assert decode_value(encoded, "org.apache.kafka.connect.data.Decimal", {"scale": str(scale)}) == value


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("ts_ms", 10**17, "source.ts_ms 100000000000000000 is out of range"),
        ("lsn", 2**64 + 5, "source.lsn 18446744073709551621 is out of range"),
        ("merchant_id", "m\u0000", "NUL character"),
    ],
)
def test_a_poison_change_is_named_and_the_good_one_of_its_batch_commits(
    client: httpx.Client, conn: psycopg.Connection, field: str, value: Any, reason: str
) -> None:
    good = with_schema(payload("c", 300, TS, after=auth_row(300, "c1", "2.00", NOW)))
    bad = with_schema(payload("c", 301, TS, after=auth_row(301, "c1", "3.00", NOW)))
    if field == "merchant_id":
        bad["payload"]["after"][field] = value
    else:
        bad["payload"]["source"][field] = value
    r = client.post("/v1/cdc/debezium", json=[good, bad])
    assert r.status_code == 422, r.text
    assert r.json()["landed"] == 1 and [x["index"] for x in r.json()["rejected"]] == [1]
    assert reason in r.json()["rejected"][0]["reason"]
    assert conn.execute("SELECT event_id FROM cards.transactions").fetchall() == [("a300",)]


@pytest.mark.parametrize("batches", ["one", "separate", "shuffled"])
def test_a_key_created_again_upstream_lands_as_a_new_event(
    client: httpx.Client, conn: psycopg.Connection, batches: str
) -> None:
    first = auth_row(9, "c1", "10.00", NOW - timedelta(minutes=3))
    again = dict(auth_row(9, "c1", "25.00", NOW - timedelta(minutes=1)))  # the same id, new values
    changes = [
        with_schema(payload("c", 500, TS, after=first)),
        with_schema(payload("d", 510, TS, before=first)),
        with_schema(payload("c", 520, TS, after=again)),
    ]
    if batches == "one":
        posts = [changes]
    elif batches == "separate":
        posts = [[c] for c in changes]
    else:  # the second create arrives before the first: the same two events land
        posts = [[changes[2]], [changes[1], changes[0]]]
    for post in posts:
        assert client.post("/v1/cdc/debezium", json=post).status_code == 200
    landed = conn.execute("SELECT amount FROM cards.transactions ORDER BY amount").fetchall()
    assert landed == [(Decimal("10.00"),), (Decimal("25.00"),)]
    ids = {r[0] for r in conn.execute("SELECT event_id FROM cards.transactions").fetchall()}
    assert len(ids) == 2 and {i.split("@")[0] for i in ids} == {"a9"}
    for post in posts:  # a redelivery of everything lands nothing more
        client.post("/v1/cdc/debezium", json=post)
    assert conn.execute("SELECT count(*) FROM cards.transactions").fetchone() == (2,)
    assert conn.execute("SELECT card_txn_count FROM api.read_fraud_v1('c1')").fetchone() == (2,)
