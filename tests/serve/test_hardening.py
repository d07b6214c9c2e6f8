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


def exchange(base_url: str, head: str) -> tuple[str, float]:
    """Send a request head (and none of the body it announces); the status line, and how long it took."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(base_url)
    t0 = time.monotonic()
    with socket.create_connection((url.hostname, url.port), timeout=5) as s:
        s.sendall(head.encode())
        status = s.recv(4096).decode(errors="replace").split("\r\n", 1)[0]
    return status, time.monotonic() - t0


def test_the_key_is_checked_before_the_body_is_read(client: httpx.Client) -> None:
    head = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
    status, took = exchange(str(client.base_url), head)  # no key, and the 2 MB never sent: answered at once
    assert status.startswith("HTTP/1.1 401") and took < 2


def test_bodies_over_the_routes_limit_are_413_declared_or_streamed(dsn: str) -> None:
    key = new_key(dsn, "score", "ingest")
    settings = Settings(database_url=dsn, ingest_body_bytes=50_000, request_body_bytes=2_000)
    with serving(settings, key) as c:
        head = (
            f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
        )
        status, took = exchange(str(c.base_url), head)
        assert status.startswith("HTTP/1.1 413") and took < 2
        big = json.dumps({"model": "fraud", "entity": "c1", "request": {"note": "x" * 3000}})
        r = c.post("/v1/score", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "2,000" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
            yield b'{"source": "card_txn", "events": ['
            for i in range(400):  # about 80 KB
                yield (json.dumps(event(f"s{i}")) + ",").encode()
            yield json.dumps(event("last")).encode() + b"]}"

        r = c.post("/v1/events", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        small = c.post("/v1/events", json={"source": "card_txn", "events": [event("fits")]})
        assert small.status_code == 200 and small.json()["landed"] == 1


def test_smaller_holes_are_closed(client: httpx.Client, conn: psycopg.Connection) -> None:
    decide = {"model": "fraud", "entity": "c1", "event": {"event_id": {"a": 1}, "merchant_id": "m1", "amount": 5,
              "currency": "EUR", "country": "FR", "channel": "pos"}}  # fmt: skip
    r = client.post("/v1/decide", json=decide)
    assert r.status_code == 422 and "event_id (the event id) must be a string or a number" in r.text
    for as_of in (1764460800, "1764460800"):
        r = client.post("/v1/score", json={"model": "fraud", "entity": "c1", "as_of": as_of})
        assert r.status_code == 422 and "ISO 8601" in r.text, r.text
    r = client.get("/v1/features/fraud/c1", params={"as_of": "1764460800"})
    assert r.status_code == 422 and "ISO 8601" in r.text
    r = client.post(
        "/v1/events", json={"source": "card_txn", "events": [event("old", event_time="0001-01-01T00:00:00Z")]}
    )
    assert r.status_code == 207 and "before 1970-01-01" in r.json()["rejected"][0]["reason"]
    assert conn.execute("SELECT count(*) FROM cards.transactions").fetchone() == (0,)


def test_a_rule_holding_the_generators_quote_still_generates(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT lake.define_feature_set('quoted', 1, ARRAY['card_txn_count'])")
        conn.execute(
            "SELECT lake.define_rule('quoted', 1, 'odd_note', $r$(request->>'note') = '$f$ and $f1$'$r$, 'review', 'x')"
        )
    flags = conn.execute("""SELECT rules FROM api.read_quoted_v1('c1', now(), '{"note": "$f$ and $f1$"}')""").fetchone()
    assert flags == ([True],)


def test_spilled_decisions_are_readable_by_the_service_alone(dsn: str, conn: psycopg.Connection, tmp_path: Any) -> None:
    registry.register_model(conn, "fraud", constant(19, 0.2), "fraud", status="active")
    conn.execute("REVOKE EXECUTE ON FUNCTION api.log_decisions(jsonb) FROM contextlake_service")
    spill = tmp_path / "spill"
    settings = Settings(database_url=dsn, log_interval=0.01, log_shutdown_seconds=0.2, spill_dir=spill)
    with serving(settings, new_key(dsn, "score")) as c:
        assert c.post("/v1/score", json={"model": "fraud", "entity": "c1"}).status_code == 200
    files = list(spill.iterdir())
    assert files and all(f.stat().st_mode & 0o077 == 0 for f in files), [oct(f.stat().st_mode) for f in files]
    assert spill.stat().st_mode & 0o077 == 0
