"""contextlake train: a gradient-boosted model (LightGBM) on an exported training set, split by time.

The earlier events train, the later ones test. On the test period it reports ROC-AUC, PR-AUC and the
recall at a fixed false-positive rate. The model is exported to ONNX (onnxmltools), and the ONNX
scores must match LightGBM's on every test row within 1e-5, or nothing is registered. Missing
feature values (a card's first transaction has no average yet) stay NaN: LightGBM learns where they
go, and the ONNX tree ensemble routes them the same way.

The registered thresholds come from the test period: ``review_at`` is the score whose false-positive
rate is the chosen one, ``decline_at`` the score at a tenth of it.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.lake import registry
from app.train.export import described, matrix

AGREEMENT = 1e-5
INPUT_NAME = "x"


@dataclass(frozen=True)
class Evaluation:
    rows: int
    positives: int
    roc_auc: float
    pr_auc: float
    recall_at_fpr: float
    fpr: float


@dataclass(frozen=True)
class Trained:
    onnx: bytes
    features: list[str]
    feature_set: str
    feature_set_version: int
    split: datetime
    train_rows: int
    train_positives: int
    test: Evaluation
    review_at: float
    decline_at: float
    max_onnx_diff: float
    seconds: float


def evaluate(y: np.ndarray, score: np.ndarray, fpr: float) -> Evaluation:
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    both = len(set(y.tolist())) == 2
    if both:
        f, t, _ = roc_curve(y, score)
        recall = float(np.interp(fpr, f, t))
    return Evaluation(
        rows=len(y),
        positives=int(y.sum()),
        roc_auc=float(roc_auc_score(y, score)) if both else float("nan"),
        pr_auc=float(average_precision_score(y, score)) if both else float("nan"),
        recall_at_fpr=recall if both else float("nan"),
        fpr=fpr,
    )


def threshold_at_fpr(y: np.ndarray, score: np.ndarray, fpr: float) -> float:
    """The lowest score that flags at most `fpr` of the negatives."""
    negatives = np.sort(score[y == 0])
    if len(negatives) == 0:
        return 0.5
    k = int(np.floor(fpr * len(negatives)))  # negatives allowed above the threshold
    if k >= len(negatives):
        return 0.0
    return min(1.0, float(np.nextafter(negatives[-k - 1], np.float32(np.inf))))


def _split_thresholds(booster: Any) -> dict[tuple[int, float], set[float]]:
    """Every numerical split threshold of the booster (doubles), by tree and float32 rounding."""
    found: dict[tuple[int, float], set[float]] = {}
    for tree_id, tree in enumerate(booster.dump_model()["tree_info"]):
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_index" not in node:
                continue
            if node.get("decision_type") == "<=":
                t = float(node["threshold"])
                found.setdefault((tree_id, float(np.float32(t))), set()).add(t)
            stack += [node["left_child"], node["right_child"]]
    return found


def _exact_thresholds(onx: Any, booster: Any) -> None:
    """Make every float32 split of the ONNX trees decide like LightGBM's double one.

    LightGBM compares a float32 input x (widened) with a double threshold t; the converter stores t
    rounded to the nearest float32, which sends an x equal to an upward-rounded t the other way. The
    largest float32 not above t decides x <= t exactly for every float32 x.
    """
    thresholds = _split_thresholds(booster)
    for node in onx.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: a for a in node.attribute}
        values = list(attrs["nodes_values"].floats)
        for i, (tree_id, mode) in enumerate(
            zip(attrs["nodes_treeids"].ints, attrs["nodes_modes"].strings, strict=True)
        ):
            if mode != b"BRANCH_LEQ":
                continue
            candidates = thresholds.get((tree_id, float(np.float32(values[i]))), set())
            below = {
                float(np.float32(t))
                if float(np.float32(t)) <= t
                else float(np.nextafter(np.float32(t), np.float32(-np.inf)))
                for t in candidates
            }
            if len(below) == 1:
                values[i] = below.pop()
        del attrs["nodes_values"].floats[:]
        attrs["nodes_values"].floats.extend(values)


def to_onnx(model: Any, width: int) -> bytes:
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    onx = convert_lightgbm(model, initial_types=[(INPUT_NAME, FloatTensorType([None, width]))], zipmap=False)
    _exact_thresholds(onx, model.booster_)
    for out in onx.graph.output:  # the converter declares the label output as [1]; it is [batch]
        if out.name == "label":
            dims = out.type.tensor_type.shape.dim
            del dims[:]
            dims.add().dim_param = "N"
    return bytes(onx.SerializeToString())


def onnx_scores(onnx: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    (p,) = session.run(["probabilities"], {INPUT_NAME: x})
    return np.asarray(p)[:, 1]


def load(path: Path, usable: list[str] | None = None) -> tuple[pa.Table, dict[str, Any], list[str]]:
    """The exported table, its description, and the model inputs: numeric and boolean features (or `usable`)."""
    meta = described(path)
    table = pq.read_table(path)
    numeric = [
        f.name
        for f in table.schema
        if f.name not in ("event_id", "entity", "event_time", "as_of", "label")
        and (pa.types.is_floating(f.type) or pa.types.is_boolean(f.type))
    ]
    features = [f for f in numeric if usable is None or f in usable]
    if not features:
        raise ValueError(f"{path}: no numeric features to train on")
    return table, meta, features


def train(
    path: Path,
    usable: list[str] | None = None,
    test_from: datetime | None = None,
    fpr: float = 0.01,
    seed: int = 1,
) -> Trained:
    t0 = time.perf_counter()
    if not 0 < fpr < 1:
        raise ValueError(f"the false-positive rate is a fraction between 0 and 1, got {fpr}")
    import lightgbm as lgb

    table, meta, features = load(path, usable)
    times = table.column("event_time")
    if test_from is None:
        # The last fifth of the period tests.
        first, last = pc.min(times).as_py(), pc.max(times).as_py()
        if first is None:
            raise ValueError(f"{path}: the training set is empty")
        test_from = first + (last - first) * 0.8
    earlier = pc.less(times, pa.scalar(test_from, type=times.type))
    train_x, train_y = matrix(table.filter(earlier), features)
    test_x, test_y = matrix(table.filter(pc.invert(earlier)), features)
    if len(set(train_y.tolist())) < 2:
        raise ValueError(f"the training period (before {test_from.isoformat()}) needs both labels")
    if len(test_y) == 0:
        raise ValueError(f"the test period (from {test_from.isoformat()}) is empty")
    model = lgb.LGBMClassifier(
        n_estimators=300,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=50,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=2,
        verbose=-1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # LightGBM's notes on feature names of numpy input
        model.fit(train_x, train_y)
        native = np.asarray(model.predict_proba(test_x))[:, 1]
    onnx = to_onnx(model, len(features))
    exported = onnx_scores(onnx, test_x)
    diff = float(np.max(np.abs(exported - native))) if len(native) else 0.0
    if diff > AGREEMENT:
        raise ValueError(f"the ONNX export differs from LightGBM by {diff:.2e} on the test set (limit {AGREEMENT})")
    return Trained(
        onnx=onnx,
        features=features,
        feature_set=str(meta["feature_set"]),
        feature_set_version=int(meta["version"]),
        split=test_from,
        train_rows=len(train_y),
        train_positives=int(train_y.sum()),
        test=evaluate(test_y, exported, fpr),
        review_at=threshold_at_fpr(test_y, exported, fpr),
        decline_at=threshold_at_fpr(test_y, exported, fpr / 10),
        max_onnx_diff=diff,
        seconds=time.perf_counter() - t0,
    )


def register(conn: psycopg.Connection, name: str, t: Trained, status: str) -> dict[str, Any]:
    """Register a trained model with the feature set version, inputs and thresholds it was trained with."""
    return registry.register_model(
        conn,
        name,
        t.onnx,
        t.feature_set,
        feature_set_version=t.feature_set_version,
        features=t.features,
        review_at=t.review_at,
        decline_at=t.decline_at,
        status=status,
    )
