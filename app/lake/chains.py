"""Migration chains as files: the engine's (migrations/) and a project's (DIR/migrations/), each a
folder of NNNN_verb_noun.sql, and how the files at hand fit what a lake has applied."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.lake.project import MIGRATION_FILE, ProjectError
from app.lake.sqlscan import transaction_control

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
        """The release-0.1.0 revision this migration did the work of (`-- replaces: NAME`)."""
        m = REPLACES.search(self.text)
        return m.group(1) if m else None


@dataclass(frozen=True)
class Applied:
    chain: str
    version: int
    name: str
    sha256: str
    adopted: bool
    applied_at: datetime | None


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


def pending(chain: str, found: list[Migration], applied: list[Applied], where: Path) -> list[Migration]:
    """The migrations of a chain still to run; refuses edited, removed or out-of-order files, and files
    that would end the run's transaction (every migration runs inside it)."""
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
    todo = [m for m in found if m.version not in done]
    newest = max(done, default=0)
    late = [m for m in todo if m.version < newest]
    if late:
        raise MigrationError(
            f"{late[0].path} comes before migration {newest:04d}, which is already applied: give it a number after "
            f"{newest:04d}"
        )
    for m in todo:
        raw = m.path.read_bytes()
        if b"\0" in raw:  # the server would read the script up to the NUL and silently drop the rest
            raise MigrationError(f"{m.path} holds a NUL byte: a migration is SQL text")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MigrationError(f"{m.path} is not UTF-8 text (byte {exc.start}): a migration is SQL text") from None
        statement = transaction_control(m.text)
        if statement is not None:
            raise MigrationError(
                f"{m.path}: {statement!r} would end the transaction every migration of a run shares (all or "
                "nothing); leave transaction control out"
            )
    return todo
