"""The lake goes away under a running service and comes back: 503 with Retry-After meanwhile, no
partial decision logged, and the service serves again without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from app.lake import registry
from app.lake.cluster import Cluster, throwaway_cluster
from app.lake.migrations import migrate
from app.settings import Settings
from examples.cards.sql import cards_project
from tests.conftest import TEST_TMP
from tests.onnx_models import constant
from tests.service import serving

EVENT = {"merchant_id": "m1", "amount": 10, "currency": "EUR", "country": "FR", "channel": "pos"}


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A cluster of this test's own, since the test stops it."""
    with throwaway_cluster("contextlake-recovery-", TEST_TMP) as cluster:
        yield cluster


def test_the_service_answers_503_while_the_lake_is_away_and_recovers(own_cluster: Cluster) -> None:
    dsn = own_cluster.dsn()
    migrate(dsn, cards_project())
    with psycopg.connect(dsn) as conn:
        registry.register_model(conn, "fraud", constant(19, 0.1), "fraud", status="active")
        key = registry.create_api_key(conn, "t", ["score", "ingest"])[1]
    with serving(Settings(database_url=dsn, pool_timeout=0.5), key) as c:
        ok = [c.post("/v1/score", json={"model": "fraud", "entity": "c1"}).json()["decision_id"]]
        own_cluster.stop()
        for path, body in (
            ("/v1/score", {"model": "fraud", "entity": "c1"}),
            ("/v1/decide", {"model": "fraud", "entity": "c1", "event": dict(EVENT, event_id="during")}),
        ):
            r = c.post(path, json=body)
            assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
        assert c.get("/readyz").status_code == 503
        own_cluster.start()
        deadline = time.monotonic() + 20
        while (r := c.post("/v1/score", json={"model": "fraud", "entity": "c1"})).status_code != 200:
            assert r.status_code == 503 and time.monotonic() < deadline, r.text
            time.sleep(0.1)
        ok.append(r.json()["decision_id"])
        r = c.post("/v1/decide", json={"model": "fraud", "entity": "c1", "event": dict(EVENT, event_id="after")})
        assert r.status_code == 200 and r.json()["event_id"] == "after"
        ok.append(r.json()["decision_id"])
        assert c.get("/readyz").status_code == 200
    with psycopg.connect(dsn) as conn:  # the service has shut down cleanly: its log is complete
        logged = {row[0] for row in conn.execute("SELECT decision_id::text FROM lake.decisions").fetchall()}
        landed = conn.execute("SELECT event_id FROM cards.transactions").fetchall()
    assert logged == set(ok) and landed == [("after",)]
