"""Training/serving parity, shown by a replay: events and chargebacks land one by one in time order
while /v1/score scores each event just before it lands; the training set exported afterwards holds,
for every scored event, the vector and score the service returned live. A leaky definition (one that
sees the event itself or later events) breaks that equality, and the check says which feature."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import psycopg
import pyarrow.parquet as pq
import pytest

from app.lake import registry
from app.settings import Settings
from app.train.export import TrainingSet, export
from examples.cards.generator import CHARGEBACK_COLUMNS, TRANSACTION_COLUMNS, Params, generate
from examples.cards.sql import query as cards_query
from tests.cards import INSERT
from tests.lake_copy import lake_copy
from tests.onnx_models import logistic
from tests.service import new_key, serving

START = datetime(2026, 9, 1, tzinfo=UTC)
PARAMS = Params(seed=21, cards=30, merchants=60, start=START, days=9, fraud_share=0.3)

LEAKY = Path(__file__).with_name("leaky_features.sql")  # fraud v2: v1 plus two broken definitions
LEAKY_FEATURES = {"leaky_lifetime_count", "leaky_includes_event"}


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(b, datetime):
        return datetime.fromisoformat(a) == b
    if isinstance(b, float):
        return math.isclose(float(a), b, rel_tol=1e-12, abs_tol=1e-9)
    return bool(a == b)


def mismatches(served: dict[str, dict[str, Any]], exported: list[dict[str, Any]]) -> set[str]:
    """Features whose exported value differs from the live one, over every event scored live."""
    bad = set()
    rows = {r["event_id"]: r for r in exported}
    for event_id, features in served.items():
        row = rows[event_id]
        for name, value in features.items():
            if not same(value["value"], row[name]):
                bad.add(name)
    return bad


def replay(dsn: str, models: list[str]) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, list[float]]]:
    """Land the generated period event by event; score every transaction with each model just before it
    lands, reading as of a microsecond before its time (what the training export reads)."""
    g = generate(PARAMS)
    txs = [g.transaction_row(t) for t in g.transactions()]
    cbs = [g.chargeback_row(c) for c in g.chargebacks()]
    timeline = sorted([(r[-1], 1, r) for r in txs] + [(r[-1], 0, r) for r in cbs], key=lambda x: (x[0], x[1]))
    served: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in models}
    scores: dict[str, list[float]] = {m: [] for m in models}
    insert_tx = INSERT  # the generator's rows are in the same column order
    insert_cb = "INSERT INTO cards.chargebacks ({}) VALUES ({})".format(
        ", ".join(CHARGEBACK_COLUMNS), ", ".join(["%s"] * len(CHARGEBACK_COLUMNS))
    )
    with (
        psycopg.connect(dsn, autocommit=True) as conn,
        serving(Settings(database_url=dsn), new_key(dsn, "score")) as http,
    ):
        conn.cursor().executemany(cards_query("land_profile"), list(g.profiles()))
        for when, is_tx, row in timeline:
            if is_tx:
                event = dict(zip(TRANSACTION_COLUMNS, row, strict=True))
                request = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in event.items()}
                request["amount"] = float(event["amount"])  # type: ignore[arg-type]
                for m in models:
                    body = http.post(
                        "/v1/score",
                        json={
                            "model": m,
                            "entity": event["card_id"],
                            "request": request,
                            "as_of": (when - timedelta(microseconds=1)).isoformat(),  # type: ignore[operator]
                        },
                    )
                    assert body.status_code == 200, body.text
                    served[m][str(event["event_id"])] = body.json()["features"]
                    scores[m].append(body.json()["score"])
                conn.execute(insert_tx, row)
            else:
                conn.execute(insert_cb, row)
    return served, scores


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory, lake_template: Any) -> Iterator[tuple[Any, ...]]:
    """One replay for the module (it takes a few seconds), into a copy of the migrated template."""
    with lake_copy(lake_template, "lake_parity") as dsn:
        yield replay_and_export(dsn, tmp_path_factory)


def replay_and_export(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    onnx: dict[str, bytes] = {}
    inputs: dict[str, list[str]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(LEAKY.read_text().encode())
        for model, version in (("fraud", 1), ("fraud_leaky", 2)):
            features = [
                r[0]
                for r in conn.execute(
                    "SELECT feature FROM lake.model_inputs('fraud', %s) WHERE usable", (version,)
                ).fetchall()
            ]
            weights = [0.05 * ((i % 5) - 2) for i in range(len(features))]
            onnx[model] = logistic(weights, -1.0)
            inputs[model] = features
            registry.register_model(
                conn, model, onnx[model], "fraud", feature_set_version=version, features=features, status="active"
            )
    served, scores = replay(dsn, ["fraud", "fraud_leaky"])
    out = tmp_path_factory.mktemp("parity")
    end = START + timedelta(days=PARAMS.days)
    exported = {}
    for version in (1, 2):
        path = Path(out) / f"v{version}.parquet"
        export(dsn, TrainingSet("fraud", version, "card_fraud", START, end, end), path)
        exported[version] = pq.read_table(path).to_pylist()
    return served, scores, exported, onnx, inputs


def test_exported_rows_equal_what_score_served_live(replayed: Any) -> None:
    served, scores, exported, onnx, inputs = replayed
    live = served["fraud"]
    rows = exported[1]
    assert len(live) == len(rows) > 300
    assert sum(r["label"] for r in rows) > 0
    assert mismatches(live, rows) == set()
    # Same values, so the same score: the model on the exported rows gives what the service returned.
    x = np.array([[np.nan if r[f] is None else r[f] for f in inputs["fraud"]] for r in rows], dtype=np.float32)
    session = ort.InferenceSession(onnx["fraud"], providers=["CPUExecutionProvider"])
    offline = session.run(["probabilities"], {"x": x})[0][:, 1]
    by_event = dict(zip((r["event_id"] for r in rows), offline, strict=True))
    online = dict(zip(live, scores["fraud"], strict=True))
    assert max(abs(online[e] - float(by_event[e])) for e in online) < 1e-6
    # The replay exercised the velocity features: some events were scored inside a burst.
    assert max(r["card_txn_count_60s"] for r in rows) >= 4


def test_a_leaky_definition_fails_the_parity_check(replayed: Any) -> None:
    served, scores, exported, _, _ = replayed
    live = served["fraud_leaky"]
    bad = mismatches(live, exported[2])
    # Exactly the two broken features differ; every honest one still matches.
    assert bad == LEAKY_FEATURES
    online = dict(zip(live, scores["fraud_leaky"], strict=True))
    assert len(online) == len(exported[2])
