"""The demo: start the lake, apply the migrations, generate three weeks of card transactions and their
chargebacks into it, land live ones, export the point-in-time training set, train and register the
fraud model, then serve and score over HTTP."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from app.cli.table import render
from app.lake import registry
from app.lake.migrations import migrate
from app.lake.queries import query
from app.serve.local_server import serving
from app.settings import Settings
from app.train import model as training
from app.train.export import TrainingSet, export
from examples.cards.generator import TRANSACTION_COLUMNS, Params, card_name, generate
from examples.cards.output import into_lake
from examples.cards.sql import cards_project
from examples.cards.sql import query as cards_query

HISTORY_DAYS = 21
TRAIN_DAYS = 11
TEST_DAYS = 5
CARDS = 1_000
SHOWN = (
    "card_txn_count",
    "card_txn_count_60s",
    "card_merchants_5m",
    "card_amount_sum_24h",
    "card_credit_limit",
    "amount_to_avg_30d",
    "seconds_since_last_txn",
)


def land_history(conn: psycopg.Connection, seed: int, start: datetime) -> tuple[int, int, int]:
    """Generate the history into the lake: card profiles (the batch features an offline job loads),
    transactions in time order (the trigger maintains the features per landed batch) and the
    chargebacks reported by now."""
    params = Params(seed=seed, cards=CARDS, merchants=800, start=start, days=HISTORY_DAYS, fraud_share=0.04)
    w = into_lake(generate(params), conn, None)
    return w.transactions, w.frauds, w.chargebacks


def train_and_register(dsn: str, start: datetime, workers: int = 2) -> dict[str, Any]:
    """Export the point-in-time training set of the history's first TRAIN_DAYS + TEST_DAYS days with the
    labels known now (the later chargebacks have not arrived yet), train on the first TRAIN_DAYS, test
    on the rest, and register the model as the active fraud model."""
    now = datetime.now(UTC)
    test_from = start + timedelta(days=TRAIN_DAYS)
    end = test_from + timedelta(days=TEST_DAYS)
    with psycopg.connect(dsn) as conn:
        usable = registry.model_inputs(conn, "fraud", 1)
    with tempfile.TemporaryDirectory(prefix="contextlake-demo-") as tmp:
        data = Path(tmp) / "train.parquet"
        exported = export(dsn, TrainingSet("fraud", 1, "card_fraud", start, end, now), data, workers=workers)
        print(
            f"exported {exported.rows:,} point-in-time training rows ({exported.positives:,} with a chargeback) "
            f"in {exported.seconds:.1f} s ({exported.rows_per_second:,.0f} rows/s)"
        )
        t = training.train(data, usable, test_from=test_from)
    e = t.test
    print(
        f"trained LightGBM on {t.train_rows:,} events ({t.train_positives:,} positive) in {t.seconds:.1f} s; "
        f"the {TEST_DAYS} days after: ROC-AUC {e.roc_auc:.3f}, PR-AUC {e.pr_auc:.3f}, recall {e.recall_at_fpr:.2f} at "
        f"{e.fpr:.0%} false positives; ONNX matches LightGBM within {t.max_onnx_diff:.1e}"
    )
    with psycopg.connect(dsn) as conn:
        out = training.register(conn, "fraud", t, "active")
    print(f"registered model fraud v{out['version']} (active), sha256 {out['sha256'][:12]}")
    return out


def land_live(conn: psycopg.Connection, seed: int, seconds: float) -> tuple[int, str]:
    """Land single transactions as they happen, one per transaction; returns the count and the busiest card."""
    rng = random.Random(seed + 1)
    hot = card_name(rng.randrange(CARDS))
    deadline = time.monotonic() + seconds
    n = 0
    insert = "INSERT INTO cards.transactions ({}) VALUES ({})".format(
        ", ".join(TRANSACTION_COLUMNS), ", ".join(["%s"] * len(TRANSACTION_COLUMNS))
    )
    while time.monotonic() < deadline:
        card = hot if n % 4 == 0 else card_name(rng.randrange(CARDS))
        merchant = f"m{n % 7}" if card == hot else f"m{rng.randrange(500)}"
        row = (
            f"live-{seed}-{n}",
            card,
            merchant,
            round(rng.uniform(1, 80), 2),
            "EUR",
            "FR",
            "ecom",
            None,
            datetime.now(UTC),
        )
        conn.execute(insert, row)
        conn.commit()
        n += 1
    return n, hot


def show(title: str, body: dict[str, Any]) -> None:
    features = body["features"]
    print(
        f"\n{title}: {str(body['decision']).upper()} (score {body['score']:.3f}, "
        f"model {body['model']['name']} v{body['model']['version']})"
    )
    for reason in body["reasons"]:
        print(f"  because {reason}")
    rows = [
        (f, features[f]["value"], "-" if features[f]["age_seconds"] is None else f"{features[f]['age_seconds']:.3f}")
        for f in SHOWN
    ]
    print(render(["feature", "value", "age_s"], rows))
    print(f"  snapshot {body['snapshot']}, as of {body['as_of']}, timing ms {body['timing_ms']}")


def run(dsn: str, seed: int = 7, live_seconds: float = 3.0) -> None:
    print(f"lake: {dsn}")
    migrate(dsn, cards_project())
    start = datetime.now(UTC) - timedelta(days=HISTORY_DAYS)
    with psycopg.connect(dsn) as conn:
        already = conn.execute(cards_query("transactions_landed")).fetchone()[0]  # type: ignore[index]
        if already == 0:
            t0 = time.perf_counter()
            n, frauds, labels = land_history(conn, seed, start)
            print(
                f"generated and landed {n:,} transactions of {CARDS:,} cards over {HISTORY_DAYS} days "
                f"({frauds:,} fraudulent, {labels:,} chargebacks reported so far) in {time.perf_counter() - t0:.1f} s"
            )
        else:
            print(f"{already:,} transactions already landed; adding live ones")
        n, hot = land_live(conn, seed + already, live_seconds)
        print(f"landed {n:,} live transactions one per transaction in {live_seconds:.0f} s")
        has_model = conn.execute(query("active_model"), {"name": "fraud"}).fetchone() is not None
    if not has_model:
        train_and_register(dsn, start)
    with psycopg.connect(dsn) as conn:
        tester = conn.execute(cards_query("card_with_most_chargebacks")).fetchone()[0]  # type: ignore[index]
        api_key = registry.create_api_key(conn, "demo", ["score", "ingest"])[1]

    with serving(Settings(database_url=dsn), api_key) as http:
        print(f"\nserving on {http.base_url} (OpenAPI at /docs); API key for this run: {api_key}")
        request = {"amount": 250.0, "country": "US"}
        for title, card in (
            (f"busiest live card {hot}", hot),
            (f"card with most chargebacks {tester}", tester),
            ("unseen card", "card-never-seen"),
        ):
            body = http.post("/v1/score", json={"model": "fraud", "entity": card, "request": request}).json()
            show(f"POST /v1/score {title}, 250 USD abroad", body)
        event = {
            "event_id": f"demo-decide-{time.time_ns()}",
            "merchant_id": "m42",
            "amount": 35.0,
            "currency": "EUR",
            "country": "FR",
            "channel": "pos",
        }
        body = http.post("/v1/decide", json={"model": "fraud", "entity": hot, "event": event}).json()
        show(f"POST /v1/decide {hot}: lands the event and decides in one transaction", body)

        latencies = []
        t0 = time.perf_counter()
        for i in range(1000):
            t = time.perf_counter()
            http.post("/v1/score", json={"model": "fraud", "entity": card_name(i % CARDS), "request": request})
            latencies.append((time.perf_counter() - t) * 1e3)
        dt = time.perf_counter() - t0
        q = statistics.quantiles(latencies, n=100)
        print(
            f"\n1,000 /v1/score calls from one HTTP client: {1000 / dt:,.0f}/s, "
            f"p50 {q[49]:.2f} ms, p99 {q[98]:.2f} ms (read, model, rules, decision, log)"
        )

    with psycopg.connect(dsn) as conn:
        logged = conn.execute(query("decisions_by_outcome")).fetchall()
        print("\ndecision log (api.decisions): " + ", ".join(f"{o} {c:,}" for o, c in logged))
        print("\ningest lag (api.ingest_lag):")
        cur = conn.execute(query("ingest_lag"))
        print(render([d.name for d in cur.description or []], cur.fetchall()))
