"""The last line of defence: an error no handler answered becomes a logged 500 with a JSON body, and
the client's keep-alive connection stays open (Starlette's own last handler re-raises after its 500,
and the server then drops the connection, so one failing request would cost the client its pooled
connection too). A plain ASGI middleware inside the request timing, so the 500 is counted."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("contextlake.service")

BODY = b'{"detail":"internal error: the service logged it"}'


class Failsafe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            if started:  # half an answer is on the wire: only closing the connection ends it cleanly
                raise
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": BODY})
