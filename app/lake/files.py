"""Where the engine's files are: its SQL (sql/) and its migrations (migrations/).

An installed wheel carries them inside the package (app/lake/engine_sql, app/lake/engine_migrations);
a source checkout reads them from the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
_CHECKOUT = _HERE.parent.parent


def _located(packaged: str, checkout: str) -> Path:
    inside = _HERE / packaged
    return inside if inside.is_dir() else _CHECKOUT / checkout


SQL_DIR = _located("engine_sql", "sql")
MIGRATIONS_DIR = _located("engine_migrations", "migrations")
SCHEMA_FILE = SQL_DIR / "schema.sql"
ROLES_FILE = SQL_DIR / "roles.sql"


def code_files() -> list[Path]:
    """The engine's functions, views and triggers in install order (NN_*.sql)."""
    return sorted(SQL_DIR.glob("[0-9][0-9]_*.sql"))


def installed_files() -> list[Path]:
    """Everything the engine's code checksum covers: the code, then every grant (roles.sql)."""
    return [*code_files(), ROLES_FILE]
