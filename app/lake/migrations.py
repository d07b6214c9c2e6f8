"""Applies the engine, then a feature project, to a lake: in one transaction, all or nothing.

1. The engine's migrations (migrations/NNNN_verb_noun.sql): tables and types, append-only.
2. The engine's code (sql/NN_*.sql): functions, views and triggers, installed again whenever their
   text (or roles.sql) changed; functions and views an earlier release had and this one does not are
   dropped; then every grant (sql/roles.sql); then every object generated from the catalog is
   generated again.
3. The project's migrations (DIR/migrations/NNNN_*.sql), a chain of their own.

Each applied migration is recorded with its checksum; an applied migration whose file was edited or
removed stops the run. A lake made by release 0.1.0 (Alembic revisions 0001-0009) is adopted: its
engine tables count as engine migration 0001 and its history is kept as chain `legacy`, so a
project migration that says `-- replaces: NAME` of a legacy revision is recorded, not run again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg

from app.lake import files
from app.lake.project import MIGRATION_FILE, Project, ProjectError
from app.lake.queries import query

ENGINE = "engine"
LEGACY = "legacy"
LEGACY_RELEASE_HEAD = "0009"  # the last Alembic revision of release 0.1.0
REPLACES = re.compile(r"^--\s*replaces:\s*(\S+)\s*$", re.MULTILINE)


class MigrationError(RuntimeError):
    """The lake and the migrations at hand do not fit together, or a migration failed (nothing was changed)."""


@dataclass(frozen=True)
class Migration:
    chain: str
    version: int
    path: Path

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def replaces(self) -> str | None:
        m = REPLACES.search(self.text)
        return m.group(1) if m else None


@dataclass(frozen=True)
class Applied:
    chain: str
    version: int
    name: str
    sha256: str
    adopted: bool
    applied_at: datetime


@dataclass
class Plan:
    """What a run finds and does. `pending` lists migrations to run, `adopt` those recorded without running."""

    applied: list[Applied] = field(default_factory=list)
    engine: list[Migration] = field(default_factory=list)
    code_changed: bool = False
    project: Project | None = None
    pending: list[Migration] = field(default_factory=list)
    adopt: list[Migration] = field(default_factory=list)
    legacy_adopted: bool = False
    regenerated: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not (self.engine or self.code_changed or self.pending or self.adopt or self.legacy_adopted)


def read_chain(chain: str, folder: Path) -> list[Migration]:
    """The numbered migrations of a folder, in order; refuses misnamed files and duplicate numbers."""
    if not folder.is_dir():
        return []
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        m = MIGRATION_FILE.match(path.name)
        if not m:
            raise ProjectError(f"{path}: a migration file is named NNNN_verb_noun.sql (four digits, lower case)")
        version = int(m.group(1))
        if version in found:
            raise ProjectError(f"{path} and {found[version].path} share the number {version:04d}: renumber one")
        found[version] = Migration(chain, version, path)
    return [found[v] for v in sorted(found)]


def code_checksum() -> str:
    digest = hashlib.sha256()
    for path in files.installed_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _execute(conn: psycopg.Connection, path: Path, what: str) -> None:
    """Run one SQL file in the run's transaction; a failure names the file (and the run rolls back).
    No savepoint: what the engine's code (re)creates is recognised by the transaction id on its rows."""
    try:
        conn.execute(path.read_bytes())
    except psycopg.Error as exc:
        diag = exc.diag
        where = f" (at character {diag.statement_position})" if diag.statement_position else ""
        detail = "".join(
            f"\n  {k}: {v}"
            for k, v in (("detail", diag.message_detail), ("hint", diag.message_hint), ("context", diag.context))
            if v
        )
        message = diag.message_primary or str(exc).strip()
        raise MigrationError(f"{what} {path} failed{where}: {message}{detail}\nnothing was applied") from None


def _applied(conn: psycopg.Connection) -> list[Applied]:
    return [Applied(*row) for row in conn.execute(query("applied_migrations")).fetchall()]


def _adopt_legacy(conn: psycopg.Connection, engine: list[Migration]) -> bool:
    """Record a release-0.1.0 lake's history in the new bookkeeping (once)."""
    if not conn.execute(query("has_legacy_bookkeeping")).fetchone()[0]:  # type: ignore[index]
        return False
    row = conn.execute(query("legacy_revision")).fetchone()
    revision = row[0] if row else None
    if revision != LEGACY_RELEASE_HEAD:
        raise MigrationError(
            f"this lake is at migration {revision} of a development build before release 0.1.0: "
            f"migrate it with release 0.1.0 (revision {LEGACY_RELEASE_HEAD}) first"
        )
    first = engine[0]
    conn.execute(
        query("record_migration"),
        {
            "chain": ENGINE,
            "version": first.version,
            "name": first.name,
            "sha256": first.sha256,
            "adopted": True,
            "applied_at": None,
        },
    )
    for rev, name, sha, at in conn.execute(query("legacy_checksums")).fetchall():
        conn.execute(
            query("record_migration"),
            {"chain": LEGACY, "version": int(rev), "name": name, "sha256": sha, "adopted": True, "applied_at": at},
        )
    conn.execute(query("drop_legacy_bookkeeping"))
    conn.execute(query("revoke_legacy_grants"))
    return True


