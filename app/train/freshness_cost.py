"""contextlake freshness-cost: what stale features cost a model, measured on the lake's own events.

Every event of a test period is scored by a registered model twice over: with its vector as of just
before the event (what this lake serves: the event's predecessors are all in it) and with its vector
as of ``t - lag`` for each lag: how stale a store promoting features every `lag` is just before its
next promotion (its vectors are between 0 and `lag` old, `lag / 2` on average). All the
vectors come from the feature set's own read function (lake.training_statement with that offset),
with the event as the request payload, so request-time features see the event's own amount and
country in every case. For each lag:

- PR-AUC and ROC-AUC of the scores against the labels known at the cutoff;
- fraud caught at the same review rate: the analysts review the top `review_rate` of the scores;
  the share of all labelled fraud that is among them (recall at that review capacity);
- decisions that flip: the share of events whose decision (the model's review and decline thresholds
  and the feature set's rules, as /v1/score decides) differs from the fresh one, and the fraud the
  fresh decision stopped (review or decline) that the stale one approves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import psycopg

from app.cli.progress import Progress
from app.lake.queries import query
from app.train.export import BASE_COLUMNS, TrainingSet, rows
from app.train.model import evaluate, onnx_scores

FRESH = timedelta(microseconds=1)
DEFAULT_LAGS = (timedelta(seconds=1), timedelta(seconds=10), timedelta(seconds=60), timedelta(minutes=5))
OUTCOMES = ("approve", "review", "decline")


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: int
    onnx: bytes
    feature_set: str
    feature_set_version: int
    features: list[str]
    review_at: float | None
    decline_at: float | None
    rule_actions: list[str]


@dataclass(frozen=True)
class LagResult:
    lag: timedelta
    events: int
    positives: int
    pr_auc: float
    roc_auc: float
    caught: float  # share of all labelled fraud that is in the reviewed top `review_rate` (recall)
    flipped: float  # share of decisions that differ from the fresh ones
    missed: int  # fraud the fresh decision stopped and this one approves
    seconds: float


def served_model(conn: psycopg.Connection, name: str, version: int | None) -> ServedModel:
    row = conn.execute(query("model_for_replay"), {"name": name, "version": version}).fetchone()
    if row is None:
        raise ValueError(f"no model {name!r}" + (f" version {version}" if version else " is active"))
    return ServedModel(*row)


def lag_label(lag: timedelta) -> str:
    if lag <= FRESH:
        return "fresh (this lake)"
    seconds = lag.total_seconds()
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def _vectors(
    dsn: str, ts: TrainingSet, features: list[str], set_features: list[str], workers: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Event ids, the model inputs (NaN for NULL), labels and rule hits of every event, in (time, id) order."""
    index = [len(BASE_COLUMNS) + set_features.index(f) for f in features]
    hits_at = len(BASE_COLUMNS) + len(set_features)
    ids: list[str] = []
    xs: list[list[float]] = []
    labels: list[int] = []
    hits: list[list[bool]] = []
    for r in rows(dsn, ts, workers):
        ids.append(r[0])
        labels.append(1 if r[4] else 0)
        xs.append([np.nan if r[i] is None else float(r[i]) for i in index])
        hits.append(list(r[hits_at] or []))
    width = max((len(h) for h in hits), default=0)
    return (
        ids,
        np.array(xs, dtype=np.float32).reshape(len(ids), len(features)),
        np.array(labels, dtype=np.int64),
        np.array(hits, dtype=bool).reshape(len(ids), width),
    )


