"""Migrations are SQL files; each Alembic revision is a four-line wrapper that runs its sibling .sql file.

A line ``\\ir PATH`` in a migration includes another SQL file (relative to the
migration, as psql's ``\\ir`` does), which is how the first migration installs the
engine from ``sql/``. The checksum of what a migration ran (its text with every
include expanded) is recorded when it is applied and compared on every later run.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import psycopg
from alembic import op
from sqlalchemy.engine import Connection

INCLUDE = re.compile(r"^\\ir\s+(\S+)\s*$", re.MULTILINE)
VERSIONS_DIR = Path(__file__).resolve().parent / "versions"


class MigrationChecksumError(RuntimeError):
    """An applied migration's SQL no longer matches what was applied."""


def expand(path: Path) -> str:
    """The SQL a migration runs: its text with every ``\\ir`` include replaced by the included file."""
    text = path.read_text(encoding="utf-8")

    def include(m: re.Match[str]) -> str:
        target = (path.parent / m.group(1)).resolve()
        return f"-- included: {m.group(1)}\n{expand(target)}"

    return INCLUDE.sub(include, text)


def checksum(path: Path) -> str:
    return hashlib.sha256(expand(path).encode("utf-8")).hexdigest()


def apply(py_file: str, revision: str) -> None:
    """Run the .sql file beside an Alembic revision file, in the migration's transaction, and record its checksum."""
    sql_path = Path(py_file).with_suffix(".sql")
    payload = expand(sql_path)
    bind = op.get_bind()
    # The raw psycopg connection runs a multi-statement script (no bind parameters, no ':' parsing).
    raw = bind.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError(f"migrations run on psycopg 3, not {type(raw).__name__}")
    with raw.cursor() as cur:
        cur.execute(payload.encode("utf-8"))
        cur.execute(
            "INSERT INTO lake.migration_checksums (revision, name, sha256) VALUES (%s, %s, %s)",
            (revision, sql_path.stem, hashlib.sha256(payload.encode("utf-8")).hexdigest()),
        )


def ensure_bookkeeping(conn: Connection) -> None:
    """The schema and table the checksums live in, before the first migration runs."""
    conn.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS lake")
    conn.exec_driver_sql(
        "CREATE TABLE IF NOT EXISTS lake.migration_checksums ("
        " revision text PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )


def verify_applied(conn: Connection) -> None:
    """Refuse to go on if an applied migration's SQL was edited or removed since it ran."""
    rows = conn.exec_driver_sql("SELECT revision, name, sha256 FROM lake.migration_checksums ORDER BY revision").all()
    for revision, name, recorded in rows:
        path = VERSIONS_DIR / f"{name}.sql"
        if not path.exists():
            raise MigrationChecksumError(
                f"migration {name} (revision {revision}) was applied but its file {path} is gone"
            )
        current = checksum(path)
        if current != recorded:
            raise MigrationChecksumError(
                f"migration {name} (revision {revision}) was edited after it was applied: "
                f"recorded sha256 {recorded[:12]}, now {current[:12]}. Applied migrations are immutable: "
                "restore the file and put the change in a new migration"
            )
