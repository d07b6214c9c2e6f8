"""Load for the crash tests: `contextlake serve` in a subprocess, and client threads that post events,
decisions and scores over HTTP and record exactly what the service acknowledged to them.

A client treats 503, 429 and a broken connection as "not acknowledged": events and decide requests are
retried with the same ids (both routes are idempotent by event id), a score is not (a retried score
would be a new decision). Any other answer is kept in `unexpected`, for the test to fail on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.lake.cluster import free_port

RETRY_STATUSES = (429, 503)
# Shorter than the service's Retry-After (1 s): the outage is a second or two, and the test should see
# the first answers after it.
RETRY_PAUSE = 0.1


@dataclass
class Acked:
    """One acknowledged request: the event ids it carried (with their cards), and what the answer said."""

    path: str
    body: dict[str, Any]
    ids: list[tuple[str, str]]
    attempts: int
    decision_id: str | None = None
    landed: int = 0
    duplicates: int = 0
    replayed: bool = False
    at: float = field(default_factory=time.monotonic)


class Client(threading.Thread):
    """One client of one route, posting until told to stop; its own httpx connection."""

    def __init__(self, base_url: str, key: str, kind: str, name: str, stop: threading.Event, batch: int = 50) -> None:
        super().__init__(name=name, daemon=True)
        assert kind in ("events", "decide", "score")
        self.base_url, self.key, self.kind, self.batch = base_url, key, kind, batch
        self.cards = [f"{name}-card-{i}" for i in range(4)]
        self.stop = stop  # no new request after it; the one in hand is still retried until acknowledged
        self.abandon = threading.Event()  # give up the request in hand too (the service is gone for good)
        self.acked: list[Acked] = []
        self.failures = 0  # attempts not acknowledged: 503, 429, connection errors
        self.failed_at: list[float] = []
        self.unexpected: list[str] = []
        self.sent: set[str] = set()  # every event id ever posted
        self.pending: list[tuple[str, str]] = []  # ids in hand, not acknowledged, when the thread ended
        self.error: BaseException | None = None
        self._n = 0

    def run(self) -> None:
        try:
            headers = {"Authorization": f"Bearer {self.key}"}
            with httpx.Client(base_url=self.base_url, headers=headers, timeout=10) as http:
                while not self.stop.is_set() and not self.abandon.is_set():
                    self._one(http)
        except BaseException as exc:  # kept for the test: an exception escaping a thread is only a warning
            self.error = exc

    def _next(self) -> tuple[str, dict[str, Any], list[tuple[str, str]]]:
        n, self._n = self._n, self._n + 1
        if self.kind == "events":
            ids = [
                (f"{self.name}-{n}-{i}", self.cards[(n * self.batch + i) % len(self.cards)]) for i in range(self.batch)
            ]
            now = datetime.now(UTC).isoformat()
            events = [
                {"event_id": eid, "card_id": card, "merchant_id": f"m{i % 7}", "amount": 1 + (n + i) % 40,
                 "currency": "EUR", "country": "FR", "channel": "pos", "event_time": now}
                for i, (eid, card) in enumerate(ids)
            ]  # fmt: skip
            return "/v1/events", {"source": "card_txn", "events": events}, ids
        card = self.cards[n % len(self.cards)]
        if self.kind == "decide":
            eid = f"{self.name}-{n}"
            event = {"event_id": eid, "merchant_id": f"m{n % 7}", "amount": 1 + n % 40, "currency": "EUR",
                     "country": "FR", "channel": "ecom"}  # fmt: skip
            return "/v1/decide", {"model": "fraud", "entity": card, "event": event}, [(eid, card)]
        return "/v1/score", {"model": "fraud", "entity": card, "request": {"amount": 1 + n % 40}}, []

    def _one(self, http: httpx.Client) -> None:
        path, body, ids = self._next()
        self.sent.update(eid for eid, _ in ids)
        attempts = 0
        while not self.abandon.is_set():
            attempts += 1
            try:
                r = http.post(path, json=body)
            except httpx.TransportError:
                r = None
            if r is not None and r.status_code == 200:
                self.acked.append(self._acked(path, body, r.json(), ids, attempts))
                return
            if r is None or r.status_code in RETRY_STATUSES:
                self.failures += 1
                self.failed_at.append(time.monotonic())
            else:
                self.unexpected.append(f"{path} {r.status_code}: {r.text[:300]}")
            time.sleep(RETRY_PAUSE)
            if self.kind == "score":
                return
        self.pending = ids

    def _acked(
        self, path: str, body: dict[str, Any], answer: dict[str, Any], ids: list[tuple[str, str]], attempts: int
    ) -> Acked:
        acked = Acked(path, body, ids, attempts)
        if self.kind == "events":
            # Only a whole batch counts: every event landed now or by an earlier attempt, none rejected.
            assert answer["rejected"] == [] and answer["landed"] + answer["duplicates"] == len(ids), answer
            acked.landed, acked.duplicates = answer["landed"], answer["duplicates"]
        else:
            assert self.kind == "score" or answer["event_id"] == ids[0][0], answer
            acked.decision_id, acked.replayed = answer["decision_id"], bool(answer.get("replayed"))
        return acked


@dataclass
class Load:
    """A set of clients sharing one stop signal."""

    clients: list[Client]
    stop: threading.Event

    @classmethod
    def start(cls, base_url: str, key: str, kinds: dict[str, int], batch: int = 50) -> Load:
        stop = threading.Event()
        clients = [
            Client(base_url, key, kind, f"{kind}{i}", stop, batch) for kind, n in kinds.items() for i in range(n)
        ]
        for c in clients:
            c.start()
        return cls(clients, stop)

    def of(self, kind: str) -> list[Client]:
        return [c for c in self.clients if c.kind == kind]

    def acked(self, kind: str) -> list[Acked]:
        return [a for c in self.of(kind) for a in c.acked]

    def count(self, kind: str) -> int:
        return len(self.acked(kind))

    def wait_for(self, minimum: dict[str, int], seconds: float) -> None:
        """Until every kind has at least `minimum` more acknowledged requests than now."""
        base = {k: self.count(k) for k in minimum}
        deadline = time.monotonic() + seconds
        while any(self.count(k) - base[k] < n for k, n in minimum.items()):
            if time.monotonic() > deadline:
                got = {k: self.count(k) - base[k] for k in minimum}
                raise AssertionError(f"the load made no progress in {seconds} s: {got} of {minimum}")
            self.check()
            time.sleep(0.05)

    def check(self) -> None:
        errors = [f"{c.name}: {c.error!r}" for c in self.clients if c.error is not None]
        assert not errors, errors

    def finish(self, seconds: float = 30, abandon: bool = False) -> None:
        """Stop the clients: each finishes the request in hand (unless `abandon`), within `seconds`."""
        self.stop.set()
        if abandon:
            for c in self.clients:
                c.abandon.set()
        deadline = time.monotonic() + seconds
        for c in self.clients:
            c.join(max(0.0, deadline - time.monotonic()))
        stuck = [c.name for c in self.clients if c.is_alive()]
        for c in self.clients:  # no thread outlives the test, even a failing one
            c.abandon.set()
        for c in self.clients:
            c.join(15)
        assert not stuck, f"clients did not get their last request acknowledged: {stuck}"
        self.check()

    def close(self) -> None:
        """Give up at once and join every thread (the test is failing already, or the service is gone)."""
        self.stop.set()
        for c in self.clients:
            c.abandon.set()
        for c in self.clients:
            c.join(15)

    def failures(self, kind: str) -> int:
        return sum(c.failures for c in self.of(kind))

    def unexpected(self) -> list[str]:
        return [u for c in self.clients for u in c.unexpected]

    def pending(self) -> list[tuple[str, str]]:
        return [p for c in self.clients for p in c.pending]

    def sent(self, kind: str) -> set[str]:
        return set().union(*(c.sent for c in self.of(kind)))


class Service:
    """`contextlake serve` in a subprocess of its own, logging to a file."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc, self.port, self.log_path = proc, port, log_path
        self.base_url = f"http://127.0.0.1:{port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"serve did not get ready: {self.log()[-3000:]}")
            time.sleep(0.1)

    def terminate(self, seconds: float = 60) -> int:
        """SIGTERM, then wait for the exit (a graceful shutdown: in-flight requests, the decision log)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=seconds)


@contextmanager
def serve(dsn: str, home: Path, **settings: str) -> Iterator[Service]:
    """Serve the lake at `dsn` until the block ends; `settings` are CONTEXTLAKE_* knobs (name without prefix)."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    # The service's settings are the test's alone, whatever the environment running the tests sets.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTLAKE_")}
    env.update({"DATABASE_URL": dsn, "CONTEXTLAKE_HOME": str(home)})
    env.update({f"CONTEXTLAKE_{k.upper()}": v for k, v in settings.items()})
    log_path = home / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = Service(proc, port, log_path)
    try:
        service.wait_ready()
        yield service
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
