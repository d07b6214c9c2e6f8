"""The card-fraud example's commands: python -m examples.cards demo | generate.

demo      start the lake (embedded unless DATABASE_URL is set), install this project, land a generated
          history, train, register, serve and score over HTTP
generate  seeded card transactions with fraud patterns and late chargebacks, into the lake or to files
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from app.lake import database
from app.lake.migrations import migrate
from app.settings import Settings
from examples.cards import output
from examples.cards.generator import Params, generate
from examples.cards.sql import cards_project


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from examples.cards import demo

    dsn = database.database_url(settings)
    try:
        demo.run(dsn, seed=args.seed, live_seconds=args.live_seconds)
    finally:
        if database.uses_embedded(settings) and not args.keep_running:
            database.embedded_cluster(settings).stop()
            print("\nembedded lake stopped (use --keep-running to keep it)")
    return 0


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        start = datetime.fromisoformat(args.start)
    except ValueError:
        raise ValueError(f"--start: not an ISO 8601 time: {args.start!r}") from None
    params = Params(
        seed=args.seed,
        cards=args.cards,
        merchants=args.merchants,
        start=start if start.tzinfo else start.replace(tzinfo=UTC),
        days=args.days,
        fraud_share=args.fraud_share,
    )
    generated = generate(params)
    if args.out:
        w = output.write_files(generated, Path(args.out), args.format, sys.stderr)
        where = ", ".join(str(f) for f in w.files)
    else:
        dsn = database.database_url(settings)
        migrate(dsn, cards_project())
        with psycopg.connect(dsn) as conn:
            w = output.into_lake(generated, conn, sys.stderr)
        where = "the lake (sources card_txn, card_chargeback; cards.profiles)"
    print(
        f"generated {w.transactions:,} transactions ({w.frauds:,} fraudulent, {w.incidents:,} incidents), "
        f"{w.chargebacks:,} chargebacks and {w.profiles:,} card profiles from {params.start:%Y-%m-%d} for "
        f"{params.days} days in {w.seconds:.1f} s into {where}"
        + (f"; {w.duplicates:,} rows were already there" if w.duplicates else "")
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.cards", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sp = sub.add_parser("demo", help="install the example, land a history, train, serve and score over HTTP")
    sp.add_argument("--seed", type=int, default=7, help="seed of the generated stream (default 7)")
    sp.add_argument("--live-seconds", type=float, default=3.0, help="seconds of live single-row ingest (default 3)")
    sp.add_argument("--keep-running", action="store_true", help="leave the embedded lake running afterwards")
    sp.set_defaults(func=cmd_demo)
    sp = sub.add_parser("generate", help="seeded card transactions with fraud patterns and late chargebacks")
    sp.add_argument("--seed", type=int, default=1, help="random seed: the same seed gives the same rows (default 1)")
    sp.add_argument("--cards", type=int, default=5_000, help="cards (default 5,000)")
    sp.add_argument("--merchants", type=int, default=2_000, help="merchants (default 2,000)")
    sp.add_argument("--start", default="2026-09-01", help="first day, ISO 8601, UTC if no zone (default 2026-09-01)")
    sp.add_argument("--days", type=int, default=28, help="length of the period in days (default 28)")
    sp.add_argument("--fraud-share", type=float, default=0.02, help="share of cards compromised once (default 0.02)")
    sp.add_argument("--out", help="write files to this directory instead of landing them in the lake")
    sp.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format (default csv)")
    sp.set_defaults(func=cmd_generate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args, Settings()))
    except (psycopg.Error, OSError, ValueError, RuntimeError) as exc:
        print(f"examples.cards: {str(exc).strip()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
