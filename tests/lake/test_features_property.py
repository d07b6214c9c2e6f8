"""Property: for random event streams landed by any path, in any order, every
feature read at any as_of equals a from-scratch recomputation over the raw events."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cards import COPY, insert_rows
from tests.cards import INSERT as INSERT_ONE

HERE = Path(__file__).parent

# Event times cluster within minutes (short windows, tile edges) and spread over days (long windows).
offsets = st.one_of(
    st.floats(min_value=0, max_value=120, allow_nan=False),
    st.floats(min_value=0, max_value=4 * 86400, allow_nan=False),
    st.integers(min_value=0, max_value=600).map(float),  # whole seconds: ties and exact tile edges
)
events = st.lists(
    st.tuples(
        st.integers(0, 2),  # entity
        offsets,
        st.decimals(min_value=0, max_value=999, places=2, allow_nan=False, allow_infinity=False),
        st.integers(0, 4),  # merchant
        st.sampled_from(["FR", "DE", "US"]),
    ),
    min_size=1,
    max_size=40,
)
paths = st.lists(st.tuples(st.sampled_from(["single", "multi", "copy"]), st.integers(1, 15)), min_size=1, max_size=6)
as_ofs = st.lists(
    st.one_of(offsets, st.floats(min_value=-10, max_value=5 * 86400, allow_nan=False)), min_size=1, max_size=6
)

counter = itertools.count()


def land(conn: psycopg.Connection, rows: list[tuple[object, ...]], plan: list[tuple[str, int]]) -> None:
    """Land rows in chunks, each chunk by single-row inserts, one multi-row INSERT, or COPY."""
    i = 0
    for method, size in itertools.cycle(plan):
        chunk = rows[i : i + size]
        if not chunk:
            return
        i += size
        with conn.transaction():
            if method == "single":
                for r in chunk:
                    conn.execute(INSERT_ONE, r)
            elif method == "multi":
                conn.execute(insert_rows(len(chunk)), [v for r in chunk for v in r])
            else:
                with conn.cursor().copy(COPY) as cp:
                    for r in chunk:
                        cp.write_row(r)


def exact(text: str) -> dict[str, object]:
    return json.loads(text, parse_float=Decimal)


def check_all(conn: psycopg.Connection, cards: list[str], base: datetime, times: list[float]) -> None:
    for card, t in itertools.product(cards, times):
        as_of = base + timedelta(seconds=t)
        got = conn.execute(
            "SELECT features::text, ages::text FROM lake.read_vector('prop', %s, %s)", (card, as_of)
        ).fetchone()
        want = exact(conn.execute("SELECT pg_temp.oracle(%s, %s)::text", (card, as_of)).fetchone()[0])  # type: ignore[index]
        assert got is not None
        features, ages = exact(got[0]), exact(got[1])
        want_age = want.pop("age")
        assert features == want, f"{card} as of {as_of}"
        assert all(a == want_age for a in ages.values()), f"ages of {card} as of {as_of}: {ages} vs {want_age}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stream=events,
    plan=paths,
    extra_times=as_ofs,
    base_shift=st.floats(0, 86400),
    threshold=st.sampled_from([1, 2, 5, 1000]),
)
def test_every_feature_equals_recomputation(
    conn: psycopg.Connection,
    stream: list[tuple],
    plan: list[tuple[str, int]],
    extra_times: list[float],
    base_shift: float,
    threshold: int,
) -> None:
    if conn.execute("SELECT to_regprocedure('pg_temp.oracle(text, timestamptz)')").fetchone() == (None,):
        conn.execute((HERE / "property_features.sql").read_text())
    # Entities switch from raw-only windows to tiles after `threshold` events landed in a day, mid-stream.
    conn.execute("SELECT lake.set_tile_threshold('card_txn', %s)", (threshold,))
    run = next(counter)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=6, seconds=base_shift)
    rows = [
        (f"p{run}-{i}", f"p{run}-card{e}", f"m{m}", amount, "EUR", country, "pos", None, base + timedelta(seconds=off))
        for i, (e, off, amount, m, country) in enumerate(stream)
    ]
    land(conn, rows, plan)
    cards = sorted({r[1] for r in rows}) + [f"p{run}-never-seen"]
    # Window edges exactly at, just before and just after event times, plus random times and "after everything".
    times = [off for _, off, *_ in stream[:4]]
    times += [t + d for t in times[:2] for d in (-1e-6, 1e-6, 7, 45, 600)]
    check_all(conn, cards, base, times + extra_times + [5 * 86400 + 3600])
    assert conn.execute("SELECT * FROM lake.verify_state()").fetchall() == []
    tiled = conn.execute(
        "SELECT count(*) FROM lake_gen.card_txn_tiles WHERE grain = 0 AND entity LIKE %s AND tiled_since IS NOT NULL",
        (f"p{run}-%",),
    ).fetchone()
    if threshold == 1:  # every entity is busy from its first event: the tile path is exercised
        assert tiled == (len(cards) - 1,)
    if threshold == 1000:
        assert tiled == (0,)
