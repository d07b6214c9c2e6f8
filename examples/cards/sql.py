"""The card example's named queries (examples/cards/queries.sql) and its project folder."""

from __future__ import annotations

from pathlib import Path

from psycopg import sql

from app.lake import project
from app.lake.queries import load

PROJECT_DIR = Path(__file__).resolve().parent


def query(name: str) -> sql.SQL:
    return sql.SQL(load(PROJECT_DIR / "queries.sql")[name])


def cards_project() -> project.Project:
    """The example as a feature project, installed like a user's (contextlake migrate --project examples/cards)."""
    return project.load(PROJECT_DIR)
