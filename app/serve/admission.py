"""Admission control: past saturation a fast 503 serves a caller with a latency budget better than a
slow 200. At most `limit` requests are in progress; up to `queue` more wait, each no longer than the
wait bound (or its own deadline, `X-Request-Timeout-Ms`); any other request is answered 503 with
Retry-After at once, before its body is read or its key looked up. Health, readiness and metrics are
never held back.

A request joins the queue only when the wait it can expect (its place in the queue times the recent
time a request holds its slot, spread over the slots) fits its bound, so under a steady overload the
refusals are immediate rather than timeouts. The decision is made twice, with the same rule: by the
HTTP protocol (app/serve/shedding.py) before a refused request costs a task or any framework work,
and by the middleware here, which holds the slots and the queue."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from app.serve.metrics import Metrics

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
DEADLINE_HEADER = b"x-request-timeout-ms"
# Weight of the newest observation in the running mean of the time a request holds its slot.
SMOOTHING = 0.05
# Set in a request's scope state when the protocol took its slot already (app/serve/shedding.py).
HELD = "contextlake.admission_held"
REFUSAL_BODY = b'{"detail":"overloaded: too many requests in progress and waiting; retry later"}'
REFUSAL_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(REFUSAL_BODY)).encode()),
    (b"retry-after", b"1"),
]


def deadline_ms(headers: Iterable[tuple[bytes, bytes]]) -> float | None:
    """The client's budget for this request in milliseconds, when it sent a usable one."""
    for name, value in headers:
        if name == DEADLINE_HEADER:
            try:
                ms = float(value)
            except ValueError:
                return None
            return ms if ms > 0 else None  # NaN, zero and negative budgets are ignored
    return None


class AdmissionControl:
    """The slots, the queue and the refusal rule of one service process."""

    def __init__(self, metrics: Metrics, limit: int, queue: int, wait_ms: float) -> None:
        self.metrics = metrics
        self.limit = limit
        self.queue = queue
        self.wait_ms = wait_ms
        self.in_progress = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.hold_ms = 1.0  # running mean of a slot's hold time; starts small so the queue is used at first
        metrics.admission.labels("in_progress").set_function(lambda: self.in_progress)
        metrics.admission.labels("waiting").set_function(lambda: len(self.waiters))

    @property
    def saturated(self) -> bool:
        return self.in_progress >= self.limit or bool(self.waiters)

    def try_take(self) -> bool:
        """Take a free slot without waiting, if there is one."""
        if self.saturated:
            return False
        self.in_progress += 1
        return True

    def refuses_at_once(self, deadline: float | None) -> bool:
        """A request arriving now is refused without waiting: every slot is taken and the queue is full,
        or its expected wait is past its bound."""
        if not self.saturated:
            return False
        position = len(self.waiters)
        if position >= self.queue:
            self.metrics.shed.labels("queue full").inc()
            return True
        if (position + 1) * self.hold_ms / self.limit > self.bound(deadline):
            self.metrics.shed.labels("expected wait").inc()
            return True
        return False

    def bound(self, deadline: float | None) -> float:
        return self.wait_ms if deadline is None else min(self.wait_ms, deadline)

    async def acquire(self, deadline: float | None) -> bool:
        """Take a slot (True), at once or after a wait within the bound; False: refused."""
        if self.try_take():
            return True
        if self.refuses_at_once(deadline):
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.bound(deadline) / 1000)
            return True
        except TimeoutError:
            if waiter.done():  # granted just as the bound passed: the slot is ours
                return True
            waiter.cancel()
            self.metrics.shed.labels("wait bound").inc()
            return False
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted, then the request went away: pass it on
                self.release(0.0)
            waiter.cancel()
            raise
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    def release(self, held_ms: float) -> None:
        """Hand the slot to the first waiter still waiting, else free it."""
        if held_ms:
            self.hold_ms += SMOOTHING * (held_ms - self.hold_ms)
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: in_progress stays
                return
        self.in_progress -= 1


class Admission:
    """The middleware: every request but the exempt ones holds a slot while it runs."""

    def __init__(self, app: ASGIApp, control: AdmissionControl) -> None:
        self.app = app
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        held = scope.get("state", {}).pop(HELD, False)
        if not held and not await self.control.acquire(deadline_ms(scope["headers"])):
            await send({"type": "http.response.start", "status": 503, "headers": REFUSAL_HEADERS})
            await send({"type": "http.response.body", "body": REFUSAL_BODY})
            return
        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.control.release((time.perf_counter() - t0) * 1000)
