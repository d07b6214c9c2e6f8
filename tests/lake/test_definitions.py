"""Definitions over other column types, and the checks that keep a definition from breaking later reads."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

HERE = Path(__file__).parent
INSERT = "INSERT INTO other.readings (id, sensor, value, payload, at) VALUES (%s, %s, %s, %s, %s)"


@pytest.fixture
def other(conn: psycopg.Connection) -> psycopg.Connection:
    conn.execute((HERE / "other_source.sql").read_text())
    return conn


def read(conn: psycopg.Connection, key: str, as_of: datetime) -> dict:
    row = conn.execute("SELECT (v).features FROM lake.read_vector('sensor', %s, %s) v", (key, as_of)).fetchone()
    assert row is not None
    return row[0]


def test_float_sums_and_json_last_verify_clean(other: psycopg.Connection) -> None:
    rng = random.Random(5)
    now = datetime.now(UTC)
    i = 0
    for batch in range(40):
        rows = []
        for _ in range(rng.randint(1, 3)):
            i += 1
            rows.append(
                (i, f"s{i % 3}", rng.random() * 1000, f'{{"n": {i}}}', now - timedelta(seconds=rng.random() * 7200))
            )
        with other.cursor() as cur:
            cur.executemany(INSERT, rows) if batch % 2 else cur.execute(
                "INSERT INTO other.readings (id, sensor, value, payload, at) SELECT * FROM unnest("
                "%s::bigint[], %s::text[], %s::float8[], %s::json[], %s::timestamptz[])",
                [list(col) for col in zip(*rows, strict=True)],
            )
    assert other.execute("SELECT * FROM lake.verify_state()").fetchall() == []
    f = read(other, "s1", now)
    raw = other.execute(
        "SELECT sum(value), count(*) FILTER (WHERE at > %s - interval '1 day') FROM other.readings WHERE sensor = 's1'",
        (now,),
    ).fetchone()
    assert raw is not None
    assert f["reading_sum"] == pytest.approx(raw[0], rel=1e-12) and f["reading_count_1d"] == raw[1]
    assert isinstance(f["reading_last_payload"], dict)


def test_too_long_key_is_no_key_not_a_truncated_one(other: psycopg.Connection) -> None:
    other.execute(INSERT, (1, "abcdefgh", 2.0, None, datetime.now(UTC)))
    assert read(other, "abcdefgh", datetime.now(UTC))["reading_sum"] == 2.0
    assert read(other, "abcdefghXYZ", datetime.now(UTC))["reading_sum"] == 0


def test_windows_do_not_depend_on_the_session_time_zone(other: psycopg.Connection) -> None:
    # 1 day before 2026-11-01 12:00Z crosses the end of daylight saving time in New York.
    as_of = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    other.execute(INSERT, (1, "tz", 1.0, None, as_of - timedelta(hours=24, minutes=30)))
    other.execute(INSERT, (2, "tz", 1.0, None, as_of - timedelta(hours=1)))
    counts = set()
    for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
        other.execute(f"SET TimeZone = '{zone}'")
        counts.add(read(other, "tz", as_of)["reading_count_1d"])
    assert counts == {1}


def test_multi_row_insert_into_a_source_without_windows(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO cards.chargebacks (chargeback_id, event_id, card_id, reason_code, amount, reported_at) "
        "VALUES ('cb1', 'e1', 'c1', 'fraud', 10, now()), ('cb2', 'e2', 'c1', 'fraud', 5, now())"
    )
    with conn.cursor().copy(
        "COPY cards.chargebacks (chargeback_id, event_id, card_id, reason_code, amount, reported_at) FROM STDIN"
    ) as cp:
        cp.write_row(("cb3", "e3", "c1", "fraud", 1, datetime.now(UTC)))
        cp.write_row(("cb4", "e4", "c2", "fraud", 1, datetime.now(UTC)))
    f = conn.execute("SELECT (v).features FROM lake.read_vector('fraud', 'c1') v").fetchone()
    assert f is not None and f[0]["card_chargeback_count"] == 3


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            "SELECT lake.define_feature('bad_cold', 'reading', 'sum', 'value', '1 hour', p_cold_start => 'none')",
            r"cold-start value \'none\' is not a double precision",
        ),
        (
            "SELECT lake.define_batch_feature('bad_tier', 'card_profile', 'credit_tier', p_cold_start => 'x')",
            r"cold-start value 'x' is not a integer",
        ),
        ("SELECT lake.define_feature('bad_last', 'reading', 'last', 'tags')", r"last of an array column"),
        ("SELECT lake.define_feature('bad_sum', 'reading', 'sum', 'payload')", r"sum needs a numeric column"),
        ("SELECT lake.define_feature('bad_month', 'reading', 'count', p_window => '1 month')", r"months or years"),
        (
            "SELECT lake.define_feature('bad_agg', 'reading', 'last', 'value', '1 hour')",
            r'aggregate "last" is not available',
        ),
    ],
)
def test_definition_errors(other: psycopg.Connection, definition: str, message: str) -> None:
    with pytest.raises(psycopg.Error, match=message):
        other.execute(definition)


def test_longer_window_after_compaction_is_refused(other: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    for day in range(40):
        other.execute(INSERT, (day, "old", 1.0, None, now - timedelta(days=day, minutes=1)))
    removed = other.execute("SELECT raw_deleted FROM lake.compact() WHERE source = 'reading'").fetchone()
    assert removed is not None and removed[0] > 0
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no longer has"):
        other.execute("SELECT lake.define_feature('reading_count_30d', 'reading', 'count', p_window => '30 days')")
    other.execute("SELECT lake.define_feature('reading_count_2h', 'reading', 'count', p_window => '2 hours')")
