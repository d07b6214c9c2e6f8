"""Applies the engine, then a feature project, to a lake: in one transaction, all or nothing.

1. The engine's migrations (migrations/NNNN_verb_noun.sql): tables and types, append-only.
2. The engine's code (sql/NN_*.sql): functions, views and triggers, installed again whenever their
   text (or roles.sql) changed, never over the code of a newer release; functions and views the last
   install had and this one does not are dropped (nothing else in the schemas is touched); then every
   grant (sql/roles.sql); then every object generated from the catalog is generated again.
3. The project's migrations (DIR/migrations/NNNN_*.sql), a chain of their own.

One migrator at a time (a session advisory lock taken before the transaction starts, so the run reads
what the previous one committed). Each applied migration is recorded with its checksum; an applied
migration whose file was edited or removed stops the run. A lake made by release 0.1.0 (Alembic
revisions 0001-0009, and any the lake's users added after them) is adopted: its engine tables count as
engine migration 0001 and its history is kept as chain `legacy`, so a project migration that says
`-- replaces: NAME` of a legacy revision is recorded, not run again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from app import __version__
from app.lake import files
from app.lake.chains import Applied, Migration, MigrationError, pending, read_chain
from app.lake.project import Project
from app.lake.queries import query

__all__ = ["MigrationError", "Plan", "migrate", "status"]

ENGINE = "engine"
LEGACY = "legacy"
LEGACY_RELEASE_HEAD = 9  # the engine's last Alembic revision in release 0.1.0


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


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def code_checksum() -> str:
    digest = hashlib.sha256()
    for path in files.installed_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _execute(conn: psycopg.Connection, path: Path, what: str, transaction: str) -> None:
    """Run one SQL file in the run's transaction; a failure names the file and nothing stays applied."""
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
    row = conn.execute(query("current_transaction")).fetchone()
    if row is None or row[0] != transaction:  # a procedure that commits, say: refuse what follows
        raise MigrationError(f"{what} {path} ended the run's transaction; what ran before it may be committed")


def _legacy(conn: psycopg.Connection) -> list[Applied] | None:
    """A release-0.1.0 lake's history as the new bookkeeping records it, or None for any other lake."""
    if not conn.execute(query("has_legacy_bookkeeping")).fetchone()[0]:  # type: ignore[index]
        return None
    row = conn.execute(query("legacy_revision")).fetchone()
    revision = row[0] if row else None
    if revision is None or not revision.isdigit() or int(revision) < LEGACY_RELEASE_HEAD:
        raise MigrationError(
            f"this lake is at migration {revision} of a development build before release 0.1.0: "
            f"migrate it with release 0.1.0 (revision {LEGACY_RELEASE_HEAD:04d}) first"
        )
    history = [
        Applied(LEGACY, int(rev), name, sha, True, at)
        for rev, name, sha, at in conn.execute(query("legacy_checksums")).fetchall()
    ]
    first = read_chain(ENGINE, files.MIGRATIONS_DIR)[0]
    return [Applied(ENGINE, first.version, first.name, first.sha256, True, None), *history]


def _plan(conn: psycopg.Connection, project: Project | None) -> Plan:
    """What this run would do, read without changing anything."""
    legacy = _legacy(conn)
    plan = Plan(project=project, legacy_adopted=legacy is not None)
    has_bookkeeping = conn.execute(query("has_bookkeeping")).fetchone()[0]  # type: ignore[index]
    if has_bookkeeping:
        plan.applied = [Applied(*row) for row in conn.execute(query("applied_migrations")).fetchall()]
    plan.applied += legacy or []
    plan.engine = pending(ENGINE, read_chain(ENGINE, files.MIGRATIONS_DIR), plan.applied, files.MIGRATIONS_DIR)
    installed = conn.execute(query("installed_code")).fetchone() if has_bookkeeping else None
    if installed is not None and _release(installed[1]) > _release(__version__):
        raise MigrationError(
            f"this lake runs the engine of contextlake {installed[1]}, newer than this one ({__version__}): "
            "upgrade contextlake; an older engine is never installed over a newer one"
        )
    plan.code_changed = bool(plan.engine) or installed is None or installed[0] != code_checksum()
    if project is not None:
        chain = read_chain(project.name, project.migrations_dir)
        done = {a.name for a in plan.applied if a.chain == LEGACY}
        for m in pending(project.name, chain, plan.applied, project.migrations_dir):
            (plan.adopt if m.replaces in done else plan.pending).append(m)
    return plan


