"""The app under a real uvicorn server on a free loopback port, and HTTP clients for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import uvicorn

from app import registry
from app.embedded import free_port
from app.main import create_app
from app.settings import Settings


@contextmanager
def serving(settings: Settings, api_key: str | None = None) -> Iterator[httpx.Client]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, headers=headers) as c:
            yield c
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def wait_ready(client: httpx.Client, seconds: float = 10) -> None:
    """Until /readyz says the lake answers and the models are loaded."""
    deadline = time.monotonic() + seconds
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").text
        time.sleep(0.02)


def new_key(dsn: str, *scopes: str) -> str:
    with psycopg.connect(dsn) as conn:
        return registry.create_api_key(conn, "tests", list(scopes))[1]
