"""The training pipeline end to end, with its figures: generate, export, train, freshness cost.

  generate         --cards cards over --days days into the lake (python -m examples.cards generate)
  export-training  every event of the first --train-days + --test-days days, its vector as of just
                   before it, labels as known at the end of the generated period (so the test
                   period's chargebacks have had two weeks or more to arrive); rows/s with 1 and with
                   2 workers, same file
  train            LightGBM on the first --train-days days, tested on the next --test-days (ROC-AUC,
                   PR-AUC, recall at 1% false positives), ONNX checked, registered active
  freshness-cost   the test period scored with fresh vectors and with vectors 1 s, 10 s, 60 s and
                   5 min old; the table, and the plot written to --plot

Every step is the contextlake command a user runs; their outputs are printed as they are.
Uses DATABASE_URL when set, else a throwaway cluster with the lake settings.
Usage: .venv/bin/python bench/training.py [--cards 5000] [--days 56] [--train-days 35] [--test-days 7]
                                          [--plot docs/freshness_cost.png]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_database, server  # noqa: E402


def contextlake(dsn: str, *args: str, module: str = "app.cli") -> str:
    t0 = time.perf_counter()
    shown = "contextlake" if module == "app.cli" else f"python -m {module}"
    print(f"\n$ {shown} {' '.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, "DATABASE_URL": dsn},
        capture_output=True,
        text=True,
        check=False,
    )
    print(done.stdout.rstrip(), flush=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"contextlake {args[0]} failed ({done.returncode})")
    print(f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return done.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cards", type=int, default=5_000)
    p.add_argument("--days", type=int, default=56)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--train-days", type=int, default=35)
    p.add_argument("--test-days", type=int, default=7)
    p.add_argument("--plot", default="docs/freshness_cost.png")
    args = p.parse_args()
    start = datetime(2026, 9, 1, tzinfo=UTC)
    cutoff = start + timedelta(days=args.days)
    test_from = start + timedelta(days=args.train_days)
    end = test_from + timedelta(days=args.test_days)
    if end > cutoff:
        raise SystemExit("--train-days + --test-days must fit in --days")
    with server() as base, tempfile.TemporaryDirectory(prefix="contextlake-training-") as tmp:
        dsn, _ = fresh_database(base, "contextlake_bench_training")
        contextlake(dsn, "migrate", "--project", "examples/cards")
        contextlake(
            dsn, "generate", "--seed", str(args.seed), "--cards", str(args.cards), "--days", str(args.days),
            "--start", start.isoformat(), module="examples.cards",
        )  # fmt: skip
        data = Path(tmp) / "train.parquet"
        for workers in ("1", "2"):
            contextlake(
                dsn, "export-training", "--out", str(data), "--feature-set", "fraud", "--label", "card_fraud",
                "--end", end.isoformat(),
                "--label-cutoff", cutoff.isoformat(), "--workers", workers,
            )  # fmt: skip
        contextlake(
            dsn, "train", "--data", str(data), "--name", "fraud", "--test-from", test_from.isoformat(),
            "--status", "active",
        )  # fmt: skip
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        contextlake(
            dsn, "freshness-cost", "--model", "fraud", "--label", "card_fraud",
            "--start", test_from.isoformat(), "--end", end.isoformat(),
            "--label-cutoff", cutoff.isoformat(), "--workers", "2", "--plot", args.plot,
        )  # fmt: skip


if __name__ == "__main__":
    main()
