"""Helpers of the service tests: the app served in-process, and API keys."""

from __future__ import annotations

import psycopg

from app.lake import registry
from app.serve.local_server import serving, wait_ready

__all__ = ["new_key", "serving", "wait_ready"]


def new_key(dsn: str, *scopes: str) -> str:
    with psycopg.connect(dsn) as conn:
        return registry.create_api_key(conn, "tests", list(scopes))[1]
