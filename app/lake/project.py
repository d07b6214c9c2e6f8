"""A feature project: the user's own folder of numbered SQL migrations and its settings file.

DIR/contextlake.toml     [project] name = "..."  (names the project's migration chain in the lake)
DIR/migrations/NNNN_verb_noun.sql
DIR/README.md
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

SETTINGS_FILE = "contextlake.toml"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
RESERVED = {"engine", "legacy"}
MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9][a-z0-9_]*)\.sql$")


class ProjectError(ValueError):
    """A project folder, its settings or its migration files are not usable as they are."""


@dataclass(frozen=True)
class Project:
    name: str
    root: Path

    @property
    def migrations_dir(self) -> Path:
        return self.root / "migrations"


def load(root: Path) -> Project:
    """The project in `root`, from its contextlake.toml."""
    settings = root / SETTINGS_FILE
    if not settings.is_file():
        raise ProjectError(
            f"{root} is not a contextlake project (no {SETTINGS_FILE}): create one with contextlake init"
        )
    try:
        data = tomllib.loads(settings.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{settings}: {exc}") from None
    name = data.get("project", {}).get("name")
    if not isinstance(name, str) or not NAME.match(name) or name in RESERVED:
        raise ProjectError(
            f"{settings}: [project] name must be lower case letters, digits and _ (up to 40, starting with a letter, "
            f"not {' or '.join(sorted(RESERVED))}), got {name!r}"
        )
    return Project(name=name, root=root.resolve())


def slug(title: str) -> str:
    """File name part of a migration title: 'Add merchant velocity' -> add_merchant_velocity."""
    text = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")
    if not text:
        raise ProjectError(f"a migration needs a title with letters or digits, got {title!r}")
    return text[:60].rstrip("_")


def init(root: Path, name: str | None = None) -> Project:
    """Create a project folder: settings file, empty migrations folder, README stub."""
    if (root / SETTINGS_FILE).exists():
        raise ProjectError(f"{root} is already a contextlake project ({SETTINGS_FILE} exists)")
    chosen = name or slug(root.resolve().name)
    if not NAME.match(chosen) or chosen in RESERVED:
        raise ProjectError(f"project name {chosen!r} is not usable: pass --name with lower case letters, digits and _")
    (root / "migrations").mkdir(parents=True, exist_ok=True)
    (root / SETTINGS_FILE).write_text(
        "# contextlake feature project\n"
        "[project]\n"
        f'name = "{chosen}"  # names this project\'s migration chain in the lake; do not change it once applied\n',
        encoding="utf-8",
    )
    readme = root / "README.md"
    if not readme.exists():
        readme.write_text(
            f"# {chosen}: a contextlake feature project\n\n"
            "Landing tables, sources, features, feature sets, rules and labels, as numbered SQL migrations in\n"
            "`migrations/`. Each runs once, in order, after the engine's own migrations.\n\n"
            '    contextlake new-migration "add merchant velocity" --project .   # a new numbered .sql file\n'
            "    contextlake migrate --project . --dry-run                       # what would run\n"
            "    contextlake migrate --project .                                 # apply it\n"
            "    contextlake migrate --project . --status                        # applied and pending\n",
            encoding="utf-8",
        )
    return load(root)


def new_migration(project: Project, title: str) -> Path:
    """Write the next numbered migration of the project, with its id filled in; returns its path."""
    from app.lake.chains import read_chain

    existing = read_chain(project.name, project.migrations_dir)
    number = (existing[-1].version if existing else 0) + 1
    stem = f"{number:04d}_{slug(title)}"
    path = project.migrations_dir / f"{stem}.sql"
    project.migrations_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"-- {stem} of project {project.name}: {title.strip()}\n"
        "-- Runs once, in the transaction of `contextlake migrate`, after the engine and the earlier migrations.\n"
        "-- Declare landing tables, then lake.define_source / define_feature / define_feature_set / define_rule\n"
        "-- (see docs/authoring.md). Applied migrations are immutable: change things in a new one.\n\n",
        encoding="utf-8",
    )
    return path
