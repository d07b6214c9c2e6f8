"""Benchmark: admission control under overload, with wrk (a C load generator), in one run.

`contextlake serve` (one worker, default pool) twice on the same lake: with admission control
(--max-in-flight, --max-waiting; 5 and 5 by default, the better setting for this CPU-bound worker),
and with admission control off (every request admitted: the unshedded service). wrk posts
/v1/score for random quiet cards from C connections, one connection per wrk thread, so that
bench/wrk/classified.lua times each request and splits the latencies by answer (200, 503, other).
Rounds alternate the runs; a run's figures are its accepted (200) and shed (503) rates and p50/p99.

Targets: at 200 connections the p99 of accepted requests within 4x of their p99 at 16 connections;
shed requests answered within 10 ms (their p99); accepted throughput within 20% of the unshedded
maximum (the best rate of the service without admission control at 16 or 200 connections).

Uses DATABASE_URL when set, else starts a throwaway cluster with the lake settings. Needs wrk
(`apt-get install wrk`).
Usage: .venv/bin/python bench/overload.py [--seconds 15] [--rounds 2] [--low 16] [--high 200]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_database, server, service  # noqa: E402
from bench.service import prepare_lake  # noqa: E402

HERE = Path(__file__).resolve().parent
# wrk runs one thread per connection; confined to the last core, so that two hundred runnable
# threads of the load generator do not take the service's and PostgreSQL's share of the machine.
PIN = ["taskset", "-c", str((os.cpu_count() or 1) - 1)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
LINE = re.compile(r"CLASS (\S+) count=(\d+) rate=([\d.]+) p50=([\d.]+) p99=([\d.]+) max=([\d.]+)")


def wrk(url: str, key: str, connections: int, seconds: float, rate: float = 0) -> dict[str, dict[str, float]]:
    """One wrk run (each connection offering `rate` requests/s, or back to back when 0); per answer
    class: count, rate, p50, p99, max (ms)."""
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(connections),
            "-c",
            str(connections),
            "-d",
            f"{seconds:.0f}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / "wrk" / "classified.lua"),
            url,
        ],  # fmt: skip
        env=dict(os.environ, WRK_KEY=key, WRK_RATE=str(rate)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    classes = {}
    for m in LINE.finditer(out):
        classes[m[1]] = dict(zip(("count", "rate", "p50", "p99", "max"), map(float, m.groups()[1:]), strict=True))
    if not classes:
        raise RuntimeError(f"wrk printed no figures:\n{out}")
    return classes


def show(label: str, c: dict[str, dict[str, float]]) -> None:
    ok, shed, other = c["200"], c["503"], c["other"]
    print(
        f"  {label:<32} accepted {ok['rate']:7,.0f}/s p50 {ok['p50']:6.2f} p99 {ok['p99']:7.2f} ms | "
        f"shed {shed['rate']:7,.0f}/s p50 {shed['p50']:5.2f} p99 {shed['p99']:6.2f} ms | other {other['count']:.0f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--low", type=int, default=16, help="connections of the reference run")
    ap.add_argument("--high", type=int, default=200, help="connections of the overload runs")
    ap.add_argument("--overload", type=float, default=2.0, help="paced runs offer this multiple of the capacity")
    ap.add_argument("--max-in-flight", type=int, default=5, help="CONTEXTLAKE_MAX_IN_FLIGHT of the admitting service")
    ap.add_argument("--max-waiting", type=int, default=5, help="CONTEXTLAKE_MAX_WAITING of the admitting service")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/overload.py needs wrk: apt-get install wrk")
    with server() as base:
        dsn, _ = fresh_database(base, "bench_overload")
        key = prepare_lake(dsn, ["score"])
        runs: dict[str, list[dict[str, dict[str, float]]]] = {}
        limits = {
            "CONTEXTLAKE_MAX_IN_FLIGHT": str(args.max_in_flight),
            "CONTEXTLAKE_MAX_WAITING": str(args.max_waiting),
        }
        with service(dsn, **limits) as admitted, service(dsn, CONTEXTLAKE_MAX_IN_FLIGHT="1000000") as unshedded:
            for url in (admitted, unshedded):
                wrk(url, key, args.low, 3)  # warm-up: prepared statements, model sessions
            capacity = wrk(admitted, key, args.low, 5)["200"]["rate"]
            offered = args.overload * capacity
            print(
                f"one worker each ({args.max_in_flight} in progress and {args.max_waiting} waiting with admission), "
                f"{args.seconds:.0f} s per run, {args.rounds} rounds, quiet cards; capacity "
                f"{capacity:,.0f}/s at c{args.low}; paced runs offer {offered:,.0f}/s ({args.overload:g}x) "
                f"from {args.high} connections",
                flush=True,
            )
            per_connection = offered / args.high
            plan = [
                (f"admission, c{args.low}", admitted, args.low, 0.0),
                (f"admission, c{args.high} paced", admitted, args.high, per_connection),
                (f"no admission, c{args.high} paced", unshedded, args.high, per_connection),
                (f"no admission, c{args.low}", unshedded, args.low, 0.0),
                (f"admission, c{args.high} back to back", admitted, args.high, 0.0),
                (f"no admission, c{args.high} back to back", unshedded, args.high, 0.0),
            ]
            for r in range(args.rounds):
                print(f"round {r + 1}", flush=True)
                for label, url, c, rate in plan if r % 2 == 0 else reversed(plan):
                    result = wrk(url, key, c, args.seconds, rate)
                    runs.setdefault(label, []).append(result)
                    show(label, result)

    def mean(label: str, cls: str, fig: str) -> float:
        return sum(r[cls][fig] for r in runs[label]) / len(runs[label])

    low = f"admission, c{args.low}"
    unshedded_max = max(
        mean(f"no admission, c{args.low}", "200", "rate"), mean(f"no admission, c{args.high} paced", "200", "rate")
    )
    print(f"targets (means over the rounds; unshedded maximum {unshedded_max:,.0f}/s):")
    for load in ("paced", "back to back"):
        high = f"admission, c{args.high} {load}"
        p99_ratio = mean(high, "200", "p99") / mean(low, "200", "p99")
        shed_p99 = mean(high, "503", "p99")
        rate_ratio = mean(high, "200", "rate") / unshedded_max
        print(f"  c{args.high} {load}:")
        print(f"    accepted p99 / p99 at c{args.low}: {p99_ratio:.2f}x (target <= 4x): "
              f"{'met' if p99_ratio <= 4 else 'missed'}")  # fmt: skip
        print(f"    shed p99: {shed_p99:.2f} ms (target <= 10 ms): {'met' if shed_p99 <= 10 else 'missed'}")
        print(f"    accepted rate / unshedded maximum: {rate_ratio:.2f} (target >= 0.80): "
              f"{'met' if rate_ratio >= 0.8 else 'missed'}")  # fmt: skip
        print(f"    without admission: p99 {mean(f'no admission, c{args.high} {load}', '200', 'p99'):.1f} ms")


if __name__ == "__main__":
    main()
