"""contextlake serve: the HTTP API under uvicorn, after the lake is migrated."""

from __future__ import annotations

import argparse
import os

from app.cli import context
from app.lake.migrations import migrate


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    dsn = context.dsn(args)
    migrate(dsn, context.chosen_project(args))
    os.environ["DATABASE_URL"] = dsn  # the worker processes read their settings from the environment
    uvicorn.run(
        "app.serve.main:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=args.access_log,
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser(
        "serve", help="serve the HTTP API (uvicorn): decisions, vectors, freshness, metrics; OpenAPI at /docs"
    )
    sp.add_argument("--project", help="feature project to migrate first (default: CONTEXTLAKE_PROJECT, else none)")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sp.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    sp.add_argument("--access-log", action="store_true", help="log every request (off: /metrics counts them)")
    sp.set_defaults(func=cmd_serve)
