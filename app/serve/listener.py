"""LISTEN for the lake's notifications on a dedicated connection, reconnecting when it drops.

Each channel has a handler for a payload; after every (re)connect each handler's resync runs,
since notifications sent while the connection was down are lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import psycopg
from psycopg import sql

log = logging.getLogger("contextlake.listener")

Handler = Callable[[str], Awaitable[None]]
Resync = Callable[[], Awaitable[None]]


class Listener:
    def __init__(self, url: str, retry_seconds: float = 1.0, ping_seconds: float = 30.0) -> None:
        self.url = url
        self.retry_seconds = retry_seconds
        self.ping_seconds = ping_seconds
        self.handlers: dict[str, Handler] = {}
        self.resyncs: list[Resync] = []
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def on(self, channel: str, handler: Handler, resync: Resync) -> None:
        self.handlers[channel] = handler
        self.resyncs.append(resync)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lake-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                # Keepalives and a periodic ping: a connection lost without a reset (a partition, a NAT
                # timeout) is noticed within a minute instead of waiting for notifications forever.
                async with await psycopg.AsyncConnection.connect(
                    self.url,
                    autocommit=True,
                    connect_timeout=5,
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                ) as conn:
                    for channel in self.handlers:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    for resync in self.resyncs:
                        await resync()
                    self.connected.set()
                    while True:
                        async for note in conn.notifies(timeout=self.ping_seconds):
                            handler = self.handlers.get(note.channel)
                            if handler is not None:
                                await handler(note.payload)
                        await asyncio.wait_for(conn.execute("SELECT 1"), timeout=10)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away, or a resync failed: retry
                self.connected.clear()
                log.warning("lake notifications interrupted (%s); retrying in %.1f s", exc, self.retry_seconds)
                await asyncio.sleep(self.retry_seconds)
