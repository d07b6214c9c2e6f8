"""The demo's model: trained on the lake's own point-in-time vectors of the generated history,
exported to ONNX, checked against scikit-learn, and registered as the active fraud model.

Each training row is the fraud vector of one landed transaction read as of just before it (the
generated read function at ``event_time - 1 microsecond``, the transaction as the request payload),
labelled by whether a chargeback names it. Nothing is downloaded.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import onnxruntime as ort
import psycopg
from psycopg.types.json import Jsonb
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline

from app import registry
from app.queries import query, read_vector_sql


@dataclass(frozen=True)
class TrainedModel:
    onnx: bytes
    features: list[str]
    rows: int
    frauds: int
    roc_auc: float
    pr_auc: float
    max_onnx_diff: float
    seconds: float


def training_rows(
    conn: psycopg.Connection, features: list[str], sample: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Point-in-time vectors of a sample of transactions (every fraud, and ordinary ones up to `sample`)."""
    found = conn.execute(query("read_function"), {"feature_set": "fraud", "version": 1}).fetchone()
    assert found is not None
    fn, set_features = found
    read = read_vector_sql(fn)
    rng = random.Random(seed)
    labelled = conn.execute(query("labelled_transactions")).fetchall()
    frauds = [t for t in labelled if t[4]]
    ordinary = [t for t in labelled if not t[4]]
    chosen = frauds + rng.sample(ordinary, k=min(len(ordinary), max(sample - len(frauds), 0)))
    index = [3 + set_features.index(f) for f in features]
    x, y = [], []
    for card, event_time, amount, country, fraud in chosen:
        request = Jsonb({"amount": float(amount), "country": country})
        row = conn.execute(read, (card, event_time - timedelta(microseconds=1), request)).fetchone()
        assert row is not None
        x.append([np.nan if row[i] is None else float(row[i]) for i in index])
        y.append(1 if fraud else 0)
    return np.array(x, dtype=np.float32), np.array(y)


def train(conn: psycopg.Connection, seed: int, sample: int = 4000) -> TrainedModel:
    t0 = time.perf_counter()
    features = [r[0] for r in conn.execute(query("model_inputs"), {"feature_set": "fraud", "version": 1}).fetchall()]
    x, y = training_rows(conn, features, sample, seed)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    cut = int(len(y) * 0.7)
    # Missing values (a card's first transaction has no average yet) are imputed inside the model, so the
    # ONNX graph carries the imputation too.
    model = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        GradientBoostingClassifier(n_estimators=80, max_depth=3, learning_rate=0.1, random_state=seed),
    )
    model.fit(x[:cut], y[:cut])
    p_test = model.predict_proba(x[cut:])[:, 1]
    onx = to_onnx(model, x[:1], options={"zipmap": False})
    onnx_bytes = onx.SerializeToString()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (p_onnx,) = session.run(["probabilities"], {session.get_inputs()[0].name: x})
    diff = float(np.max(np.abs(np.asarray(p_onnx)[:, 1] - model.predict_proba(x)[:, 1])))
    if diff > 1e-5:
        raise RuntimeError(f"the ONNX export differs from scikit-learn by {diff:.2e} (limit 1e-5)")
    return TrainedModel(
        onnx=onnx_bytes,
        features=features,
        rows=len(y),
        frauds=int(y.sum()),
        roc_auc=float(roc_auc_score(y[cut:], p_test)),
        pr_auc=float(average_precision_score(y[cut:], p_test)),
        max_onnx_diff=diff,
        seconds=time.perf_counter() - t0,
    )


def train_and_register(conn: psycopg.Connection, seed: int) -> dict[str, Any]:
    trained = train(conn, seed)
    print(
        f"trained the fraud model on {trained.rows:,} point-in-time vectors ({trained.frauds} fraudulent) "
        f"in {trained.seconds:.1f} s: held-out ROC-AUC {trained.roc_auc:.3f}, PR-AUC {trained.pr_auc:.3f}; "
        f"ONNX matches scikit-learn within {trained.max_onnx_diff:.1e}"
    )
    out = registry.register_model(
        conn,
        "fraud",
        trained.onnx,
        "fraud",
        features=trained.features,
        review_at=0.5,
        decline_at=0.9,
        status="active",
    )
    print(f"registered model fraud v{out['version']} (active), sha256 {out['sha256'][:12]}")
    return out
