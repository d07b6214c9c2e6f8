"""A lake made by release 0.1.0 upgrades in place: `migrate` adopts its history, installs the current
engine, regenerates every generated object, and keeps every event, feature state, catalog row, model,
key and decision; vectors read the same and verify is clean; its catalog then equals a fresh lake's."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from app.lake import files, registry
from app.lake.cluster import Cluster
from app.lake.migrations import migrate, status
from app.lake.project import load
from examples.cards.generator import Params, generate
from examples.cards.output import into_lake
from examples.cards.sql import cards_project
from tests import catalog
from tests.cards import land_txn
from tests.lake import release_0_1_0
from tests.onnx_models import constant

pytestmark = pytest.mark.skipif(
    not release_0_1_0.available(), reason=f"commit {release_0_1_0.RELEASE} is not in this repository's history"
)
PARAMS = Params(seed=5, cards=120, merchants=60, start=datetime(2026, 9, 1, tzinfo=UTC), days=3, fraud_share=0.1)
AS_OF = PARAMS.start + timedelta(days=2, hours=7)
READ_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)  # after compaction: all history archived

TABLES = [
    "cards.transactions", "cards.chargebacks", "cards.profiles", "lake.sources", "lake.features",
    "lake.feature_sets", "lake.rules", "lake.models", "lake.api_keys", "lake.decisions", "lake.cdc_mappings",
    "lake.labels", "lake.replica_sources", "lake.settings", "lake_gen.card_txn_tiles", "lake_gen.card_chargeback_tiles",
]  # fmt: skip


def database(cluster: Cluster, name: str) -> Iterator[str]:
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    yield cluster.dsn(name)
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def old_lake(lake_cluster: Cluster) -> Iterator[str]:
    yield from database(lake_cluster, "lake_release_0_1_0")


@pytest.fixture
def new_lake(lake_cluster: Cluster) -> Iterator[str]:
    yield from database(lake_cluster, "lake_fresh_current")


def fill(dsn: str) -> None:
    """Events through the landing path, then compacted (their aggregates kept in archive rows), a replica
    source, a model, a key, decisions."""
    with psycopg.connect(dsn) as conn:
        into_lake(generate(PARAMS), conn, None)
        conn.execute("SELECT * FROM lake.compact()")
        for i in range(60):  # and recent events over the archive: raw windows, and tiles for the busy card
            land_txn(conn, f"recent-{i}", f"card-{i % 3:05d}", f"m{i % 7}", 3 + i, READ_AT - timedelta(minutes=60 - i))
        conn.execute("SELECT lake.enable_replica_maintenance('card_chargeback')")
        registry.register_model(conn, "fraud", constant(19, 0.2), "fraud", status="active")
        registry.create_api_key(conn, "scorer", ["score"])
        rows = [
            {"decision_id": str(uuid.UUID(int=i + 1)), "decided_at": AS_OF.isoformat(), "route": "score",
             "feature_set": "fraud", "feature_set_version": 1, "entity": f"card-{i:05d}", "request": {},
             "as_of": AS_OF.isoformat(), "snapshot": "1:1:", "features": {"card_txn_count": i}, "ages": {},
             "model": "fraud", "model_version": 1, "score": 0.2, "rule_hits": [], "reasons": [], "outcome": "approve",
             "latency_ms": {}}
            for i in range(5)
        ]  # fmt: skip
        conn.execute("SELECT lake.log_decisions(%s)", (Jsonb(rows),))
        conn.commit()


def contents(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        # Every row of every table, as json without the columns later engine migrations add (and the read
        # function's name, which moved from lake_gen to the contract schema api).
        rows = "to_jsonb(x) - 'defined_in' - 'read_function'"
        out: dict[str, Any] = {t: conn.execute(f"SELECT md5(string_agg(({rows})::text, ',' ORDER BY ({rows})::text)), "
                                               f"count(*) FROM {t} AS x").fetchone() for t in TABLES}  # fmt: skip
        cards = [r[0] for r in conn.execute("SELECT DISTINCT card_id FROM cards.chargebacks ORDER BY 1 LIMIT 20")]
        cards += [f"card-{i:05d}" for i in range(20)]
        out["vectors"] = [
            conn.execute(
                'SELECT features, rules FROM lake.read_vector(\'fraud\', %s, %s, \'{"amount": 75, "country": "FR"}\')',
                (card, at),
            ).fetchone()
            for card in cards
            for at in (READ_AT, READ_AT + timedelta(minutes=30))
        ]
        return out


def verify(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return (
            conn.execute("SELECT * FROM lake.verify_state()").fetchall()
            + conn.execute("SELECT * FROM lake.read_path_problems()").fetchall()
        )


def test_a_release_lake_upgrades_in_place(old_lake: str, new_lake: str) -> None:
    release_0_1_0.build(old_lake)
    fill(old_lake)
    with psycopg.connect(old_lake) as conn:  # what the vectors read is in archive rows, not raw events
        assert conn.execute("SELECT count(*) FROM lake_gen.card_txn_tiles WHERE grain = -1").fetchone()[0] > 50
        assert conn.execute("SELECT count(*) FROM cards.transactions").fetchone() == (60,)  # the recent ones
    before = contents(old_lake)
    assert verify(old_lake) == []

    looked = status(old_lake, cards_project())  # a dry run: it says what it would do, and does nothing
    assert looked.legacy_adopted and [m.name for m in looked.adopt][0] == "0001_create_card_landing"
    assert contents(old_lake) == before
    with psycopg.connect(old_lake) as conn:
        assert conn.execute("SELECT to_regclass('lake.alembic_version')").fetchone() == ("lake.alembic_version",)

    plan = migrate(old_lake, cards_project())
    assert plan.legacy_adopted and plan.code_changed
    assert [m.name for m in plan.adopt] == [p.stem for p in sorted(cards_project().migrations_dir.glob("*.sql"))]
    assert plan.pending == []  # the release already did what the example's migrations do
    assert ("replica source", "card_chargeback") in plan.regenerated

    assert contents(old_lake) == before
    assert verify(old_lake) == []
    assert migrate(old_lake, cards_project()).nothing_to_do
    with psycopg.connect(old_lake) as conn:
        chains = conn.execute("SELECT chain, count(*) FROM lake.applied_migrations GROUP BY 1 ORDER BY 1").fetchall()
        engine = len(list(files.MIGRATIONS_DIR.glob("*.sql")))
        assert chains == [("cards", 4), ("engine", engine), ("legacy", 9)]
        assert conn.execute("SELECT to_regclass('lake.alembic_version')").fetchone() == (None,)
        assert conn.execute("SELECT read_function::text FROM lake.feature_sets").fetchone() == (
            "api.read_fraud_v1(text,timestamp with time zone,jsonb)",
        )
        # Landing still maintains the state after the upgrade.
        land_txn(conn, "after-upgrade", "card-00001", "m1", 10)
        conn.commit()
    assert verify(old_lake) == []

    migrate(new_lake, cards_project())
    with psycopg.connect(new_lake) as conn:
        conn.execute("SELECT lake.enable_replica_maintenance('card_chargeback')")
        conn.commit()
    diffs = catalog.differences(catalog.snapshot(old_lake), catalog.snapshot(new_lake))
    assert diffs == [], "\n".join(diffs)


def test_a_release_lake_with_revisions_of_its_users_upgrades_too(old_lake: str, tmp_path: Path) -> None:
    release_0_1_0.build(old_lake)
    release_0_1_0.add_revision(
        old_lake, "0010_add_merchant_velocity",
        "SELECT lake.define_feature('card_merchants_1h', 'card_txn', 'count_distinct', 'merchant_id', '1 hour');",
    )  # fmt: skip
    project = tmp_path / "cards"
    shutil.copytree(cards_project().root, project, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (project / "migrations" / "0005_add_merchant_velocity.sql").write_text(
        "-- replaces: 0010_add_merchant_velocity\n"
        "SELECT lake.define_feature('card_merchants_1h', 'card_txn', 'count_distinct', 'merchant_id', '1 hour');\n"
    )
    plan = migrate(old_lake, load(project))
    assert [m.name for m in plan.adopt][-1] == "0005_add_merchant_velocity" and plan.pending == []
    with psycopg.connect(old_lake) as conn:
        assert conn.execute("SELECT max(version) FROM lake.applied_migrations WHERE chain = 'legacy'").fetchone() == (
            10,
        )
        assert conn.execute("SELECT count(*) FROM lake.features WHERE name = 'card_merchants_1h'").fetchone() == (1,)
    assert verify(old_lake) == []
