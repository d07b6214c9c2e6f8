"""A lake as release 0.1.0 (commit 9235e6c) made it: its migrations and engine files taken from the
repository's history and run the way its runner ran them (each revision's SQL with its `\\ir`
includes expanded, its checksum recorded, the Alembic version table at the last revision)."""

from __future__ import annotations

import hashlib
import posixpath
import re
import subprocess
from pathlib import Path

import psycopg

RELEASE = "9235e6c"
ROOT = Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r"^\\ir\s+(\S+)\s*$", re.MULTILINE)


def available() -> bool:
    done = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{RELEASE}^{{commit}}"], capture_output=True)
    return done.returncode == 0


def _show(path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{RELEASE}:{path}"], capture_output=True, text=True, check=True
    ).stdout


def _expand(path: str) -> str:
    def include(m: re.Match[str]) -> str:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), m.group(1)))
        return f"-- included: {m.group(1)}\n{_expand(target)}"

    return INCLUDE.sub(include, _show(path))


def revisions() -> list[str]:
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{RELEASE}:migrations/versions/"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return sorted(name[:-4] for name in listing if name.endswith(".sql"))


def build(dsn: str) -> None:
    """Migrate an empty database to release 0.1.0's head (revision 0009)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS lake")
        conn.execute(
            "CREATE TABLE lake.migration_checksums (revision text PRIMARY KEY, name text NOT NULL, "
            "sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            "CREATE TABLE lake.alembic_version (version_num varchar(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
        conn.commit()
        for name in revisions():
            payload = _expand(f"migrations/versions/{name}.sql")
            conn.execute(payload.encode())
            conn.execute(
                "INSERT INTO lake.migration_checksums (revision, name, sha256) VALUES (%s, %s, %s)",
                (name[:4], name, hashlib.sha256(payload.encode()).hexdigest()),
            )
            conn.execute("DELETE FROM lake.alembic_version")
            conn.execute("INSERT INTO lake.alembic_version VALUES (%s)", (name[:4],))
            conn.commit()


def add_revision(dsn: str, name: str, sql: str) -> None:
    """A revision a user of release 0.1.0 added after its own (0010 on), applied as its runner did."""
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.encode())
        conn.execute(
            "INSERT INTO lake.migration_checksums (revision, name, sha256) VALUES (%s, %s, %s)",
            (name[:4], name, hashlib.sha256(sql.encode()).hexdigest()),
        )
        conn.execute("UPDATE lake.alembic_version SET version_num = %s", (name[:4],))