def _record(conn: psycopg.Connection, a: Applied) -> None:
    conn.execute(
        query("record_migration"),
        {"chain": a.chain, "version": a.version, "name": a.name, "sha256": a.sha256, "adopted": a.adopted,
         "applied_at": a.applied_at},
    )  # fmt: skip


def _install_code(conn: psycopg.Connection, plan: Plan, transaction: str) -> None:
    previous = {(k, i) for k, i in conn.execute(query("recorded_engine_objects")).fetchall()}
    for path in files.code_files():
        _execute(conn, path, "engine file", transaction)
    now = {(k, i) for k, i in conn.execute(query("engine_objects_now")).fetchall()}
    # What the last install had and this one did not make; a lake without that record (release 0.1.0)
    # had only the engine's own objects in its schemas.
    gone = (previous or {(k, i) for k, i in conn.execute(query("untouched_objects")).fetchall()}) - now
    for kind, identity in sorted(gone, key=lambda o: o[0] != "view"):  # views first: they use functions
        try:
            with conn.transaction():
                conn.execute(f"DROP {'VIEW' if kind == 'view' else 'ROUTINE'} IF EXISTS {identity}")
        except psycopg.Error as exc:
            raise MigrationError(f"cannot drop {identity}, which this engine no longer has: {exc}") from None
        plan.dropped.append(identity)
    conn.execute(query("forget_engine_objects"))
    with conn.cursor() as cur:
        cur.executemany(query("record_engine_object"), sorted(now))
    # Grants after the objects are told apart: granting touches every function's row.
    _execute(conn, files.ROLES_FILE, "engine file", transaction)
    plan.regenerated = [(k, n) for k, n in conn.execute(query("regenerate")).fetchall()]
    conn.execute(query("record_code"), {"sha256": code_checksum(), "version": __version__})


def _apply(conn: psycopg.Connection, project: Project | None, lock_timeout: str) -> Plan:
    conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
    conn.execute("SET LOCAL client_min_messages = warning")
    transaction = conn.execute(query("current_transaction")).fetchone()[0]  # type: ignore[index]
    plan = _plan(conn, project)
    conn.execute(query("create_bookkeeping"))
    if plan.legacy_adopted:
        for a in plan.applied:
            if a.adopted and a.chain in (ENGINE, LEGACY):
                _record(conn, a)
        conn.execute(query("drop_legacy_bookkeeping"))
        conn.execute(query("revoke_legacy_grants"))
    for m in plan.engine:
        _execute(conn, m.path, "engine migration", transaction)
        _record(conn, Applied(ENGINE, m.version, m.name, m.sha256, False, None))
    if plan.code_changed:
        _install_code(conn, plan, transaction)
    for m in plan.adopt:
        _record(conn, Applied(m.chain, m.version, m.name, m.sha256, True, None))
    for m in plan.pending:
        _execute(conn, m.path, f"migration {m.version:04d} of project {m.chain}:", transaction)
        _record(conn, Applied(m.chain, m.version, m.name, m.sha256, False, None))
    if not plan.code_changed:
        # Grants are asserted on every run: a database's own (CONNECT, TEMPORARY) do not travel with a
        # dump or a template copy.
        _execute(conn, files.ROLES_FILE, "engine file", transaction)
    return plan


def migrate(dsn: str, project: Project | None = None, dry_run: bool = False, lock_timeout: str = "30s") -> Plan:
    """Bring the lake to this engine and the project's migrations, or, when a step fails, leave it as it was.
    A dry run reads in a read-only transaction, takes no lock and changes nothing."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if dry_run:
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                return _plan(conn, project)
        conn.execute(query("migration_lock"))
        try:
            with conn.transaction():
                return _apply(conn, project, lock_timeout)
        except psycopg.errors.LockNotAvailable as exc:
            raise MigrationError(
                f"a lock the migration needs was not free within {lock_timeout} ({str(exc).strip()}): a long "
                "transaction holds it; retry when it ends; nothing was applied"
            ) from None
        finally:
            if not conn.closed:
                conn.execute(query("migration_unlock"))


def status(dsn: str, project: Project | None = None) -> Plan:
    """What is applied and what is pending, changing nothing."""
    return migrate(dsn, project, dry_run=True)
