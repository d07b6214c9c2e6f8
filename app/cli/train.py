"""Training commands: export-training (point-in-time sets), train (LightGBM to ONNX, registered),
freshness-cost (what stale vectors cost a registered model)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg

from app.cli import context
from app.cli.table import render
from app.lake import registry
from app.lake.queries import query

if TYPE_CHECKING:
    from app.train.export import TrainingSet


def _time(text: str | None, default: datetime | None = None, option: str = "time") -> datetime | None:
    if text is None:
        return default
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option}: not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _training_set(conn: psycopg.Connection, args: argparse.Namespace) -> TrainingSet:
    from app.train.export import TrainingSet

    version = args.version or registry.latest_feature_set_version(conn, args.feature_set)
    cutoff = _time(args.label_cutoff, datetime.now(UTC), "--label-cutoff")
    assert cutoff is not None
    found = conn.execute(query("label_events"), {"label": args.label, "start": None, "end": None}).fetchone()
    first = found[0] if found else None
    start = _time(args.start, first, "--start")
    end = _time(args.end, cutoff, "--end")
    if start is None or end is None:
        raise ValueError(f"label {args.label}: its events source has no events yet")
    return TrainingSet(args.feature_set, version, args.label, start, end, cutoff)


def cmd_export_training(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.train import export as training_export

    dsn = context.dsn(args)
    with psycopg.connect(dsn) as conn:
        ts = _training_set(conn, args)
    out = Path(args.out)
    r = training_export.export(dsn, ts, out, workers=args.workers, progress=sys.stderr)
    print(
        f"exported {r.rows:,} point-in-time rows ({r.positives:,} labelled positive at {ts.cutoff.isoformat()}) "
        f"of {ts.feature_set} v{ts.version} for events in [{ts.start.isoformat()}, {ts.end.isoformat()}) "
        f"to {out} in {r.seconds:.1f} s ({r.rows_per_second:,.0f} rows/s, {args.workers} worker(s))"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.train import model as training
    from app.train.export import described

    path = Path(args.data)
    meta = described(path)
    dsn = context.dsn(args)
    with psycopg.connect(dsn) as conn:
        usable = registry.model_inputs(conn, meta["feature_set"], meta["version"])
    t = training.train(
        path, usable, test_from=_time(args.test_from, option="--test-from"), fpr=args.max_fpr, seed=args.seed
    )
    e = t.test
    print(
        f"trained LightGBM on {t.train_rows:,} events before {t.split.isoformat()} ({t.train_positives:,} positive), "
        f"{len(t.features)} features of {t.feature_set} v{t.feature_set_version}, in {t.seconds:.1f} s\n"
        f"test period: {e.rows:,} events ({e.positives:,} positive): ROC-AUC {e.roc_auc:.3f}, PR-AUC {e.pr_auc:.3f}, "
        f"recall {e.recall_at_fpr:.3f} at {e.fpr:.1%} false positives\n"
        f"ONNX agrees with LightGBM within {t.max_onnx_diff:.1e} on the test set (limit {training.AGREEMENT:.0e}); "
        f"thresholds from the test period: review at {t.review_at:.4f}, decline at {t.decline_at:.4f}"
    )
    if args.save_onnx:
        Path(args.save_onnx).write_bytes(t.onnx)
        print(f"ONNX written to {args.save_onnx}")
    if args.status == "none":
        return 0
    with psycopg.connect(dsn) as conn:
        out = training.register(conn, args.name, t, args.status)
    print(f"registered model {out['name']} v{out['version']} ({out['status']}), sha256 {out['sha256'][:12]}")
    return 0


def cmd_freshness_cost(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.train import freshness_cost as fc

    lags = tuple(fc.parse_lag(x.strip()) for x in args.lags.split(",") if x.strip())
    cutoff = _time(args.label_cutoff, datetime.now(UTC), "--label-cutoff")
    start, end = _time(args.start, option="--start"), _time(args.end, cutoff, "--end")
    assert cutoff is not None and start is not None and end is not None
    dsn = context.dsn(args)
    with psycopg.connect(dsn) as conn:
        model = fc.served_model(conn, args.model, args.model_version)
    results = fc.run(
        dsn, model, args.label, start, end, cutoff, lags, args.review_rate, args.workers, progress=sys.stderr
    )
    first = results[0]
    print(
        f"model {model.name} v{model.version} on {first.events:,} events in [{start.isoformat()}, {end.isoformat()}) "
        f"({first.positives:,} labelled positive at {cutoff.isoformat()}); review rate {args.review_rate:.1%}"
    )
    print(render(fc.TABLE_HEADERS, fc.table_rows(results)))
    if args.plot:
        title = f"{model.name} v{model.version}: {first.events:,} events, {first.positives:,} fraud"
        fc.plot(results, Path(args.plot), args.review_rate, title)
        print(f"plot written to {args.plot}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser(
        "export-training",
        help="point-in-time training set to Parquet: each event's vector as of just before it, label at a cutoff",
    )
    sp.add_argument("--out", required=True, help="Parquet file to write")
    sp.add_argument("--feature-set", required=True, help="feature set")
    sp.add_argument("--version", type=int, help="feature set version (default: the latest)")
    sp.add_argument("--label", required=True, help="label defined with lake.define_label")
    sp.add_argument("--start", help="first event time, ISO 8601 (default: the earliest event)")
    sp.add_argument("--end", help="events before this time, ISO 8601 (default: the cutoff)")
    sp.add_argument("--label-cutoff", help="labels reported up to this time count, ISO 8601 (default: now)")
    sp.add_argument("--workers", type=int, default=1, help="connections reading at once (default 1)")
    sp.set_defaults(func=cmd_export_training)

    sp = sub.add_parser(
        "train", help="train LightGBM on an exported training set (time split), export ONNX, check, register"
    )
    sp.add_argument("--data", required=True, help="a training set written by export-training")
    sp.add_argument("--name", required=True, help="model name to register")
    sp.add_argument("--test-from", help="events from this time test, ISO 8601 (default: the last fifth)")
    sp.add_argument(
        "--max-fpr", type=float, default=0.01, help="false-positive rate for recall and review (default 0.01)"
    )
    sp.add_argument("--seed", type=int, default=1, help="LightGBM seed (default 1)")
    sp.add_argument(
        "--status",
        choices=["active", "shadow", "none"],
        default="shadow",
        help="register as active or shadow, or not at all (default shadow)",
    )
    sp.add_argument("--save-onnx", help="also write the ONNX model to this file")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser(
        "freshness-cost",
        help="score a test period with fresh vectors and with vectors lagging 1 s to 5 min: what staleness costs",
    )
    sp.add_argument("--start", required=True, help="first event time of the test period, ISO 8601")
    sp.add_argument("--end", help="events before this time, ISO 8601 (default: the cutoff)")
    sp.add_argument("--label-cutoff", help="labels reported up to this time count, ISO 8601 (default: now)")
    sp.add_argument("--model", required=True, help="model name")
    sp.add_argument("--model-version", type=int, help="model version (default: the active one)")
    sp.add_argument("--label", required=True, help="label defined with lake.define_label")
    sp.add_argument("--lags", default="1s,10s,60s,5m", help="comma-separated lags (default 1s,10s,60s,5m)")
    sp.add_argument("--review-rate", type=float, default=0.01, help="share of events analysts review (default 0.01)")
    sp.add_argument("--workers", type=int, default=1, help="connections reading at once (default 1)")
    sp.add_argument("--plot", help="write a PNG plot of the results here")
    sp.set_defaults(func=cmd_freshness_cost)