def decisions(model: ServedModel, score: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """0 approve, 1 review, 2 decline: the most severe of the rules that fired and the score thresholds."""
    level = np.zeros(len(score), dtype=np.int64)
    for k, action in enumerate(model.rule_actions):
        if k < hits.shape[1]:
            level = np.where(hits[:, k], np.maximum(level, OUTCOMES.index(action)), level)
    if model.review_at is not None:
        level = np.where(score >= model.review_at, np.maximum(level, 1), level)
    if model.decline_at is not None:
        level = np.where(score >= model.decline_at, 2, level)
    return level


def run(
    dsn: str,
    model: ServedModel,
    label: str,
    start: datetime,
    end: datetime,
    cutoff: datetime,
    lags: tuple[timedelta, ...] = DEFAULT_LAGS,
    review_rate: float = 0.01,
    workers: int = 1,
    progress: TextIO | None = None,
) -> list[LagResult]:
    if not 0 < review_rate < 1:
        raise ValueError("the review rate is a fraction between 0 and 1")
    if any(lag <= FRESH for lag in lags):
        raise ValueError("every lag must be longer than a microsecond (the fresh read)")
    with psycopg.connect(dsn) as conn:
        meta = conn.execute(
            query("feature_set_meta"), {"feature_set": model.feature_set, "version": model.feature_set_version}
        ).fetchone()
    if meta is None:
        raise ValueError(f"unknown feature set {model.feature_set} v{model.feature_set_version}")
    set_features = list(meta[2])
    results: list[LagResult] = []
    fresh_ids: list[str] = []
    fresh_decided = np.zeros(0, dtype=np.int64)
    bar = Progress(progress, "passes")
    all_lags = (FRESH, *lags)
    for n, lag in enumerate(all_lags):
        t0 = time.perf_counter()
        ts = TrainingSet(model.feature_set, model.feature_set_version, label, start, end, cutoff, lag)
        ids, x, y, hits = _vectors(dsn, ts, model.features, set_features, workers)
        if len(ids) == 0:
            raise ValueError(f"no events of label {label} in [{start.isoformat()}, {end.isoformat()})")
        score = onnx_scores(model.onnx, x)
        decided = decisions(model, score, hits)
        if n == 0:  # the fresh pass: what the others are compared with
            fresh_ids, fresh_decided = ids, decided
        elif ids != fresh_ids:
            raise ValueError("the test period's events changed between passes (events landed meanwhile): run it again")
        reviewed = max(1, int(round(review_rate * len(score))))
        top = np.argsort(-score, kind="stable")[:reviewed]
        e = evaluate(y, score, 0.01)
        results.append(
            LagResult(
                lag=lag,
                events=len(ids),
                positives=int(y.sum()),
                pr_auc=e.pr_auc,
                roc_auc=e.roc_auc,
                caught=float(y[top].sum() / max(y.sum(), 1)),
                flipped=float(np.mean(decided != fresh_decided)),
                missed=int(np.sum((y == 1) & (fresh_decided > 0) & (decided == 0))),
                seconds=time.perf_counter() - t0,
            )
        )
        bar.update((n + 1) / len(all_lags), n + 1, f"lag {lag_label(lag)}", force=True)
    bar.close()
    return results


def table_rows(results: list[LagResult]) -> list[tuple[Any, ...]]:
    return [
        (
            lag_label(r.lag),
            f"{r.pr_auc:.3f}",
            f"{r.roc_auc:.3f}",
            f"{r.caught:.1%}",
            f"{r.flipped:.2%}",
            r.missed,
        )
        for r in results
    ]


TABLE_HEADERS = [
    "features as of",
    "PR-AUC",
    "ROC-AUC",
    "fraud caught at review rate",
    "decisions flipped",
    "fraud let through",
]


def plot(results: list[LagResult], path: Path, review_rate: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [lag_label(r.lag) for r in results]
    xs = np.arange(len(results))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    left.plot(xs, [r.pr_auc for r in results], marker="o", label="PR-AUC")
    left.plot(xs, [r.caught for r in results], marker="s", label=f"fraud caught reviewing {review_rate:.1%}")
    left.set_xticks(xs, labels, rotation=20)
    left.set_ylim(0, 1)
    left.set_ylabel("higher is better")
    left.set_title("detection")
    left.legend(loc="lower left")
    left.grid(alpha=0.3)
    right.bar(xs, [100 * r.flipped for r in results], color="tab:red")
    right.set_xticks(xs, labels, rotation=20)
    right.set_ylabel("% of decisions")
    right.set_title("decisions that differ from fresh")
    right.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def parse_lag(text: str) -> timedelta:
    """'1s', '10s', '60s', '5m', '2h' or a number of seconds."""
    units = {"s": 1, "m": 60, "min": 60, "h": 3600}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            value, scale = text[: -len(suffix)], units[suffix]
            break
    else:
        value, scale = text, 1
    try:
        seconds = float(value) * scale
    except ValueError:
        raise ValueError(f"not a lag: {text!r} (e.g. 1s, 10s, 60s, 5m)") from None
    if seconds <= 0:
        raise ValueError(f"a lag must be positive, got {text!r}")
    return timedelta(seconds=seconds)
