"""contextlake serve: the HTTP API under uvicorn. It connects as the service role (CONTEXTLAKE_SERVICE_URL,
else DATABASE_URL as contextlake_service) and needs the owner's credentials only with --migrate."""

from __future__ import annotations

import argparse
import os

from app.cli import context
from app.lake.migrations import migrate
from app.serve.shedding import SheddingProtocol


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = context.settings(args)
    if args.migrate:
        migrate(context.dsn(args), context.chosen_project(args))
    if not settings.service_url:
        # The workers read their settings from the environment: the embedded lake's URL, now started.
        os.environ["DATABASE_URL"] = context.dsn(args)
    uvicorn.run(
        "app.serve.main:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=args.access_log,
        http=SheddingProtocol,
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser(
        "serve", help="serve the HTTP API (uvicorn): decisions, vectors, freshness, metrics; OpenAPI at /docs"
    )
    sp.add_argument(
        "--migrate", action="store_true", help="migrate the lake first, as its owner (DATABASE_URL); off by default"
    )
    sp.add_argument("--project", help="with --migrate: the feature project (default: CONTEXTLAKE_PROJECT, else none)")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sp.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    sp.add_argument("--access-log", action="store_true", help="log every request (off: /metrics counts them)")
    sp.set_defaults(func=cmd_serve)
