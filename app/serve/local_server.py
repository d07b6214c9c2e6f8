"""The app under a real uvicorn server in a thread of this process, on a free loopback port, with an
HTTP client for it (the demo and the tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from app.lake.cluster import free_port
from app.serve.main import create_app
from app.serve.shedding import SheddingProtocol
from app.settings import Settings


@contextmanager
def serving(
    settings: Settings, api_key: str | None = None, ready: bool = True, app: FastAPI | None = None
) -> Iterator[httpx.Client]:
    """Serve until the block ends (then a clean shutdown); with `ready`, wait for /readyz first. `app`:
    an app made by create_app(settings) that the caller added to, instead of a new one."""
    port = free_port()
    config = uvicorn.Config(
        app or create_app(settings), host="127.0.0.1", port=port, log_level="warning", http=SheddingProtocol
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start")
        time.sleep(0.02)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, headers=headers) as client:
            if ready:
                wait_ready(client)
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_ready(client: httpx.Client, seconds: float = 15) -> None:
    """Until /readyz says the lake answers and the models are loaded."""
    deadline = time.monotonic() + seconds
    while (r := client.get("/readyz")).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service is not ready: {r.text}")
        time.sleep(0.02)
