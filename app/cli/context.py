"""What every command needs: the lake's URL, the project to apply, and a query printed as a table."""

from __future__ import annotations

import argparse
from pathlib import Path

import psycopg

from app.cli.table import render
from app.lake import database, project
from app.lake.queries import query
from app.settings import Settings


def settings(args: argparse.Namespace) -> Settings:
    return args.settings  # type: ignore[no-any-return]


def dsn(args: argparse.Namespace, start: bool = True) -> str:
    """DATABASE_URL, else the embedded lake (started unless told otherwise)."""
    return database.database_url(settings(args), start=start)


def connect(args: argparse.Namespace) -> psycopg.Connection:
    return psycopg.connect(dsn(args))


def chosen_project(args: argparse.Namespace) -> project.Project | None:
    """--project DIR, else CONTEXTLAKE_PROJECT, else none (the engine alone)."""
    root: Path | None = getattr(args, "project", None) or settings(args).project
    return project.load(Path(root)) if root else None


def print_query(conn: psycopg.Connection, name: str) -> int:
    cur = conn.execute(query(name))
    rows = cur.fetchall()
    print(render([d.name for d in cur.description or []], rows))
    return len(rows)
