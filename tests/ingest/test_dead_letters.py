"""Dead letters of change data capture: in the default mode a change the lake refuses is kept in
lake.cdc_dead_letters and the post answers 200 naming it (so Debezium goes on capturing), a redelivery
counts an attempt, and `contextlake cdc rejects | replay | discard` list, apply after a fix and settle
them, with the features maintained as for any landed change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from app.settings import Settings
from tests.cli_run import contextlake
from tests.debezium_events import auth_row, payload, with_schema
from tests.service import new_key, serving

NOW = datetime.now(UTC).replace(microsecond=0)
TS = int(NOW.timestamp() * 1000)


@pytest.fixture
def client(dsn: str) -> Iterator[httpx.Client]:
    with serving(Settings(database_url=dsn), new_key(dsn, "ingest")) as c:
        yield c


def change(i: int, lsn: int, **columns: Any) -> dict[str, Any]:
    return with_schema(payload("c", lsn, TS, after=auth_row(i, "c1", "2.00", NOW) | columns))


def letters(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, upstream_table, lsn, op, attempts, resolution, event, reason FROM lake.cdc_dead_letters ORDER BY id"
    ).fetchall()


def count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT card_txn_count FROM api.read_fraud_v1('c1')").fetchone()[0]  # type: ignore[index]


def test_a_refused_change_is_kept_and_the_post_answers_200(client: httpx.Client, conn: psycopg.Connection) -> None:
    good, pigeon, nul = change(1, 100), change(2, 108, channel="pigeon"), change(3, 116, merchant_id="m\u0000")
    unreadable = {
        "schema": None,
        "payload": {"op": "c", "source": {"schema": "payments", "table": "authorizations", "lsn": 2**70}},
    }
    r = client.post("/v1/cdc/debezium", json=[good, pigeon, nul, unreadable])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["landed"] == 1 and body["dead_lettered"] == 3
    assert [x["index"] for x in body["rejected"]] == [1, 2, 3]
    assert "transactions_channel_check" in body["rejected"][0]["reason"]
    assert "NUL character" in body["rejected"][1]["reason"]
    kept = letters(conn)
    assert [x["dead_letter"] for x in body["rejected"]] == [k[0] for k in kept]
    assert [(k[1], k[2], k[3], k[4], k[5]) for k in kept] == [
        ("payments.authorizations", 108, "c", 1, None),
        ("payments.authorizations", 116, "c", 1, None),
        ("payments.authorizations", None, "c", 1, None),  # a position out of range is not kept as one
    ]
    # Each event is kept whole, as posted: the NUL too.
    assert [json.loads(k[6]) for k in kept] == [pigeon, nul, unreadable]
    assert conn.execute("SELECT event_id FROM cards.transactions").fetchall() == [("a1",)]
    metrics = client.get("/metrics").text
    assert "contextlake_cdc_dead_letters_total 3.0" in metrics
    open_view = conn.execute("SELECT upstream_table, open FROM api.cdc_dead_letters_open").fetchall()
    assert open_view == [("payments.authorizations", 3)]


def test_a_redelivered_refusal_counts_an_attempt_not_a_row(client: httpx.Client, conn: psycopg.Connection) -> None:
    good, bad = change(1, 100), change(2, 108, channel="pigeon")
    first = client.post("/v1/cdc/debezium", json=[good, bad]).json()
    again = client.post("/v1/cdc/debezium", json=[good, bad, bad]).json()  # redelivered, and twice in one post
    assert again["landed"] == 0 and again["duplicate"] == 1
    ids = {x["dead_letter"] for x in again["rejected"]}
    assert ids == {first["rejected"][0]["dead_letter"]}
    (kept,) = letters(conn)
    assert kept[4] == 2  # one attempt per post that carried it
    assert count(conn) == 1


def test_refuse_mode_answers_422_and_keeps_nothing(dsn: str, conn: psycopg.Connection) -> None:
    with serving(Settings(database_url=dsn, cdc_rejects="refuse"), new_key(dsn, "ingest")) as c:
        r = c.post("/v1/cdc/debezium", json=[change(1, 100), change(2, 108, channel="pigeon")])
    assert r.status_code == 422 and r.json()["landed"] == 1 and "dead_letter" not in r.json()["rejected"][0]
    assert letters(conn) == []


def test_replay_after_a_fix_lands_once_and_discard_settles_the_rest(
    client: httpx.Client, conn: psycopg.Connection, dsn: str
) -> None:
    pigeon, nul = change(2, 108, channel="pigeon"), change(3, 116, merchant_id="m\u0000")
    client.post("/v1/cdc/debezium", json=[change(1, 100), pigeon, nul])
    listed = contextlake("cdc", "rejects", "--json", dsn=dsn)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [json.loads(r["event"]) for r in rows] == [pigeon, nul] and all(r["resolution"] is None for r in rows)
    table = contextlake("cdc", "rejects", dsn=dsn)
    assert "transactions_channel_check" in table.stdout and "(2 rows)" in table.stdout

    # Before the fix a replay changes nothing but the attempts, and says so.
    before = contextlake("cdc", "replay", dsn=dsn)
    assert before.returncode == 1 and "0 resolved, 2 still refused" in before.stdout, before.stdout
    # The lake learns the new channel (a project migration would do this); the replay lands it.
    conn.execute("ALTER TABLE cards.transactions DROP CONSTRAINT transactions_channel_check")
    replayed = contextlake("cdc", "replay", dsn=dsn)
    assert replayed.returncode == 1 and "1 resolved, 1 still refused" in replayed.stdout, replayed.stdout
    assert conn.execute("SELECT event_id FROM cards.transactions ORDER BY 1").fetchall() == [("a1",), ("a2",)]
    assert count(conn) == 2  # the replayed change is maintained like any other
    kept = letters(conn)
    assert [(k[4], k[5]) for k in kept] == [(3, "landed"), (3, None)]
    assert "NUL character" in kept[1][7]

    # Debezium redelivers the replayed change later: it is a duplicate now, not a new dead letter.
    r = client.post("/v1/cdc/debezium", json=[pigeon]).json()
    assert r["duplicate"] == 1 and r["rejected"] == []
    assert count(conn) == 2

    # The NUL can never land: discarded, kept as such, and nothing is open any more.
    discarded = contextlake("cdc", "discard", str(kept[1][0]), "999999", dsn=dsn)
    assert discarded.returncode == 1 and "discarded 1; not open: 999999" in discarded.stdout
    assert "(0 rows)" in contextlake("cdc", "rejects", dsn=dsn).stdout
    every = json.loads(contextlake("cdc", "rejects", "--all", "--json", dsn=dsn).stdout)
    assert [r["resolution"] for r in every] == ["landed", "discarded"]
    nothing = contextlake("cdc", "replay", dsn=dsn)
    assert nothing.returncode == 0 and "replayed 0" in nothing.stdout
    verify = contextlake("verify", dsn=dsn)
    assert verify.returncode == 0, verify.stdout + verify.stderr
