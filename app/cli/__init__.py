"""contextlake command line: run and migrate the lake, author a feature project, serve, load, train,
inspect freshness, compact, verify. Every command reads its settings from the environment once."""

from __future__ import annotations

import argparse
import sys

import psycopg
import pydantic

from app.cli import admin, cdc, data, lake, serve, train
from app.lake.cluster import EmbeddedError
from app.lake.migrations import MigrationError
from app.lake.project import ProjectError
from app.serve.onnx_model import ModelInputError
from app.settings import Settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="contextlake",
        description="Transactional SQL serving layer for real-time ML decisions. "
        "Uses DATABASE_URL when set, else an embedded PostgreSQL in CONTEXTLAKE_HOME (default ./.contextlake).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lake.register(sub)
    serve.register(sub)
    admin.register(sub)
    data.register(sub)
    cdc.register(sub)
    train.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra and args.command != "psql":
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    args.psql_args = extra
    try:
        args.settings = Settings()
        return int(args.func(args))
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        print(f"contextlake: settings from the environment: {problems}", file=sys.stderr)
        return 2
    except (
        EmbeddedError,
        MigrationError,
        ProjectError,
        psycopg.Error,
        ModelInputError,
        OSError,
        ValueError,
    ) as exc:
        # Definition, migration, configuration and connection errors: one clear line, no traceback.
        print(f"contextlake: {str(exc).strip()}", file=sys.stderr)
        return 2
