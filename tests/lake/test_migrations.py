"""Migrations: the engine's chain, its code and a project's chain, applied once each, in order, in one
transaction; checksummed; a failure names its file and leaves the lake as it was."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import psycopg
import pytest

from app.lake import files
from app.lake.migrations import MigrationError, migrate, status
from app.lake.project import Project, ProjectError, load
from app.lake.queries import query
from examples.cards.sql import PROJECT_DIR, cards_project
from tests import catalog


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_of_cards(tmp_path: Path) -> Project:
    target = tmp_path / "cards"
    shutil.copytree(PROJECT_DIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return load(target)


def catalog_rows(conn: psycopg.Connection) -> tuple[object, ...]:
    return (
        conn.execute("SELECT name, kind, source, version FROM lake.features ORDER BY name").fetchall(),
        conn.execute("SELECT name, version, features FROM lake.feature_sets ORDER BY 1, 2").fetchall(),
        conn.execute("SELECT name, tracked_columns, distinct_columns, grains FROM lake.sources ORDER BY 1").fetchall(),
        conn.execute("SELECT chain, version, name, sha256 FROM lake.applied_migrations ORDER BY 1, 2").fetchall(),
        conn.execute("SELECT sha256 FROM lake.installed_code").fetchall(),
        conn.execute("SELECT count(*) FROM pg_proc WHERE pronamespace = 'lake_gen'::regnamespace").fetchone(),
    )


def test_every_migration_recorded_with_its_checksum(conn: psycopg.Connection, dsn: str) -> None:
    rows = conn.execute("SELECT chain, name, sha256, adopted FROM lake.applied_migrations ORDER BY 1, 2").fetchall()
    project = cards_project()
    expected = [("cards", p.stem, sha256(p), False) for p in sorted(project.migrations_dir.glob("*.sql"))]
    expected += [("engine", p.stem, sha256(p), False) for p in sorted(files.MIGRATIONS_DIR.glob("*.sql"))]
    assert rows == expected
    assert status(dsn, project).nothing_to_do


def test_migrate_again_changes_nothing(conn: psycopg.Connection, dsn: str) -> None:
    before = catalog_rows(conn), catalog.snapshot(dsn)
    plan = migrate(dsn, cards_project())
    assert plan.nothing_to_do
    assert (catalog_rows(conn), catalog.snapshot(dsn)) == before


def test_engine_alone_has_no_example(empty_dsn: str) -> None:
    plan = migrate(empty_dsn)
    assert [m.name for m in plan.engine] == [p.stem for p in sorted(files.MIGRATIONS_DIR.glob("*.sql"))]
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT to_regnamespace('cards')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM lake.sources").fetchone() == (0,)
        assert conn.execute("SELECT to_regprocedure('lake.define_feature_set(text, int, text[])')").fetchone() != (
            None,
        )


def test_dry_run_and_status_change_nothing(empty_dsn: str) -> None:
    plan = migrate(empty_dsn, cards_project(), dry_run=True)
    assert plan.engine and plan.code_changed and [m.name for m in plan.pending][0] == "0001_create_card_landing"
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT to_regnamespace('lake')").fetchone() == (None,)
    migrate(empty_dsn)
    plan = status(empty_dsn, cards_project())
    assert not plan.engine and not plan.code_changed and len(plan.pending) == 4
    assert {a.chain for a in plan.applied} == {"engine"}
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT to_regnamespace('cards')").fetchone() == (None,)


def test_edited_applied_migration_is_refused(conn: psycopg.Connection, dsn: str, tmp_path: Path) -> None:
    project = copy_of_cards(tmp_path)
    landing = project.migrations_dir / "0001_create_card_landing.sql"
    landing.write_text(landing.read_text() + "\n-- an afterthought\n")
    with pytest.raises(MigrationError, match=r"0001_create_card_landing.sql was edited after it was applied"):
        migrate(dsn, project)
    landing.unlink()
    with pytest.raises(MigrationError, match=r"0001_create_card_landing of cards was applied but no file"):
        migrate(dsn, project)


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
    "syntax error": ("SELEC 1;", r"syntax error"),
}


@pytest.mark.parametrize("case", sorted(BAD_DEFINITIONS))
def test_failing_migration_names_its_file_and_leaves_the_lake_as_it_was(
    case: str, conn: psycopg.Connection, dsn: str, tmp_path: Path
) -> None:
    body, message = BAD_DEFINITIONS[case]
    project = copy_of_cards(tmp_path)
    # A good migration and a good definition before the bad one must be rolled back too, and so must a
    # reinstall of the engine's code that the same run does first.
    (project.migrations_dir / "0005_add_two_minute_count.sql").write_text(
        "SELECT lake.define_feature('card_txn_count_2m', 'card_txn', 'count', p_window => '2 minutes');\n"
    )
    (project.migrations_dir / "0006_bad_definition.sql").write_text(
        "SELECT lake.define_feature('card_txn_count_3m', 'card_txn', 'count', p_window => '3 minutes');\n" + body
    )
    conn.execute("UPDATE lake.installed_code SET sha256 = 'stale'")
    before = catalog_rows(conn)
    with pytest.raises(MigrationError, match=message) as err:
        migrate(dsn, project)
    assert str(project.migrations_dir / "0006_bad_definition.sql") in str(err.value)
    assert "nothing was applied" in str(err.value)
    assert catalog_rows(conn) == before


def test_misnamed_duplicate_and_late_files_are_refused(dsn: str, tmp_path: Path) -> None:
    project = copy_of_cards(tmp_path)
    extra = project.migrations_dir / "0005_fine.sql"
    extra.write_text("SELECT 1;")
    (project.migrations_dir / "5_bad_name.sql").write_text("SELECT 1;")
    with pytest.raises(ProjectError, match="named NNNN_verb_noun.sql"):
        migrate(dsn, project)
    (project.migrations_dir / "5_bad_name.sql").rename(project.migrations_dir / "0005_twin.sql")
    with pytest.raises(ProjectError, match="share the number 0005"):
        migrate(dsn, project)
    (project.migrations_dir / "0005_twin.sql").unlink()
    migrate(dsn, project)
    late = project.migrations_dir / "0000_late.sql"
    late.write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="comes before migration 0005, which is already applied"):
        migrate(dsn, project)


def test_what_an_engine_no_longer_has_is_dropped_and_nothing_else(conn: psycopg.Connection, dsn: str) -> None:
    # As an earlier release would have left them: a function and a view its code installed (recorded)...
    conn.execute("CREATE FUNCTION lake.retired_helper(int) RETURNS int LANGUAGE sql AS 'SELECT $1'")
    conn.execute("CREATE VIEW lake.retired_view AS SELECT 1 AS one")
    conn.execute(
        "INSERT INTO lake.engine_objects VALUES ('function', 'lake.retired_helper(integer)'), "
        "('view', 'lake.retired_view')"
    )
    # ... and what others put in the engine's schemas: a view of the project's own, an extension.
    conn.execute("CREATE VIEW api.card_activity AS SELECT name FROM api.sources")
    conn.execute("CREATE FUNCTION lake.cents(numeric) RETURNS bigint LANGUAGE sql AS 'SELECT ($1 * 100)::bigint'")
    conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA lake")
    assert migrate(dsn, cards_project()).nothing_to_do  # the code did not change: nothing is looked at
    conn.execute("UPDATE lake.installed_code SET sha256 = 'older release'")
    plan = migrate(dsn, cards_project())
    assert sorted(plan.dropped) == ["lake.retired_helper(integer)", "lake.retired_view"]
    assert ("feature set", "fraud v1") in plan.regenerated and ("source", "card_txn") in plan.regenerated
    assert conn.execute("SELECT to_regprocedure('lake.retired_helper(int)')").fetchone() == (None,)
    assert conn.execute("SELECT to_regprocedure('lake.define_rule(text, int, text, text, text, text)')").fetchone()
    assert conn.execute("SELECT to_regclass('api.card_activity')").fetchone() == ("api.card_activity",)
    assert conn.execute("SELECT lake.cents(1.5), length(lake.digest('x', 'sha256'))").fetchone() == (150, 32)
    recorded = {r[0] for r in conn.execute("SELECT identity FROM lake.engine_objects").fetchall()}
    assert "api.read_vector(text,text,timestamp with time zone,jsonb,integer)" in recorded
    assert not recorded & {"lake.cents(numeric)", "api.card_activity", "lake.digest(text, text)"}


def test_schema_file_is_what_the_migrations_build(empty_dsn: str) -> None:
    """sql/schema.sql plus the engine's code gives the same database as the engine's migrations."""
    migrate(empty_dsn)
    other = empty_dsn.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(other, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS from_schema_file WITH (FORCE)")
        admin.execute("CREATE DATABASE from_schema_file")
    schema_dsn = empty_dsn.rsplit("/", 1)[0] + "/from_schema_file"
    try:
        # The tables from the schema file; the bookkeeping and the code from the runner, as on any lake,
        # with the engine's chain recorded as applied so that only the code is installed.
        with psycopg.connect(schema_dsn) as conn:
            conn.execute(files.SCHEMA_FILE.read_bytes())
            conn.execute(query("create_bookkeeping"))
            for p in sorted(files.MIGRATIONS_DIR.glob("*.sql")):
                conn.execute(
                    query("record_migration"),
                    {
                        "chain": "engine",
                        "version": int(p.name[:4]),
                        "name": p.stem,
                        "sha256": sha256(p),
                        "adopted": False,
                        "applied_at": None,
                    },
                )
        migrate(schema_dsn)
        assert catalog.differences(catalog.snapshot(empty_dsn), catalog.snapshot(schema_dsn)) == []
    finally:
        with psycopg.connect(other, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS from_schema_file WITH (FORCE)")


def test_a_migration_that_ends_the_transaction_is_refused_before_anything_runs(
    conn: psycopg.Connection, dsn: str, tmp_path: Path
) -> None:
    project = copy_of_cards(tmp_path)
    (project.migrations_dir / "0005_create_schema.sql").write_text("CREATE SCHEMA p1;\n")
    (project.migrations_dir / "0006_split.sql").write_text(
        "-- COMMIT in a comment or a 'COMMIT;' string is fine\nCREATE TABLE p1.t (i int); COMMIT;\n"
    )
    conn.execute("UPDATE lake.installed_code SET sha256 = 'stale'")
    before = catalog_rows(conn)
    with pytest.raises(MigrationError, match=r"0006_split.sql: 'COMMIT' would end the transaction"):
        migrate(dsn, project)
    assert catalog_rows(conn) == before
    assert conn.execute("SELECT to_regnamespace('p1')").fetchone() == (None,)


def test_an_older_engine_is_never_installed_over_a_newer_one(conn: psycopg.Connection, dsn: str) -> None:
    conn.execute("UPDATE lake.installed_code SET version = '99.0.0', sha256 = 'newer'")
    with pytest.raises(MigrationError, match=r"runs the engine of contextlake 99.0.0, newer than this one"):
        migrate(dsn, cards_project())
    assert conn.execute("SELECT sha256 FROM lake.installed_code").fetchone() == ("newer",)


def test_an_upgrade_does_not_stop_landing(conn: psycopg.Connection, dsn: str) -> None:
    """Regenerating every object keeps the landing tables' triggers: events land while it runs."""
    with psycopg.connect(dsn) as upgrading:
        regenerated = upgrading.execute("SELECT count(*) FROM lake.regenerate()").fetchone()
        assert regenerated is not None and regenerated[0] >= 3  # open transaction, its locks held
        with psycopg.connect(dsn.replace("postgresql://postgres@", "postgresql://contextlake_service@")) as svc:
            svc.execute("SET statement_timeout = '2s'")
            ev = '{"event_id": "during", "merchant_id": "m", "amount": 3, "currency": "EUR", "country": "FR", ' \
                '"channel": "pos"}'  # fmt: skip
            assert svc.execute("SELECT api.land_event('card_txn', 'c1', %s)", (ev,)).fetchone() == ("during",)
            svc.commit()
        upgrading.commit()
    assert conn.execute("SELECT card_txn_count FROM api.read_fraud_v1('c1')").fetchone() == (1,)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"SELECT 1;\x00DROP SCHEMA lake CASCADE;", "holds a NUL byte"), (b"SELECT '\xff';", "is not UTF-8 text")],
)
def test_a_migration_that_is_not_sql_text_is_refused(
    conn: psycopg.Connection, dsn: str, tmp_path: Path, content: bytes, message: str
) -> None:
    project = copy_of_cards(tmp_path)
    (project.migrations_dir / "0005_odd.sql").write_bytes(content)
    before = catalog_rows(conn)
    with pytest.raises(MigrationError, match=message):
        migrate(dsn, project)
    assert catalog_rows(conn) == before


def test_a_settings_file_that_is_not_text_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "contextlake.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ProjectError, match="contextlake.toml"):
        load(tmp_path)
