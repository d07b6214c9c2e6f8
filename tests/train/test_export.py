"""contextlake export-training: every exported row equals its from-scratch recomputation from the raw
events before it, labels are those known at the cutoff, parallel exports equal serial ones, and bad
requests get clear errors."""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from app.train.export import TrainingSet, export
from examples.cards.generator import Params, generate
from examples.cards.output import into_lake
from tests.cards import land_txn
from tests.cli_run import contextlake

START = datetime(2026, 9, 1, tzinfo=UTC)
PARAMS = Params(seed=11, cards=120, merchants=80, start=START, days=9, fraud_share=0.15)
CUTOFF = START + timedelta(days=8)


@pytest.fixture
def lake(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        into_lake(generate(PARAMS), conn, None)
    return dsn


def training_set(**kw: Any) -> TrainingSet:
    values: dict[str, Any] = dict(
        feature_set="fraud", version=1, label="card_fraud", start=START, end=START + timedelta(days=9), cutoff=CUTOFF
    )
    values.update(kw)
    return TrainingSet(**values)


def raw(dsn: str) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, list[datetime]], dict[str, datetime]]:
    with psycopg.connect(dsn) as conn:
        txs = conn.execute(
            "SELECT card_id, event_time, amount, merchant_id, country FROM cards.transactions ORDER BY event_time"
        ).fetchall()
        cbs = conn.execute(
            "SELECT card_id, reported_at, event_id FROM cards.chargebacks ORDER BY reported_at"
        ).fetchall()
    by_card: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for t in txs:
        by_card[t[0]].append(t)
    cb_times: dict[str, list[datetime]] = defaultdict(list)
    for c in cbs:
        cb_times[c[0]].append(c[1])
    return by_card, cb_times, {c[2]: c[1] for c in cbs}


def recompute(
    events: list[tuple[Any, ...]], chargebacks: list[datetime], as_of: datetime
) -> dict[str, float | str | None]:
    """The features of one card as of `as_of`, from its raw events (windows are (as_of - w, as_of])."""
    past = events[: bisect.bisect_right([e[1] for e in events], as_of)]

    def window(seconds: int) -> list[tuple[Any, ...]]:
        return [e for e in past if e[1] > as_of - timedelta(seconds=seconds)]

    return {
        "card_txn_count": float(len(past)),
        "card_amount_sum": float(sum(e[2] for e in past)),
        "card_amount_max": float(max(e[2] for e in past)) if past else None,
        "card_last_country": past[-1][4] if past else None,
        "card_txn_count_60s": float(len(window(60))),
        "card_merchants_5m": float(len({e[3] for e in window(300)})),
        "card_txn_count_1h": float(len(window(3600))),
        "card_amount_sum_24h": float(sum(e[2] for e in window(86400))),
        "card_chargeback_count": float(sum(1 for c in chargebacks if c <= as_of)),
    }


def test_every_row_equals_its_recomputation_from_earlier_raw_events(lake: str, tmp_path: Path) -> None:
    out = tmp_path / "train.parquet"
    result = export(lake, training_set(), out)
    table = pq.read_table(out)
    rows = table.to_pylist()
    by_card, cb_times, reported = raw(lake)
    assert result.rows == len(rows) == sum(1 for e in by_card.values() for t in e if t[1] <= CUTOFF)
    assert table.column_names[:5] == ["event_id", "entity", "event_time", "as_of", "label"]
    times = [(r["event_time"], r["event_id"]) for r in rows]
    assert times == sorted(times)
    checked = 0
    for r in rows:
        assert r["as_of"] == r["event_time"] - timedelta(microseconds=1)
        expected = recompute(by_card[r["entity"]], cb_times[r["entity"]], r["as_of"])
        for name, value in expected.items():
            if isinstance(value, float):
                assert r[name] == pytest.approx(value, rel=1e-12, abs=1e-9), (r["event_id"], name)
            else:
                assert r[name] == value, (r["event_id"], name)
            checked += 1
        # The label as known at the cutoff: a chargeback naming the event, reported by then.
        assert r["label"] == (r["event_id"] in reported and reported[r["event_id"]] <= CUTOFF)
    assert checked > 5000
    assert 0 < result.positives == sum(r["label"] for r in rows)
    # Some chargebacks came after the cutoff, so the cutoff mattered.
    assert any(t > CUTOFF for t in reported.values())


def test_parallel_export_equals_serial_export(lake: str, tmp_path: Path) -> None:
    # Events at one instant on many cards (so in both parts), with ids that order differently by
    # collation and by byte: the parts must merge in the export's (time, id in byte order) order.
    same_time = START + timedelta(days=3, hours=12)
    ids = ["Zed", "alpha", "Beta", "éclair", "_under", "Alpha", "zeta", "Éclat"]
    with psycopg.connect(lake) as conn:
        for n, event_id in enumerate(ids):
            land_txn(conn, event_id, f"card-{n:06d}", "m000001", 5, same_time)
    export(lake, training_set(), tmp_path / "one.parquet")
    export(lake, training_set(), tmp_path / "two.parquet", workers=2, batch=97)
    one, two = pq.read_table(tmp_path / "one.parquet"), pq.read_table(tmp_path / "two.parquet")
    assert one.num_rows > 500
    assert one.equals(two)
    tied = [r["event_id"] for r in one.to_pylist() if r["event_time"] == same_time]
    assert tied == sorted(ids, key=str.encode)


def test_export_is_point_in_time_not_as_of_now(lake: str, tmp_path: Path) -> None:
    """A vector read lagging by an hour equals the recomputation an hour before each event."""
    out = tmp_path / "lagged.parquet"
    export(lake, training_set(offset=timedelta(hours=1)), out)
    by_card, cb_times, _ = raw(lake)
    rows = pq.read_table(out).to_pylist()
    for r in rows[::7]:
        assert r["as_of"] == r["event_time"] - timedelta(hours=1)
        expected = recompute(by_card[r["entity"]], cb_times[r["entity"]], r["as_of"])
        assert r["card_txn_count"] == expected["card_txn_count"]
        assert r["card_amount_sum_24h"] == pytest.approx(expected["card_amount_sum_24h"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": "no_such_label"}, "unknown label no_such_label"),
        ({"feature_set": "nope"}, "unknown feature set"),
        ({"offset": timedelta(0)}, "the offset must be positive"),
        ({"end": START}, "start < end"),
    ],
)
def test_bad_requests_get_a_clear_error(lake: str, tmp_path: Path, change: dict[str, Any], message: str) -> None:
    out = tmp_path / "bad.parquet"
    with pytest.raises((psycopg.Error, ValueError), match=message):
        export(lake, training_set(**change), out)
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written


def test_cli_export_training(lake: str, tmp_path: Path) -> None:
    out = tmp_path / "cli.parquet"
    args = ("export-training", "--out", str(out), "--feature-set", "fraud", "--label-cutoff", CUTOFF.isoformat())
    done = contextlake(*args, "--label", "card_fraud", "--workers", "2", dsn=lake)
    assert done.returncode == 0, done.stderr
    assert "rows/s" in done.stdout and "100.0%" in done.stderr
    direct = tmp_path / "direct.parquet"
    with psycopg.connect(lake) as conn:
        first = conn.execute("SELECT min(event_time) FROM cards.transactions").fetchone()[0]  # type: ignore[index]
    export(lake, training_set(start=first, end=CUTOFF), direct)
    assert pq.read_table(out).equals(pq.read_table(direct))
    bad = contextlake(*args, "--label", "missing", dsn=lake)
    assert bad.returncode == 2 and "unknown label missing" in bad.stderr
