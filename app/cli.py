"""contextlake command line: run the lake, apply migrations, inspect freshness, compact, verify."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import alembic.util.exc
import psycopg
import sqlalchemy.exc

from app import cli_admin, database, migrate, registry
from app.embedded import EmbeddedError, find_bindir
from app.onnx_model import ModelInputError
from app.queries import query
from app.table import render
from migrations.sqlfile import MigrationChecksumError

if TYPE_CHECKING:
    from app.training_export import TrainingSet


def _print_query(conn: psycopg.Connection, name: str) -> int:
    cur = conn.execute(query(name))
    rows = cur.fetchall()
    print(render([d.name for d in cur.description or []], rows))
    return len(rows)


def cmd_up(args: argparse.Namespace) -> int:
    dsn = database.database_url(start=True)
    migrate.upgrade(dsn)
    print(f"lake is up and migrated: {dsn}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    if not database.uses_embedded():
        print("DATABASE_URL is set: that server is not ours to stop")
        return 0
    cluster = database.embedded_cluster()
    if not cluster.running():
        print(f"no embedded lake is running in {cluster.home}")
        return 0
    cluster.stop()
    print("embedded lake stopped")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    dsn = database.database_url()
    before = migrate.pending(dsn)
    migrate.upgrade(dsn, args.target)
    applied = [r for r in before if r not in migrate.pending(dsn)]
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app import demo

    dsn = database.database_url()
    try:
        demo.run(dsn, seed=args.seed, live_seconds=args.live_seconds)
    finally:
        if database.uses_embedded() and not args.keep_running:
            database.embedded_cluster().stop()
            print("\nembedded lake stopped (use --keep-running to keep it)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    dsn = database.database_url()
    migrate.upgrade(dsn)
    os.environ["DATABASE_URL"] = dsn  # the workers read it (the embedded lake is already started)
    uvicorn.run(
        "app.main:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=args.access_log,
    )
    return 0


def cmd_psql(args: argparse.Namespace) -> int:
    dsn = database.database_url()
    exe = shutil.which("psql")
    if exe is None:
        exe = str(find_bindir() / "psql")
    os.execv(exe, [exe, dsn, *args.psql_args])
    return 0  # not reached


def cmd_freshness(args: argparse.Namespace) -> int:
    with psycopg.connect(database.database_url()) as conn:
        print("feature freshness (lake.feature_freshness)")
        _print_query(conn, "freshness")
        print("\ningest lag (lake.ingest_lag)")
        _print_query(conn, "ingest_lag")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app import bulk_load

    path = Path(args.file)
    reject = Path(args.reject_file) if args.reject_file else path.with_name(path.name + ".rejected.csv")
    with psycopg.connect(database.database_url()) as conn:
        r = bulk_load.load(conn, path, args.source, reject, chunk=args.chunk)
    print(
        f"loaded {r.loaded:,}, duplicates {r.duplicates:,}, rejected {r.rejected:,} in {r.seconds:.1f} s "
        f"({(r.loaded + r.duplicates + r.rejected) / max(r.seconds, 1e-9):,.0f} rows/s)"
        + (f"; rejected rows in {reject}" if r.rejected else "")
    )
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app import generated_output
    from app.generator import Params, generate

    start = _time(args.start, option="--start")
    assert start is not None
    params = Params(
        seed=args.seed,
        cards=args.cards,
        merchants=args.merchants,
        start=start,
        days=args.days,
        fraud_share=args.fraud_share,
    )
    generated = generate(params)
    if args.out:
        w = generated_output.write_files(generated, Path(args.out), args.format, sys.stderr)
        where = ", ".join(str(f) for f in w.files)
    else:
        dsn = database.database_url()
        migrate.upgrade(dsn)
        with psycopg.connect(dsn) as conn:
            w = generated_output.into_lake(generated, conn, sys.stderr)
        where = "the lake (sources card_txn, card_chargeback; cards.profiles)"
    print(
        f"generated {w.transactions:,} transactions ({w.frauds:,} fraudulent, {w.incidents:,} incidents), "
        f"{w.chargebacks:,} chargebacks and {w.profiles:,} card profiles from {params.start:%Y-%m-%d} for "
        f"{params.days} days in {w.seconds:.1f} s into {where}"
        + (f"; {w.duplicates:,} rows were already there" if w.duplicates else "")
    )
    return 0


def _time(text: str | None, default: datetime | None = None, option: str = "time") -> datetime | None:
    if text is None:
        return default
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option}: not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _training_set(conn: psycopg.Connection, args: argparse.Namespace) -> TrainingSet:
    from app.training_export import TrainingSet

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

    from app import training_export

    dsn = database.database_url()
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

    from app import training
    from app.training_export import described

    path = Path(args.data)
    meta = described(path)
    dsn = database.database_url()
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

    from app import freshness_cost as fc

    lags = tuple(fc.parse_lag(x.strip()) for x in args.lags.split(",") if x.strip())
    cutoff = _time(args.label_cutoff, datetime.now(UTC), "--label-cutoff")
    start, end = _time(args.start, option="--start"), _time(args.end, cutoff, "--end")
    assert cutoff is not None and start is not None and end is not None
    dsn = database.database_url()
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


def cmd_compact(args: argparse.Namespace) -> int:
    with psycopg.connect(database.database_url()) as conn:
        _print_query(conn, "compact")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with psycopg.connect(database.database_url()) as conn:
        print("state recomputed from raw events (lake.verify_state):")
        bad = _print_query(conn, "verify_state")
        print("\nread path (lake.read_path_problems):")
        bad += _print_query(conn, "read_path_problems")
    print("\nverify: " + ("MISMATCH" if bad else "every maintained feature equals its recomputation"))
    return 1 if bad else 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "up": (cmd_up, "start the lake (embedded unless DATABASE_URL is set) and apply the migrations"),
    "down": (cmd_down, "stop the embedded lake"),
    "migrate": (cmd_migrate, "apply pending migrations (each in a transaction; edited ones are refused)"),
    "demo": (cmd_demo, "start the lake, land a generated stream of card transactions, print vectors with ages"),
    "serve": (cmd_serve, "serve the HTTP API (uvicorn): decisions, vectors, freshness, metrics; OpenAPI at /docs"),
    "model": (cli_admin.model, "model registry: register, list, activate, shadow, retire"),
    "key": (cli_admin.key, "API keys: create, revoke, list"),
    "load": (cmd_load, "load a CSV or Parquet file of events into a source (bad rows to a reject file)"),
    "generate": (cmd_generate, "generate seeded card transactions with fraud patterns and late chargebacks"),
    "export-training": (
        cmd_export_training,
        "point-in-time training set to Parquet: each event's vector as of just before it, label at a cutoff",
    ),
    "train": (cmd_train, "train LightGBM on an exported training set (time split), export ONNX, check, register"),
    "freshness-cost": (
        cmd_freshness_cost,
        "score a test period with fresh vectors and with vectors lagging 1 s to 5 min: what staleness costs",
    ),
    "psql": (cmd_psql, "open psql on the lake"),
    "freshness": (cmd_freshness, "print per-feature freshness and per-source ingest lag"),
    "compact": (cmd_compact, "drop raw events and tiles no read needs any more"),
    "verify": (cmd_verify, "recompute every maintained feature from raw events; exit 1 on any difference"),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="contextlake",
        description="Transactional SQL serving layer for real-time ML decisions. "
        "Uses DATABASE_URL when set, else an embedded PostgreSQL in CONTEXTLAKE_HOME (default ./.contextlake).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == "migrate":
            sp.add_argument("--target", default="head", help="revision to migrate to (default: head)")
        if name == "demo":
            sp.add_argument("--seed", type=int, default=7, help="seed of the generated stream (default 7)")
            sp.add_argument(
                "--live-seconds", type=float, default=3.0, help="seconds of live single-row ingest (default 3)"
            )
            sp.add_argument("--keep-running", action="store_true", help="leave the embedded lake running afterwards")
        if name == "serve":
            sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
            sp.add_argument("--port", type=int, default=8000, help="port (default 8000)")
            sp.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
            sp.add_argument("--access-log", action="store_true", help="log every request (off: /metrics counts them)")
        if name == "model":
            cli_admin.add_model_parser(sp)
        if name == "key":
            cli_admin.add_key_parser(sp)
        if name == "load":
            sp.add_argument("file", help="a .csv (header row of landing columns) or .parquet file")
            sp.add_argument("--source", required=True, help="events source to land in, e.g. card_txn")
            sp.add_argument("--reject-file", help="where bad rows go (default FILE.rejected.csv)")
            sp.add_argument("--chunk", type=int, default=10_000, help="rows per COPY and landing (default 10,000)")
        if name == "generate":
            sp.add_argument(
                "--seed", type=int, default=1, help="random seed: the same seed gives the same rows (default 1)"
            )
            sp.add_argument("--cards", type=int, default=5_000, help="cards (default 5,000)")
            sp.add_argument("--merchants", type=int, default=2_000, help="merchants (default 2,000)")
            sp.add_argument(
                "--start", default="2026-09-01", help="first day, ISO 8601, UTC if no zone (default 2026-09-01)"
            )
            sp.add_argument("--days", type=int, default=28, help="length of the period in days (default 28)")
            sp.add_argument(
                "--fraud-share", type=float, default=0.02, help="share of cards compromised once (default 0.02)"
            )
            sp.add_argument("--out", help="write files to this directory instead of landing them in the lake")
            sp.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format (default csv)")
        if name == "export-training":
            sp.add_argument("--out", required=True, help="Parquet file to write")
            sp.add_argument("--feature-set", default="fraud", help="feature set (default fraud)")
            sp.add_argument("--version", type=int, help="feature set version (default: the latest)")
            sp.add_argument("--label", default="card_fraud", help="label defined in lake.labels (default card_fraud)")
            sp.add_argument("--start", help="first event time, ISO 8601 (default: the earliest event)")
            sp.add_argument("--end", help="events before this time, ISO 8601 (default: the cutoff)")
            sp.add_argument("--label-cutoff", help="labels reported up to this time count, ISO 8601 (default: now)")
            sp.add_argument("--workers", type=int, default=1, help="connections reading at once (default 1)")
        if name == "train":
            sp.add_argument("--data", required=True, help="a training set written by export-training")
            sp.add_argument("--name", default="fraud", help="model name to register (default fraud)")
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
        if name == "freshness-cost":
            sp.add_argument("--start", required=True, help="first event time of the test period, ISO 8601")
            sp.add_argument("--end", help="events before this time, ISO 8601 (default: the cutoff)")
            sp.add_argument("--label-cutoff", help="labels reported up to this time count, ISO 8601 (default: now)")
            sp.add_argument("--model", default="fraud", help="model name (default fraud)")
            sp.add_argument("--model-version", type=int, help="model version (default: the active one)")
            sp.add_argument("--label", default="card_fraud", help="label defined in lake.labels (default card_fraud)")
            sp.add_argument("--lags", default="1s,10s,60s,5m", help="comma-separated lags (default 1s,10s,60s,5m)")
            sp.add_argument(
                "--review-rate", type=float, default=0.01, help="share of events analysts review (default 0.01)"
            )
            sp.add_argument("--workers", type=int, default=1, help="connections reading at once (default 1)")
            sp.add_argument("--plot", help="write a PNG plot of the results here")
        if name == "psql":
            sp.usage = "contextlake psql [psql options, e.g. -c 'SELECT * FROM lake.feature_freshness']"
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra and args.command != "psql":
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    args.psql_args = extra
    func = COMMANDS[args.command][0]
    try:
        return func(args)
    except (
        EmbeddedError,
        MigrationChecksumError,
        migrate.MigrationError,
        alembic.util.exc.CommandError,
        psycopg.Error,
        sqlalchemy.exc.SQLAlchemyError,
        ModelInputError,
        OSError,
        ValueError,
    ) as exc:
        # Definition, migration, configuration and connection errors: one clear line, no traceback.
        print(f"contextlake: {str(exc).strip()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
