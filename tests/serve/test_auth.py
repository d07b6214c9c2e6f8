"""API keys and scopes over HTTP, and the database roles the service and analysts connect as."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from fastapi import HTTPException

from app.lake import registry
from app.settings import Settings
from tests.onnx_models import constant
from tests.service import new_key, serving, wait_ready

SCORE = {"model": "fraud", "entity": "c1"}
DECIDE = {
    "model": "fraud",
    "entity": "c1",
    "event": {"merchant_id": "m", "amount": 1, "currency": "EUR", "country": "FR", "channel": "pos"},
}


@pytest.fixture
def base(dsn: str, conn: psycopg.Connection) -> Iterator[str]:
    registry.register_model(conn, "fraud", constant(19, 0.1), "fraud", status="active")
    with serving(Settings(database_url=dsn), new_key(dsn, "admin")) as c:
        wait_ready(c)
        yield str(c.base_url)


def call(base: str, key: str | None, method: str, path: str, json: object = None) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.request(method, base + path, headers=headers, json=json, timeout=10)


def test_no_or_bad_key_is_401(base: str) -> None:
    r = call(base, None, "POST", "/v1/score", SCORE)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer" and "API key is required" in r.text
    assert "malformed" in call(base, "secret", "POST", "/v1/score", SCORE).text
    assert call(base, "clk_000000000000_nope", "POST", "/v1/score", SCORE).status_code == 401
    unknown = call(base, "clk_000000000000_" + "0" * 64, "POST", "/v1/score", SCORE)
    assert unknown.status_code == 401 and "unknown API key" in unknown.text
    # health, readiness, metrics and the docs need no key
    for path in ("/healthz", "/readyz", "/metrics", "/docs"):
        assert call(base, None, "GET", path).status_code == 200


def test_a_key_in_the_query_string_for_senders_without_headers(base: str, dsn: str) -> None:
    key = new_key(dsn, "ingest")
    r = httpx.post(f"{base}/v1/cdc/debezium", params={"api_key": key}, json={"ts_ms": 1}, timeout=10)
    assert r.status_code == 200 and r.json()["ignored"] == 1
    assert httpx.post(f"{base}/v1/cdc/debezium", params={"api_key": "clk_x"}, json={}, timeout=10).status_code == 401


def test_a_wrong_secret_for_a_real_key_id_is_401(base: str, dsn: str) -> None:
    key = new_key(dsn, "score")
    forged = key[: key.rindex("_") + 1] + "0" * 64
    r = call(base, forged, "POST", "/v1/score", SCORE)
    assert r.status_code == 401 and "unknown API key" in r.text


@pytest.mark.parametrize(
    ("scopes", "method", "path", "body", "status"),
    [
        (("score",), "POST", "/v1/score", SCORE, 200),
        (("score",), "GET", "/v1/features/fraud/c1", None, 200),
        (("score",), "GET", "/v1/freshness", None, 200),
        (("score",), "POST", "/v1/decide", DECIDE, 403),
        (("ingest",), "POST", "/v1/score", SCORE, 403),
        (("ingest",), "POST", "/v1/decide", DECIDE, 403),
        (("score", "ingest"), "POST", "/v1/decide", DECIDE, 200),
        (("score",), "GET", "/v1/models", None, 403),
        (("admin",), "GET", "/v1/models", None, 200),
        (("admin",), "POST", "/v1/decide", DECIDE, 200),
    ],
)
def test_scopes(
    base: str, dsn: str, scopes: tuple[str, ...], method: str, path: str, body: object, status: int
) -> None:
    r = call(base, new_key(dsn, *scopes), method, path, body)
    assert r.status_code == status, r.text
    if status == 403:
        assert "lacks the scope" in r.json()["detail"]


def test_a_revoked_key_is_refused_at_once(base: str, dsn: str, conn: psycopg.Connection) -> None:
    key = new_key(dsn, "score")
    assert call(base, key, "POST", "/v1/score", SCORE).status_code == 200  # now cached by the service
    key_id = key.split("_")[1]
    assert registry.revoke_api_key(conn, key_id) is True
    deadline = time.monotonic() + 5  # the notification, not the cache lifetime (60 s), ends it
    while (r := call(base, key, "POST", "/v1/score", SCORE)).status_code == 200:
        assert time.monotonic() < deadline, "revoked key still accepted"
        time.sleep(0.02)
    assert r.status_code == 401 and f"API key {key_id} is revoked" in r.text
    stored = conn.execute("SELECT secret_sha256 FROM lake.api_keys WHERE key_id = %s", (key_id,)).fetchone()
    assert stored is not None and key.split("_")[2] not in stored[0]  # only the hash is kept


def test_the_key_cache_evicts_least_recently_used_and_forgets_unknown_ids_soon(
    dsn: str, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import secrets

    from psycopg.conninfo import make_conninfo
    from psycopg_pool import AsyncConnectionPool

    from app.serve import auth

    monkeypatch.setattr(auth, "CACHE_MAX", 20)
    monkeypatch.setattr(auth, "UNKNOWN_SECONDS", 0.3)
    key = new_key(dsn, "score")
    key_id = key.split("_")[1]
    made_up = f"clk_{'ab' * 6}_{'cd' * 32}"

    async def run() -> None:
        pool = AsyncConnectionPool(make_conninfo(dsn, user="contextlake_service"), min_size=1, max_size=2, open=False)
        await pool.open()
        try:
            keys = auth.ApiKeys(pool, cache_seconds=60)
            assert await keys.scopes(key) == frozenset({"score"})
            for i in range(100):  # a flood of made-up ids, while the real key keeps being used
                with pytest.raises(HTTPException):
                    await keys.scopes(f"clk_{secrets.token_hex(6)}_{secrets.token_hex(32)}")
                if i % 5 == 0:
                    await keys.scopes(key)
            assert len(keys._cache) == 20 and key_id in keys._cache  # recently used: never evicted
            with pytest.raises(HTTPException, match="unknown API key"):
                await keys.scopes(made_up)
            registry.import_api_key(conn, "late", ["score"], made_up)  # issued after its id was looked up
            with pytest.raises(HTTPException, match="unknown API key"):
                await keys.scopes(made_up)  # still remembered as unknown...
            await asyncio.sleep(0.35)
            assert await keys.scopes(made_up) == frozenset({"score"})  # ...for a short time only
        finally:
            await pool.close()

    asyncio.run(run())
