"""/v1/score through the real app over HTTP: the decision, the vector it was made on, parity with
onnxruntime and with the lake's own read, errors, shadow scoring, the decision log and hot swap."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import psycopg
import pytest

from app.lake import registry
from app.settings import Settings
from tests.cards import land_txn
from tests.onnx_models import constant, logistic
from tests.service import new_key, serving, wait_ready


def inputs(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT feature FROM lake.model_inputs('fraud', 1) WHERE usable").fetchall()]


def velocity_model(conn: psycopg.Connection) -> tuple[bytes, list[str]]:
    """Score rises with the 60 s count and the amount over the 30-day average."""
    features = inputs(conn)
    weights = [0.0] * len(features)
    weights[features.index("card_txn_count_60s")] = 0.8
    weights[features.index("amount_to_avg_30d")] = 0.3
    return logistic(weights, -4.0), features


@pytest.fixture
def model(conn: psycopg.Connection) -> tuple[bytes, list[str]]:
    onnx, features = velocity_model(conn)
    registry.register_model(conn, "fraud", onnx, "fraud", status="active", review_at=0.5, decline_at=0.9)
    return onnx, features


@pytest.fixture
def client(dsn: str, model: object) -> Iterator[httpx.Client]:
    with serving(Settings(database_url=dsn), new_key(dsn, "score")) as c:
        wait_ready(c)
        yield c


def onnx_score(onnx: bytes, features: list[str], values: dict[str, Any]) -> float:
    x = np.array([[np.nan if values[f] is None else float(values[f]) for f in features]], dtype=np.float32)
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    return float(session.run(["probabilities"], {"x": x})[0][0, 1])


def test_score_returns_decision_vector_ages_snapshot_and_timing(
    client: httpx.Client, conn: psycopg.Connection, model: tuple[bytes, list[str]]
) -> None:
    now = datetime.now(UTC)
    for i in range(4):
        land_txn(conn, f"e{i}", "c1", "m1", 20, now - timedelta(seconds=10 * i))
    r = client.post("/v1/score", json={"model": "fraud", "entity": "c1", "request": {"amount": 90, "country": "FR"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": "fraud", "version": 1} and body["shadow"] is None
    assert body["feature_set"] == {"name": "fraud", "version": 1} and body["entity"] == "c1"
    assert set(body["timing_ms"]) == {"database", "model", "total"}
    assert body["timing_ms"]["total"] >= body["timing_ms"]["database"] + body["timing_ms"]["model"]
    assert body["snapshot"].count(":") == 2  # xmin:xmax:xip-list
    features = body["features"]
    assert features["card_txn_count_60s"]["value"] == 4 and features["amount_to_avg_30d"]["value"] == 4.5, body
    assert 0 <= features["card_txn_count"]["age_seconds"] < 60
    assert features["card_credit_limit"]["age_seconds"] is None  # no profile loaded: cold start, no age

    # Parity: onnxruntime on the returned vector gives the returned score ...
    onnx, names = model
    values = {f: v["value"] for f, v in features.items()}
    assert body["score"] == pytest.approx(onnx_score(onnx, names, values), abs=1e-7)
    expected = 1 / (1 + np.exp(-(-4.0 + 0.8 * 4 + 0.3 * 4.5)))
    assert body["score"] == pytest.approx(expected, abs=1e-6)
    assert body["decision"] == "review" and any("review threshold" in r for r in body["reasons"]), body
    # ... and the vector is the lake's own read at the returned as_of.
    lake = conn.execute(
        "SELECT (v).features FROM lake.read_vector('fraud', 'c1', %s, %s) v",
        (datetime.fromisoformat(body["as_of"]), '{"amount": 90, "country": "FR"}'),
    ).fetchone()
    assert lake is not None and normalized(lake[0]) == normalized(values), (lake, values)


def normalized(vector: dict[str, Any]) -> dict[str, Any]:
    """Times as datetimes: PostgreSQL's JSON drops trailing zeros of the microseconds, Python's keeps them."""
    return {
        f: datetime.fromisoformat(v) if f in ("card_first_seen", "card_last_seen") and v else v
        for f, v in vector.items()
    }


def test_rules_decide_with_their_reasons(client: httpx.Client, conn: psycopg.Connection) -> None:
    land_txn(conn, "e1", "c2", "m1", 450, datetime.now(UTC) - timedelta(hours=2))
    body = client.post("/v1/score", json={"feature_set": "fraud", "entity": "c2", "request": {"amount": 100}}).json()
    assert body["decision"] == "decline"
    assert body["rule_hits"] == [
        {
            "rule": "over_limit_24h",
            "action": "decline",
            "reason": "amount of the last 24 hours plus this one exceeds the credit limit",
        }
    ]
    small = client.post("/v1/score", json={"feature_set": "fraud", "entity": "c2", "request": {"amount": 10}}).json()
    assert small["rule_hits"] == [] and small["decision"] == "approve"


def test_new_entity_is_scored_from_cold_start_values(client: httpx.Client) -> None:
    r = client.post("/v1/score", json={"model": "fraud", "entity": "never-seen", "request": {"amount": 5}})
    assert r.status_code == 200
    body = r.json()
    assert body["features"]["card_txn_count"] == {"value": 0, "age_seconds": None}
    assert body["features"]["card_credit_limit"]["value"] == 500 and body["decision"] == "approve"


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"model": "fraud"}, 422, "entity"),
        ({"model": "fraud", "entity": ""}, 422, "entity"),
        ({"model": "fraud", "entity": 12}, 422, "entity"),
        ({"model": "fraud", "entity": "c1", "request": [1, 2]}, 422, "request"),
        ({"model": "fraud", "entity": "c1", "as_of": "2026-11-20T12:00:00"}, 422, "as_of"),
        ({"model": "fraud", "entity": "c1", "colour": "red"}, 422, "colour"),
        ({"entity": "c1"}, 422, "name a model or a feature_set"),
        ({"model": "nope", "entity": "c1"}, 404, "no active model named 'nope'"),
        ({"feature_set": "other", "entity": "c1"}, 404, "no active model consumes feature set 'other'"),
        ({"model": "fraud", "feature_set": "other", "entity": "c1"}, 422, "consumes feature set fraud"),
        ({"model": "fraud", "entity": "c1", "request": {"amount": "lots"}}, 422, "invalid input syntax"),
    ],
)
def test_bad_requests(client: httpx.Client, payload: dict[str, Any], status: int, message: str) -> None:
    r = client.post("/v1/score", json=payload)
    assert r.status_code == status, r.text
    assert message in str(r.json()["detail"])


def test_malformed_json_is_422(client: httpx.Client) -> None:
    r = client.post("/v1/score", content=b'{"model": "fraud", "entity": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "json" in r.text.lower()


def wait_logged(conn: psycopg.Connection, ids: list[str], seconds: float = 10) -> list[tuple[Any, ...]]:
    """The logged decisions, once every one of these ids is among them (the writer is asynchronous)."""
    deadline = time.monotonic() + seconds
    while True:
        rows = conn.execute(
            "SELECT decision_id::text, route, entity, model, model_version, score, shadow_model, shadow_version, "
            "shadow_score, outcome, features, snapshot FROM lake.decisions ORDER BY decided_at"
        ).fetchall()
        if set(ids) <= {r[0] for r in rows} or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


def test_every_score_is_logged_with_its_vector(client: httpx.Client, conn: psycopg.Connection) -> None:
    land_txn(conn, "e1", "c3", "m1", 30, datetime.now(UTC))
    bodies = [client.post("/v1/score", json={"model": "fraud", "entity": f"c{i % 4}"}).json() for i in range(12)]
    rows = wait_logged(conn, [b["decision_id"] for b in bodies])
    assert len(rows) == 12
    logged = {r[0]: r for r in rows}
    for b in bodies:
        row = logged[b["decision_id"]]
        assert row[1:6] == ("score", b["entity"], "fraud", 1, b["score"])
        assert row[9] == b["decision"] and row[11] == b["snapshot"]
        assert row[10] == {f: v["value"] for f, v in b["features"].items()}


def test_shadow_model_is_scored_and_logged_but_never_decides(
    client: httpx.Client, conn: psycopg.Connection, model: tuple[bytes, list[str]]
) -> None:
    registry.register_model(conn, "fraud", constant(len(model[1]), 0.97), "fraud", status="shadow")
    deadline = time.monotonic() + 10
    while True:
        body = client.post("/v1/score", json={"model": "fraud", "entity": "c9"}).json()
        if body["shadow"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert body["shadow"]["version"] == 2 and body["shadow"]["score"] == pytest.approx(0.97, abs=1e-6)
    assert body["model"]["version"] == 1 and body["decision"] == "approve"  # the shadow's 0.97 decides nothing
    rows = wait_logged(conn, [body["decision_id"]])
    row = next(r for r in rows if r[0] == body["decision_id"])
    assert row[6:9] == ("fraud", 2, pytest.approx(0.97, abs=1e-6)) and row[9] == "approve"


def test_hot_swap_under_load_fails_no_request(
    client: httpx.Client, conn: psycopg.Connection, model: tuple[bytes, list[str]]
) -> None:
    k = len(model[1])
    statuses: list[int] = []
    versions: list[int] = []
    per_thread: list[list[int]] = [[] for _ in range(4)]
    stop = threading.Event()

    def hammer(mine: list[int]) -> None:
        with httpx.Client(base_url=client.base_url, headers=client.headers, timeout=10) as c:
            while not stop.is_set():
                r = c.post("/v1/score", json={"model": "fraud", "entity": "c1"})
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions.append(r.json()["model"]["version"])
                    mine.append(versions[-1])

    threads = [threading.Thread(target=hammer, args=(mine,)) for mine in per_thread]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 10
        while len(versions) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        for v in range(2, 6):
            registry.register_model(conn, "fraud", constant(k, 0.01 * v), "fraud", status="active")
            deadline = time.monotonic() + 10
            while (not versions or versions[-1] != v) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert versions[-1] == v, f"version {v} not served within 10 s"
            time.sleep(0.2)  # serve each version under load for a while
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(statuses) > 40 and set(statuses) == {200}
    assert set(versions) == {1, 2, 3, 4, 5}
    # Each client's requests run one after another: once one was answered by a version, none of its
    # later ones is answered by an older version (each swap is atomic and final).
    assert all(seq == sorted(seq) for seq in per_thread)


def test_a_version_that_fails_to_load_leaves_the_previous_one_serving(
    client: httpx.Client, conn: psycopg.Connection
) -> None:
    # Registered behind the CLI's back (SQL only), so the ONNX was never checked.
    conn.execute("SELECT lake.register_model('fraud', 2, '\\x0102'::bytea, 'fraud', 1, p_status => 'active')")
    deadline = time.monotonic() + 10
    while "fraud v2" not in (ready := client.get("/readyz").json())["refused_models"]:
        assert time.monotonic() < deadline, ready
        time.sleep(0.05)
    r = client.post("/v1/score", json={"model": "fraud", "entity": "c1"})
    assert r.status_code == 200 and r.json()["model"]["version"] == 1
    assert "not a loadable ONNX model" in ready["refused_models"]["fraud v2"]
