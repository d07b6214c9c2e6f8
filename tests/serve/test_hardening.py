"""Bad input a client can send gets a clear 4xx and poisons nothing: NUL characters, lone surrogates,
NaN and infinities, out-of-range versions, JSON nested too deep; requests during start-up get 503, not
a wrong 404; keys never reach the access log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from app.lake import registry
from app.lake.cluster import free_port
from app.settings import Settings
from tests.onnx_models import constant
from tests.service import new_key, serving

NOW = datetime.now(UTC).isoformat()


def event(event_id: str, **values: Any) -> dict[str, Any]:
    return {"event_id": event_id, "card_id": "c1", "merchant_id": "m1", "amount": 5, "currency": "EUR",
            "country": "FR", "channel": "pos", "event_time": NOW, **values}  # fmt: skip


def raw(client: httpx.Client, path: str, text: str) -> httpx.Response:
    """A body as written (json= would refuse to encode NaN or a lone surrogate)."""
    return client.post(
        path, content=text.encode("utf-8", "surrogatepass"), headers={"Content-Type": "application/json"}
    )


@pytest.fixture
def client(dsn: str, conn: psycopg.Connection) -> Iterator[httpx.Client]:
    registry.register_model(conn, "fraud", constant(19, 0.2), "fraud", status="active")
    with serving(Settings(database_url=dsn), new_key(dsn, "score", "ingest", "admin")) as c:
        yield c


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('"merchant_id": "m\\u0000x"', "NUL character"),
        ('"device_id": "\\ud800"', "lone UTF-16 surrogate"),
        ('"x\\u0000": 1', "NUL character"),
        ('"amount": NaN', "NaN or infinite"),
        ('"amount": 1e400', "NaN or infinite"),
    ],
)
def test_a_poison_event_is_named_and_its_batch_lands(
    client: httpx.Client, conn: psycopg.Connection, bad: str, reason: str
) -> None:
    good = json.dumps(event("good"))
    poison = json.dumps(event("poison"))[:-1] + ", " + bad + "}"
    r = raw(client, "/v1/events", f'{{"source": "card_txn", "events": [{good}, {poison}]}}')
    assert r.status_code == 207, r.text
    body = r.json()
    assert body["landed"] == 1 and [x["index"] for x in body["rejected"]] == [1]
    assert reason in body["rejected"][0]["reason"]
    assert conn.execute("SELECT event_id FROM cards.transactions").fetchall() == [("good",)]


@pytest.mark.parametrize(
    ("path", "text", "where"),
    [
        ("/v1/score", '{"model": "fraud", "entity": "c1", "request": {"amount": NaN}}', "request"),
        ("/v1/score", '{"model": "fraud", "entity": "c1", "request": {"amount": 1e400}}', "request"),
        ("/v1/score", '{"model": "fraud", "entity": "c1", "request": {"amount": -Infinity}}', "request"),
        ("/v1/score", '{"model": "fraud", "entity": "c\\u0000"}', "entity"),
        ("/v1/score", '{"model": "fraud", "entity": "\\ud800"}', "entity"),
        ("/v1/decide", '{"model": "fraud", "entity": "c1", "event": {"event_id": "d1", "amount": NaN}}', "event"),
        ("/v1/decide", '{"model": "fraud", "entity": "c1", "event": {"merchant_id": "m\\u0000"}}', "event"),
    ],
)
def test_unstorable_values_in_score_and_decide_are_422_naming_the_field(
    client: httpx.Client, conn: psycopg.Connection, path: str, text: str, where: str
) -> None:
    r = raw(client, path, text)
    assert r.status_code == 422, r.text
    assert where in json.dumps(r.json()["detail"])
    assert conn.execute("SELECT count(*) FROM cards.transactions").fetchone() == (0,)


def test_a_version_out_of_range_is_422(client: httpx.Client) -> None:
    r = client.get("/v1/features/fraud/c1", params={"version": 2**31})
    assert r.status_code == 422 and "version" in r.text


def test_json_nested_too_deep_is_400_on_every_route(client: httpx.Client) -> None:
    deep = "[" * 3000 + "]" * 3000
    assert raw(client, "/v1/cdc/debezium", deep).status_code == 400
    for path in ("/v1/events", "/v1/score", "/v1/decide"):
        assert raw(client, path, deep).status_code in (400, 422), path


def test_requests_while_the_models_load_are_503_not_404(dsn: str, conn: psycopg.Connection) -> None:
    registry.register_model(conn, "fraud", constant(19, 0.2), "fraud", status="active")
    with psycopg.connect(dsn) as holder:  # the registry stays locked: the service cannot load its models yet
        holder.execute("LOCK TABLE lake.models IN ACCESS EXCLUSIVE MODE")
        with serving(Settings(database_url=dsn, statement_timeout_ms=60_000), new_key(dsn, "score"), ready=False) as c:
            r = c.post("/v1/score", json={"model": "fraud", "entity": "c1"})
            assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
            assert "not loaded yet" in r.json()["detail"]
            holder.rollback()
            deadline = time.monotonic() + 10
            while (r := c.post("/v1/score", json={"model": "fraud", "entity": "c1"})).status_code == 503:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert r.status_code == 200


def test_a_key_in_the_query_string_never_reaches_the_access_log(dsn: str, tmp_path: Any) -> None:
    key = new_key(dsn, "ingest")
    port = free_port()
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    env = {**os.environ, "DATABASE_URL": dsn}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--access-log"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/v1/cdc/debezium?api_key={key}"
        assert httpx.post(url, json=[]).status_code == 200
        assert httpx.post(url.replace(key[-6:], "xxxxxx"), json=[]).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    text = log_path.read_text()
    assert "POST /v1/cdc/debezium?api_key=[redacted]" in text, text[-2000:]
    assert key.split("_")[2] not in text and key.split("_")[2][:20] not in text
