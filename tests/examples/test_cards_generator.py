"""contextlake generate: byte-identical output per seed, realistic structure, injected fraud, late labels,
and an idempotent landing into the lake."""

from __future__ import annotations

import csv
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from examples.cards.generator import PATTERNS, Params, generate
from tests.cli_run import cards_example

SMALL = ("--cards", "300", "--merchants", "200", "--days", "6", "--fraud-share", "0.05")


def run_generate(*args: str, dsn: str | None = None) -> subprocess.CompletedProcess[str]:
    return cards_example("generate", *args, dsn=dsn)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_seed_gives_byte_identical_files(tmp_path: Path, fmt: str) -> None:
    outs = []
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        done = run_generate(*SMALL, "--seed", seed, "--format", fmt, "--out", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
        assert "100.0%" in done.stderr  # the progress bar ran to its end
        outs.append({p.name: p.read_bytes() for p in sorted((tmp_path / name).iterdir())})
    assert set(outs[0]) == {f"{t}.{fmt}" for t in ("transactions", "chargebacks", "profiles", "incidents")}
    assert outs[0] == outs[1]
    assert outs[0][f"transactions.{fmt}"] != outs[2][f"transactions.{fmt}"]


def test_stream_structure_fraud_patterns_and_late_labels(tmp_path: Path) -> None:
    done = run_generate(*SMALL, "--seed", "3", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    txs = read_csv(tmp_path / "transactions.csv")
    cbs = read_csv(tmp_path / "chargebacks.csv")
    incidents = read_csv(tmp_path / "incidents.csv")
    profiles = read_csv(tmp_path / "profiles.csv")
    assert len(profiles) == 300 and len({p["card_id"] for p in profiles}) == 300

    times = [datetime.fromisoformat(t["event_time"]) for t in txs]
    assert times == sorted(times)
    assert len({t["event_id"] for t in txs}) == len(txs)
    start, end = (
        datetime.fromisoformat("2026-09-01T00:00:00+00:00"),
        datetime.fromisoformat("2026-09-07T00:00:00+00:00"),
    )
    assert start <= times[0] and times[-1] < end
    # Daily seasonality: the busiest hours see several times the night's transactions.
    by_hour = Counter(t.hour for t in times)
    assert by_hour[12] + by_hour[19] > 4 * (by_hour[2] + by_hour[3])
    assert {t["channel"] for t in txs} == {"pos", "ecom", "atm", "moto"}
    assert len({t["country"] for t in txs}) >= 8

    # Every pattern is injected, after the first two days.
    assert {i["pattern"] for i in incidents} == set(PATTERNS)
    assert all(datetime.fromisoformat(i["started_at"]) >= start + timedelta(days=2) for i in incidents)
    by_id = {t["event_id"]: t for t in txs}
    for i in incidents:
        if i["pattern"] != "card_testing":
            continue
        began = datetime.fromisoformat(i["started_at"])
        burst = [
            t
            for t in txs
            if t["card_id"] == i["card_id"]
            and began <= datetime.fromisoformat(t["event_time"]) < began + timedelta(minutes=1)
        ]
        # Card testing: at least five tiny online amounts at several merchants within the minute.
        small = [t for t in burst if float(t["amount"]) <= 3.0 and t["channel"] == "ecom"]
        assert len(small) >= 5 and len({t["merchant_id"] for t in small}) >= 3

    # Labels: every chargeback names a generated transaction of its card, reported at least a day later
    # and before the period ends.
    assert cbs
    for cb in cbs:
        tx = by_id[cb["event_id"]]
        assert cb["card_id"] == tx["card_id"]
        reported = datetime.fromisoformat(cb["reported_at"])
        assert reported >= datetime.fromisoformat(tx["event_time"]) + timedelta(days=1)
        assert reported < end
    assert Counter(cb["reason_code"] for cb in cbs)["10.4"] > 0


def test_fraud_is_rare_and_mostly_disputed() -> None:
    g = generate(Params(seed=2, cards=1500, merchants=300, days=21, fraud_share=0.02))
    txs = list(g.transactions())
    frauds = {t.event_id for t in txs if t.fraud}
    assert 0.001 < len(frauds) / len(txs) < 0.02
    disputed = [c for c in g.chargebacks() if c.event_id in frauds]
    friendly = [c for c in g.chargebacks() if c.event_id not in frauds]
    assert len(disputed) > 0.4 * len(frauds)  # most fraud is disputed within the period...
    assert len(friendly) < len(disputed)  # ...and a few ordinary purchases are disputed too


def test_bad_parameters_get_a_clear_error(tmp_path: Path) -> None:
    done = run_generate("--cards", "0", "--out", str(tmp_path))
    assert done.returncode == 2 and "at least 1 card" in done.stderr
    done = run_generate("--start", "not-a-date", "--out", str(tmp_path))
    assert done.returncode == 2 and "--start: not an ISO 8601 time" in done.stderr


def test_generate_into_the_lake_is_idempotent(dsn: str, tmp_path: Path) -> None:
    files = run_generate(*SMALL, "--seed", "4", "--out", str(tmp_path))
    assert files.returncode == 0, files.stderr
    first = run_generate(*SMALL, "--seed", "4", dsn=dsn)
    assert first.returncode == 0, first.stderr
    again = run_generate(*SMALL, "--seed", "4", dsn=dsn)
    assert again.returncode == 0, again.stderr
    assert "already there" in again.stdout
    with psycopg.connect(dsn) as conn:
        landed = conn.execute("SELECT count(*), sum(amount) FROM cards.transactions").fetchone()
        labels = conn.execute("SELECT count(*) FROM cards.chargebacks").fetchone()
        profiles = conn.execute("SELECT count(*) FROM cards.profiles").fetchone()
        problems = conn.execute("SELECT count(*) FROM lake.verify_state()").fetchone()
    txs = read_csv(tmp_path / "transactions.csv")
    assert landed is not None and landed[0] == len(txs)
    assert float(landed[1]) == pytest.approx(sum(float(t["amount"]) for t in txs))
    assert labels == (len(read_csv(tmp_path / "chargebacks.csv")),)
    assert profiles == (300,)
    assert problems == (0,)
