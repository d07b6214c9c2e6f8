"""The HTTP service over a real lake: health, vectors, freshness, and the database going away."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from app.lake.cluster import free_port
from app.settings import Settings
from tests.cards import land_txn
from tests.service import new_key, serving, wait_ready


@pytest.fixture
def client(dsn: str) -> Iterator[httpx.Client]:
    with serving(Settings(database_url=dsn), new_key(dsn, "score")) as c:
        wait_ready(c)
        yield c


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["models"] == "none"
    assert client.get("/docs").status_code == 200
    assert "/v1/features/{feature_set}/{entity}" in client.get("/openapi.json").json()["paths"]


def test_vector_over_http_matches_the_lake(client: httpx.Client, conn: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    for i in range(6):
        land_txn(conn, f"e{i}", "c1", f"m{i}", 10 + i, now - timedelta(seconds=5 * i))
    body = client.get("/v1/features/fraud/c1").json()
    assert body["feature_set"] == "fraud" and body["version"] == 1 and body["entity"] == "c1"
    assert body["features"]["card_txn_count"] == 6 and body["features"]["card_merchants_5m"] == 6
    assert body["rules"]["card_testing"] is True
    assert 0 <= body["ages"]["card_txn_count"] < 60
    as_of = datetime.fromisoformat(body["as_of"])
    lake = conn.execute("SELECT (v).features FROM lake.read_vector('fraud', 'c1', %s) v", (as_of,)).fetchone()
    assert lake is not None and lake[0] == body["features"]
    past = client.get("/v1/features/fraud/c1", params={"as_of": (now - timedelta(seconds=12)).isoformat()}).json()
    assert past["features"]["card_txn_count"] == 3  # the events 15, 20 and 25 s old


def test_unseen_entity_is_cold_start_not_an_error(client: httpx.Client) -> None:
    r = client.get("/v1/features/fraud/never-seen")
    assert r.status_code == 200 and r.json()["features"]["card_txn_count"] == 0


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/v1/features/nope/c1", {}, 404, 'feature set "nope" is not defined'),
        ("/v1/features/fraud/c1", {"version": 9}, 404, 'feature set "fraud" version 9 is not defined'),
        ("/v1/features/fraud/c1", {"as_of": "yesterday-ish"}, 422, "as_of"),
        ("/v1/features/fraud/c1", {"as_of": "2026-11-20T12:00:00"}, 422, "needs a time zone"),
        ("/v1/features/fraud/c1", {"version": 0}, 422, "version"),
    ],
)
def test_bad_requests(client: httpx.Client, path: str, params: dict[str, object], status: int, message: str) -> None:
    r = client.get(path, params=params)
    assert r.status_code == status and message in str(r.json()["detail"])


def test_freshness_endpoint(client: httpx.Client, conn: psycopg.Connection) -> None:
    land_txn(conn, "e1", "c1", "m1", 5, datetime.now(UTC) - timedelta(seconds=3))
    body = client.get("/v1/freshness").json()
    txn = [f for f in body["features"] if f["source"] == "card_txn"]
    assert txn and all(f["newest_event_id"] == "e1" and f["absorbed"] for f in txn)
    assert [lag["events"] for lag in body["ingest_lag"] if lag["source"] == "card_txn"] == [1]


def test_database_unreachable_is_503_with_retry_after() -> None:
    settings = Settings(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/lake", pool_timeout=0.5)
    # A key cannot be checked while the lake is away: that too is 503, not 401.
    with serving(settings, "clk_0123456789ab_" + "0" * 64, ready=False) as c:
        assert c.get("/healthz").status_code == 200
        for path in ("/readyz", "/v1/features/fraud/c1"):
            r = c.get(path)
            assert r.status_code == 503 and r.headers["Retry-After"] == "1" and "database unavailable" in r.text
