"""Named queries from .sql files (blocks headed "-- name: NAME"), so no SQL longer than a line lives in
Python strings. The engine's are in app/lake/queries.sql; a project's Python reads its own file with load()."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from psycopg import sql

QUERY_FILE = Path(__file__).with_name("queries.sql")


@cache
def load(path: Path) -> dict[str, str]:
    """Every named query of a .sql file."""
    text = path.read_text(encoding="utf-8")
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    return {name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def _all() -> dict[str, str]:
    return load(QUERY_FILE)


def query(name: str) -> sql.SQL:
    """The named query, ready for cursor.execute."""
    try:
        return sql.SQL(_all()[name])
    except KeyError:
        raise KeyError(f"no query named {name!r} in {QUERY_FILE}") from None


def read_vector_sql(read_function: str) -> sql.Composed:
    """SELECT from a feature set's generated read function (its name comes from the catalog, quoted)."""
    schema, _, name = read_function.partition(".")
    return sql.SQL("SELECT * FROM {}.{}(%s, %s, %s)").format(sql.Identifier(schema), sql.Identifier(name.strip('"')))
