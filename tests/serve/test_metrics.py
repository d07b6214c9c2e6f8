"""/metrics in the Prometheus text format, after real decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from app.lake import registry
from app.settings import Settings
from tests.cards import land_txn
from tests.onnx_models import constant
from tests.service import new_key, serving, wait_ready


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_after_decisions(dsn: str, conn: psycopg.Connection) -> None:
    registry.register_model(conn, "fraud", constant(19, 0.3), "fraud", status="active", review_at=0.25)
    land_txn(conn, "e1", "c1", "m1", 5, datetime.now(UTC) - timedelta(seconds=2))
    with serving(Settings(database_url=dsn), new_key(dsn, "score")) as c:
        wait_ready(c)
        for _ in range(7):
            assert c.post("/v1/score", json={"model": "fraud", "entity": "c1"}).json()["decision"] == "review"
        c.post("/v1/score", json={"model": "nope", "entity": "c1"})
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    s = samples(r.text)

    def get(name: str, **labels: str) -> float:
        return s[(name, frozenset(labels.items()))]

    assert get("contextlake_request_seconds_count", route="/v1/score", method="POST", status="200") == 7
    assert get("contextlake_request_seconds_count", route="/v1/score", method="POST", status="404") == 1
    assert get("contextlake_decisions_total", route="score", model="fraud", outcome="review") == 7
    assert get("contextlake_decision_stage_seconds_count", route="score", stage="database") == 7
    assert get("contextlake_feature_age_seconds_count", feature_set="fraud", feature="card_txn_count") == 7
    # no profile was loaded, so the batch features have no age to observe
    assert (
        "contextlake_feature_age_seconds_count",
        frozenset({("feature_set", "fraud"), ("feature", "card_credit_limit")}),
    ) not in s
    assert get("contextlake_feature_age_seconds_bucket", feature_set="fraud", feature="card_txn_count", le="1.0") == 0
    assert get("contextlake_feature_age_seconds_bucket", feature_set="fraud", feature="card_txn_count", le="30.0") == 7
    assert get("contextlake_ingest_lag_seconds", source="card_txn", quantile="0.5") >= 2
    assert get("contextlake_pool_connections", state="max") == 10
    assert get("contextlake_models_loaded", status="active") == 1
