"""contextlake train and contextlake freshness-cost on a generated period: metrics that recompute,
an ONNX model that scores like LightGBM and is registered with its feature set version, and a
freshness experiment whose fresh column is the lake's own point-in-time scoring."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from app.lake import registry
from app.train import freshness_cost as fc
from app.train.export import TrainingSet, export, matrix
from app.train.model import onnx_scores, threshold_at_fpr
from examples.cards.generator import Params, generate
from examples.cards.output import into_lake
from tests.cli_run import contextlake
from tests.lake_copy import lake_copy
from tests.onnx_models import logistic

START = datetime(2026, 9, 1, tzinfo=UTC)
PARAMS = Params(seed=31, cards=500, merchants=150, start=START, days=21, fraud_share=0.12)
TEST_FROM = START + timedelta(days=13)
END = START + timedelta(days=17)
CUTOFF = START + timedelta(days=21)


@pytest.fixture(scope="module")
def period(lake_template: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A generated period in a database of its own, and its training set (labels at the cutoff)."""
    with lake_copy(lake_template, "lake_train") as dsn:
        with psycopg.connect(dsn) as conn:
            into_lake(generate(PARAMS), conn, None)
        data = tmp_path_factory.mktemp("train") / "train.parquet"
        export(dsn, TrainingSet("fraud", 1, "card_fraud", START, END, CUTOFF), data, workers=2)
        yield dsn, data


def test_train_reports_recomputable_metrics_and_registers_an_agreeing_onnx(period: tuple[str, Path]) -> None:
    dsn, data = period
    done = contextlake(
        "train",
        "--data",
        str(data),
        "--name",
        "fraud",
        "--test-from",
        TEST_FROM.isoformat(),
        "--status",
        "active",
        dsn=dsn,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    roc = float(re.search(r"ROC-AUC (\d\.\d+)", out).group(1))  # type: ignore[union-attr]
    pr = float(re.search(r"PR-AUC (\d\.\d+)", out).group(1))  # type: ignore[union-attr]
    assert "registered model fraud v1 (active)" in out
    with psycopg.connect(dsn) as conn:
        onnx, features, fs_version, review_at, decline_at = conn.execute(
            "SELECT onnx, features, feature_set_version, review_at, decline_at FROM lake.models "
            "WHERE name = 'fraud' AND status = 'active'"
        ).fetchone()  # type: ignore[misc]
    assert fs_version == 1 and 0 < review_at < decline_at < 1
    # The registered ONNX model, run here on the test period of the exported file, gives the printed metrics.
    table = pq.read_table(data)
    test = table.filter(pc.greater_equal(table.column("event_time"), TEST_FROM))
    x, y = matrix(test, list(features))
    assert np.isnan(x).any()  # first transactions have no averages: NaN reaches the model
    score = onnx_scores(bytes(onnx), x)
    assert y.sum() >= 5
    assert roc_auc_score(y, score) == pytest.approx(roc, abs=0.0005)
    assert average_precision_score(y, score) == pytest.approx(pr, abs=0.0005)
    assert roc > 0.75  # the fresh velocity features separate the injected fraud
    # The review threshold flags about 1% of the test period's legitimate events.
    assert np.mean(score[y == 0] >= review_at) <= 0.01 + 1e-9


def test_threshold_at_fpr_flags_at_most_that_share_of_negatives() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(5000) < 0.05).astype(int)
    score = rng.random(5000).astype(np.float32)
    for fpr in (0.001, 0.01, 0.1):
        t = threshold_at_fpr(y, score, fpr)
        flagged = np.mean(score[y == 0] >= t)
        assert flagged <= fpr and flagged > fpr - 2 / (y == 0).sum()


def test_train_refuses_what_it_cannot_use(period: tuple[str, Path], tmp_path: Path) -> None:
    dsn, data = period
    late = contextlake(
        "train", "--data", str(data), "--name", "fraud", "--test-from", CUTOFF.isoformat(), "--status", "none", dsn=dsn
    )
    assert late.returncode == 2 and "test period" in late.stderr and "is empty" in late.stderr
    plain = tmp_path / "plain.parquet"
    pq.write_table(pq.read_table(data).replace_schema_metadata(None), plain)
    foreign = contextlake("train", "--data", str(plain), "--name", "fraud", "--status", "none", dsn=dsn)
    assert foreign.returncode == 2 and "not a contextlake training set" in foreign.stderr


def test_freshness_cost_fresh_column_is_point_in_time_and_lags_cost(period: tuple[str, Path], tmp_path: Path) -> None:
    dsn, data = period
    # A model that reads velocity: the 60 s count and the 5 min merchant count.
    with psycopg.connect(dsn) as conn:
        inputs = [r[0] for r in conn.execute("SELECT feature FROM lake.model_inputs('fraud', 1) WHERE usable")]
        weights = [0.0] * len(inputs)
        weights[inputs.index("card_txn_count_60s")] = 1.2
        weights[inputs.index("card_merchants_5m")] = 0.8
        registry.register_model(
            conn, "velocity", logistic(weights, -5.0), "fraud", features=inputs, review_at=0.3, decline_at=0.9,
            status="active",
        )  # fmt: skip
        model = fc.served_model(conn, "velocity", None)
    lags = (timedelta(seconds=10), timedelta(minutes=5))
    results = fc.run(dsn, model, "card_fraud", TEST_FROM, END, CUTOFF, lags, review_rate=0.02, workers=2)
    fresh, ten, five = results
    # The fresh column is the exported point-in-time set scored by the same model.
    table = pq.read_table(data)
    test = table.filter(pc.greater_equal(table.column("event_time"), TEST_FROM))
    x, y = matrix(test, inputs)
    assert fresh.events == len(y) and fresh.positives == int(y.sum())
    assert fresh.pr_auc == pytest.approx(average_precision_score(y, onnx_scores(model.onnx, x)), abs=1e-9)
    # Staleness costs: the burst features are gone five minutes back.
    assert five.flipped > 0 and five.missed > 0
    assert five.caught < fresh.caught
    assert ten.flipped <= five.flipped

    plot = tmp_path / "cost.png"
    done = contextlake(
        "freshness-cost", "--model", "velocity", "--label", "card_fraud",
        "--start", TEST_FROM.isoformat(), "--end", END.isoformat(),
        "--label-cutoff", CUTOFF.isoformat(), "--lags", "10s,5m", "--review-rate", "0.02", "--plot", str(plot), dsn=dsn,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "fresh (this lake)" in done.stdout and "5 min" in done.stdout
    assert f"{five.pr_auc:.3f}" in done.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    bad = contextlake(
        "freshness-cost",
        "--model",
        "fraud",
        "--label",
        "card_fraud",
        "--start",
        TEST_FROM.isoformat(),
        "--lags",
        "soon",
        dsn=dsn,
    )
    assert bad.returncode == 2 and "not a lag" in bad.stderr
