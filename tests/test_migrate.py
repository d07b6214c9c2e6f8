"""Migrations: applied once, in order, each in a transaction, checksummed; bad definitions leave nothing behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from alembic import command

from app import migrate
from app.paths import MIGRATIONS_DIR
from migrations.sqlfile import MigrationChecksumError, checksum


def catalog_snapshot(conn: psycopg.Connection) -> tuple[object, ...]:
    return (
        conn.execute("SELECT name, kind, source, version FROM lake.features ORDER BY name").fetchall(),
        conn.execute("SELECT name, version, features FROM lake.feature_sets ORDER BY 1, 2").fetchall(),
        conn.execute("SELECT name, tracked_columns, distinct_columns, grains FROM lake.sources ORDER BY 1").fetchall(),
        conn.execute("SELECT version_num FROM lake.alembic_version").fetchall(),
        conn.execute("SELECT count(*) FROM pg_proc WHERE pronamespace = 'lake_gen'::regnamespace").fetchone(),
    )


def test_every_migration_recorded_with_its_checksum(conn: psycopg.Connection, dsn: str) -> None:
    rows = conn.execute("SELECT revision, name, sha256 FROM lake.migration_checksums ORDER BY revision").fetchall()
    files = sorted(p for p in (MIGRATIONS_DIR / "versions").glob("*.sql"))
    assert [r[1] for r in rows] == [p.stem for p in files]
    assert [r[2] for r in rows] == [checksum(p) for p in files]
    assert migrate.pending(dsn) == []


def test_upgrade_again_applies_nothing(conn: psycopg.Connection, dsn: str) -> None:
    before = catalog_snapshot(conn)
    migrate.upgrade(dsn)
    assert catalog_snapshot(conn) == before
    assert migrate.pending(dsn) == []
    migrations = len(list((MIGRATIONS_DIR / "versions").glob("*.sql")))
    assert conn.execute("SELECT count(*) FROM lake.migration_checksums").fetchone() == (migrations,)


def test_edited_applied_migration_is_refused(conn: psycopg.Connection, dsn: str) -> None:
    conn.execute("UPDATE lake.migration_checksums SET sha256 = repeat('0', 64) WHERE revision = '0002'")
    with pytest.raises(MigrationChecksumError, match=r"0002_create_card_landing .* was edited after it was applied"):
        migrate.upgrade(dsn)


def with_extra_migration(tmp_path: Path, body: str) -> Path:
    """A copy of migrations/ with one more revision 0099 whose SQL is `body`."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    # The copied migrations include ../../sql/*: point them back at the real engine files.
    for copied in (target / "versions").glob("*.sql"):
        copied.write_text(copied.read_text().replace("../../sql/", str(MIGRATIONS_DIR.parent / "sql") + "/"))
    head = max(p.name[:4] for p in (target / "versions").glob("[0-9]*.py"))
    (target / "versions" / "0099_bad_definition.sql").write_text(body)
    (target / "versions" / "0099_bad_definition.py").write_text(
        f"from migrations.sqlfile import apply\n\nrevision = '0099'\ndown_revision = '{head}'\n\n\n"
        "def upgrade() -> None:\n    apply(__file__, revision)\n"
    )
    return target


BAD_DEFINITIONS = {
    "unknown source column": (
        "SELECT lake.define_feature('card_amt_sum_1h', 'card_txn', 'sum', 'amt', '1 hour');",
        r'column "amt" does not exist in source table cards.transactions',
    ),
    "negative window": (
        "SELECT lake.define_feature('card_count_neg', 'card_txn', 'count', p_window => '-5 minutes');",
        r"window must be positive",
    ),
    "duplicate feature name": (
        "SELECT lake.define_feature('card_txn_count', 'card_txn', 'count', p_window => '10 minutes');",
        r'feature "card_txn_count" already exists',
    ),
    "unknown feature in a set": (
        "SELECT lake.define_feature_set('fraud', 2, ARRAY['card_txn_count', 'no_such_feature']);",
        r"unknown features \{no_such_feature\}",
    ),
    "volatile on-demand feature": (
        "SELECT lake.define_on_demand('noisy', 'random() * f.card_txn_count');"
        "SELECT lake.define_feature_set('fraud', 2, ARRAY['card_txn_count', 'noisy']);",
        r"calls VOLATILE function random\(\)",
    ),
    "rule over a missing feature": (
        "SELECT lake.define_rule('fraud', 1, 'bad', 'f.card_nothing > 1', 'review', 'x');",
        r'rule "bad": invalid expression',
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DEFINITIONS))
def test_bad_definition_fails_migration_and_leaves_catalog_unchanged(
    case: str, conn: psycopg.Connection, dsn: str, tmp_path: Path
) -> None:
    body, message = BAD_DEFINITIONS[case]
    # A good definition before the bad one in the same migration must be rolled back too.
    body = "SELECT lake.define_feature('card_txn_count_2m', 'card_txn', 'count', p_window => '2 minutes');\n" + body
    before = catalog_snapshot(conn)
    cfg = migrate.alembic_config(dsn)
    cfg.set_main_option("script_location", str(with_extra_migration(tmp_path, body)))
    with pytest.raises(Exception, match=message):
        command.upgrade(cfg, "head")
    assert catalog_snapshot(conn) == before
    assert conn.execute("SELECT count(*) FROM lake.migration_checksums WHERE revision = '0099'").fetchone() == (0,)
