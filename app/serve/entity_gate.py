"""Per-entity admission for decide-and-commit, in front of the connection pool.

Decisions on one entity run one after the other (the lake's advisory lock makes that true across
processes). Waiting for that lock holds a pooled connection, so a burst on one entity (card
testing) could take every connection and starve the other routes. This gate queues the decisions
of one entity in the process before they take a connection, and refuses (429) past ``queue_max``
waiting on one entity.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class EntityBusy(RuntimeError):
    """Too many decisions already wait on this entity."""


class EntityGate:
    def __init__(self, queue_max: int) -> None:
        self.queue_max = queue_max
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        if users[0] > self.queue_max:
            raise EntityBusy(f"{users[0]} decisions already wait on this entity")
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                self._locks.pop(key, None)
