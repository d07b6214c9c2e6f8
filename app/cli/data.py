"""contextlake load: a CSV or Parquet file of events into a source, bad rows to a reject file."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli import context


def cmd_load(args: argparse.Namespace) -> int:
    from app.ingest import bulk_load

    path = Path(args.file)
    reject = Path(args.reject_file) if args.reject_file else path.with_name(path.name + ".rejected.csv")
    with context.connect(args) as conn:
        r = bulk_load.load(conn, path, args.source, reject, chunk=args.chunk)
    print(
        f"loaded {r.loaded:,}, duplicates {r.duplicates:,}, rejected {r.rejected:,} in {r.seconds:.1f} s "
        f"({(r.loaded + r.duplicates + r.rejected) / max(r.seconds, 1e-9):,.0f} rows/s)"
        + (f"; rejected rows in {reject}" if r.rejected else "")
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser("load", help="load a CSV or Parquet file of events into a source (bad rows to a reject file)")
    sp.add_argument("file", help="a .csv (header row of landing columns) or .parquet file")
    sp.add_argument("--source", required=True, help="events source to land in, e.g. card_txn")
    sp.add_argument("--reject-file", help="where bad rows go (default FILE.rejected.csv)")
    sp.add_argument("--chunk", type=int, default=10_000, help="rows per COPY and landing (default 10,000)")
    sp.set_defaults(func=cmd_load)
