"""Applies the migrations in migrations/ with Alembic (each in its own transaction, checksummed)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from app.paths import MIGRATIONS_DIR, PROJECT_ROOT


class MigrationError(RuntimeError):
    """The database and the migrations of this checkout do not fit together."""


def sqlalchemy_url(dsn: str) -> str:
    """psycopg 3 as the SQLAlchemy driver for a libpq URL."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    return dsn


def alembic_config(dsn: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("prepend_sys_path", str(PROJECT_ROOT))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    return cfg


def upgrade(dsn: str, target: str = "head") -> None:
    """Apply every pending migration up to target; refuses if an applied one was edited."""
    command.upgrade(alembic_config(dsn), target)


def pending(dsn: str) -> list[str]:
    """Revisions not yet applied, oldest first."""
    cfg = alembic_config(dsn)
    script = ScriptDirectory.from_config(cfg)
    engine = create_engine(sqlalchemy_url(dsn), poolclass=pool.NullPool)
    with engine.connect() as conn:
        has_lake = conn.exec_driver_sql("SELECT to_regclass('lake.alembic_version') IS NOT NULL").scalar()
        current = (
            MigrationContext.configure(conn, opts={"version_table_schema": "lake"}).get_current_revision()
            if has_lake
            else None
        )
    revs = [r.revision for r in script.walk_revisions("base", "heads")]
    revs.reverse()
    if current is None:
        return revs
    if current not in revs:
        raise MigrationError(
            f"the database is at migration {current}, which this checkout does not have: "
            "run a checkout that includes it"
        )
    return revs[revs.index(current) + 1 :]
