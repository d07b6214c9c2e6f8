"""Admission control and the failsafe, on the real app, protocol and server: past its slots and its
queue the service answers 503 with Retry-After at once (from the HTTP protocol, before any framework
work), a queued request waits no longer than its bound or its own deadline, health and metrics are
never held back; an unhandled error is a JSON 500 and, like every 5xx, keeps the connection open."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.serve.main import create_app
from app.settings import Settings
from tests.service import serving


class Held:
    """A test route that holds its admission slot until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)


def app_with_routes(settings: Settings, held: Held) -> FastAPI:
    app = create_app(settings)

    @app.get("/test/hold")
    async def hold() -> dict[str, str]:
        held.entered.release()
        while not held.release.is_set():
            await asyncio.sleep(0.01)
        return {"held": "done"}

    @app.get("/test/fail")
    async def fail() -> dict[str, str]:
        raise RuntimeError("a defect the handlers do not know")

    return app


@pytest.fixture
def held() -> Iterator[Held]:
    h = Held()
    yield h
    h.release.set()


def serve(dsn: str, held: Held, **knobs: Any) -> AbstractContextManager[httpx.Client]:
    settings = Settings(database_url=dsn, auth=False, **knobs)
    return serving(settings, app=app_with_routes(settings, held))


def exchange(sock: socket.socket, path: str, headers: str = "") -> tuple[int, dict[str, str], bytes]:
    """One request on an open connection and its whole answer (status, headers, body)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    while len(body) < int(fields.get("content-length", "0")):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), fields, body


def shed_count(client: httpx.Client) -> float:
    lines = [ln for ln in client.get("/metrics").text.splitlines() if ln.startswith("contextlake_shed_requests_total")]
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)


def hold_slots(client: httpx.Client, held: Held, n: int, pool: ThreadPoolExecutor) -> list[Future[httpx.Response]]:
    running = [pool.submit(client.get, "/test/hold") for _ in range(n)]
    for _ in range(n):
        assert held.entered.acquire(timeout=10)
    return running


def test_past_its_slots_and_queue_a_request_is_refused_at_once_and_health_is_not(dsn: str, held: Held) -> None:
    with serve(dsn, held, max_in_flight=2, max_waiting=0) as client, ThreadPoolExecutor(4) as pool:
        running = hold_slots(client, held, 2, pool)
        before = shed_count(client)
        with socket.create_connection(("127.0.0.1", client.base_url.port)) as sock:
            status, fields, body = exchange(sock, "/v1/freshness")
            assert status == 503 and fields["retry-after"] == "1" and b"overloaded" in body
            # The refusal kept the connection: the next request on it is answered too.
            assert exchange(sock, "/healthz")[0] == 200
        assert client.get("/readyz").status_code == 200
        assert shed_count(client) == before + 1
        # Refused by the protocol: no request reached the app's own timing as a 503.
        assert 'status="503"' not in client.get("/metrics").text
        held.release.set()
        assert [f.result(timeout=10).status_code for f in running] == [200, 200]
        assert client.get("/test/hold").status_code == 200  # slots free again


def test_a_queued_request_gets_the_next_slot(dsn: str, held: Held) -> None:
    with serve(dsn, held, max_in_flight=1, max_waiting=1, max_wait_ms=5000) as client, ThreadPoolExecutor(4) as pool:
        first = hold_slots(client, held, 1, pool)
        queued = pool.submit(client.get, "/healthz?x=1")  # exempt: answered whatever the queue
        assert queued.result(timeout=10).status_code == 200
        waiting = pool.submit(client.get, "/test/hold")
        while 'contextlake_admission_requests{state="waiting"} 1.0' not in client.get("/metrics").text:
            pass
        third = client.get("/test/hold")  # the queue's one place is taken: refused at once
        assert third.status_code == 503
        held.release.set()
        assert first[0].result(timeout=10).status_code == 200
        assert waiting.result(timeout=10).status_code == 200


def test_a_request_waits_no_longer_than_its_deadline(dsn: str, held: Held) -> None:
    with serve(dsn, held, max_in_flight=1, max_waiting=4, max_wait_ms=60_000) as client, ThreadPoolExecutor(4) as pool:
        hold_slots(client, held, 1, pool)
        # Without its deadline it would wait up to a minute for the held slot; with it, 503 after 200 ms.
        r = client.get("/test/hold", headers={"X-Request-Timeout-Ms": "200"})
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert 'contextlake_shed_requests_total{reason="wait bound"} 1.0' in client.get("/metrics").text
        held.release.set()


def test_an_unhandled_error_is_a_json_500_and_the_connection_stays(dsn: str, held: Held) -> None:
    with serve(dsn, held) as client:
        with socket.create_connection(("127.0.0.1", client.base_url.port)) as sock:
            status, fields, body = exchange(sock, "/test/fail")
            assert status == 500 and fields["content-type"] == "application/json" and b"internal error" in body
            assert "connection" not in fields or fields["connection"] != "close"
            assert exchange(sock, "/healthz")[0] == 200  # the same connection answers again
        assert 'route="/test/fail",status="500"' in client.get("/metrics").text