def _check_applied(chain: str, found: list[Migration], applied: list[Applied], where: Path) -> list[Migration]:
    """Pending migrations of a chain; refuses edited, removed or out-of-order files."""
    by_version = {m.version: m for m in found}
    done = {a.version: a for a in applied if a.chain == chain}
    for a in done.values():
        m = by_version.get(a.version)
        if m is None:
            raise MigrationError(f"migration {a.name} of {chain} was applied but no file {where}/{a.name}.sql has it")
        if m.name != a.name or m.sha256 != a.sha256:
            raise MigrationError(
                f"{m.path} was edited after it was applied to this lake (as {a.name}, sha256 {a.sha256[:12]}, "
                f"now {m.sha256[:12]}): applied migrations are immutable; restore it and make the change in a new "
                "migration (contextlake new-migration)"
            )
    pending = [m for m in found if m.version not in done]
    newest = max(done, default=0)
    late = [m for m in pending if m.version < newest]
    if late:
        raise MigrationError(
            f"{late[0].path} comes before migration {newest:04d}, which is already applied: give it a number after "
            f"{newest:04d}"
        )
    return pending


def _plan(conn: psycopg.Connection, project: Project | None) -> Plan:
    conn.execute(query("migration_lock"))
    conn.execute(query("create_bookkeeping"))
    engine = read_chain(ENGINE, files.MIGRATIONS_DIR)
    plan = Plan(project=project, legacy_adopted=_adopt_legacy(conn, engine))
    plan.applied = _applied(conn)
    plan.engine = _check_applied(ENGINE, engine, plan.applied, files.MIGRATIONS_DIR)
    row = conn.execute(query("installed_code")).fetchone()
    plan.code_changed = bool(plan.engine) or row is None or row[0] != code_checksum()
    if project is not None:
        chain = read_chain(project.name, project.migrations_dir)
        legacy = {a.name for a in plan.applied if a.chain == LEGACY}
        for m in _check_applied(project.name, chain, plan.applied, project.migrations_dir):
            (plan.adopt if m.replaces in legacy else plan.pending).append(m)
    return plan


def _install_code(conn: psycopg.Connection, plan: Plan) -> None:
    for path in files.code_files():
        _execute(conn, path, "engine file")
    for name in conn.execute(query("stale_engine_views")).fetchall():
        conn.execute(f"DROP VIEW {name[0]}")
        plan.dropped.append(name[0])
    for name in conn.execute(query("stale_engine_routines")).fetchall():
        try:
            with conn.transaction():
                conn.execute(f"DROP ROUTINE {name[0]}")
        except psycopg.Error as exc:
            raise MigrationError(f"cannot drop {name[0]}, which this engine no longer has: {exc}") from None
        plan.dropped.append(name[0])
    # Grants after the stale check: granting touches every function's row, as (re)creating one does.
    _execute(conn, files.ROLES_FILE, "engine file")
    plan.regenerated = [(k, n) for k, n in conn.execute(query("regenerate")).fetchall()]
    conn.execute(query("record_code"), {"sha256": code_checksum()})


def _record(conn: psycopg.Connection, m: Migration, adopted: bool) -> None:
    conn.execute(
        query("record_migration"),
        {
            "chain": m.chain,
            "version": m.version,
            "name": m.name,
            "sha256": m.sha256,
            "adopted": adopted,
            "applied_at": None,
        },
    )


def migrate(dsn: str, project: Project | None = None, dry_run: bool = False) -> Plan:
    """Bring the lake to this engine and the project's migrations, or, when a step fails, leave it as it was."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET LOCAL client_min_messages = warning")
        plan = _plan(conn, project)
        if dry_run:
            conn.rollback()
            return plan
        for m in plan.engine:
            _execute(conn, m.path, "engine migration")
            _record(conn, m, adopted=False)
        if plan.code_changed:
            _install_code(conn, plan)
        for m in plan.adopt:
            _record(conn, m, adopted=True)
        for m in plan.pending:
            _execute(conn, m.path, f"migration {m.version:04d} of project {m.chain}:")
            _record(conn, m, adopted=False)
        if not plan.code_changed:
            # Grants are asserted on every run: a database's own (CONNECT, TEMPORARY) do not travel with
            # a dump or a template copy.
            _execute(conn, files.ROLES_FILE, "engine file")
        conn.commit()
    return plan


def upgrade(dsn: str, project: Project | None = None) -> Plan:
    """The engine (and a project) applied; the name the service, tests and benchmarks use."""
    return migrate(dsn, project)


def status(dsn: str, project: Project | None = None) -> Plan:
    """What is applied and what is pending, changing nothing."""
    return migrate(dsn, project, dry_run=True)
