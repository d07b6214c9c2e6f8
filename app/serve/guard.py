"""Before a request body is read: the API key is checked (an unauthenticated client cannot make the
service read, buffer and parse a body), and the body is held to its route's size limit, by its
Content-Length and again while it streams (413 either way). A plain ASGI middleware."""

from __future__ import annotations

import json
from collections.abc import Mapping

import psycopg
from fastapi import HTTPException
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.serve.auth import SCOPES_STATE, ApiKeys, presented

INGEST_ROUTES = ("/v1/events", "/v1/cdc/debezium")


async def _answer(send: Send, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """Key first, then at most `ingest_bytes` for the ingest routes and `request_bytes` for any other body."""

    def __init__(self, app: ASGIApp, ingest_bytes: int, request_bytes: int) -> None:
        self.app = app
        self.ingest_bytes = ingest_bytes
        self.request_bytes = request_bytes

    def limit(self, path: str) -> int:
        return self.ingest_bytes if path in INGEST_ROUTES else self.request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        request = Request(scope)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _answer(send, 413, f"the body has {int(declared):,} bytes; this route takes at most {limit:,}")
            return
        keys: ApiKeys | None = scope["app"].state.api_keys if hasattr(scope["app"].state, "api_keys") else None
        if keys is not None:
            try:
                # Kept for the route's scope check (auth.require), which then does not look the key up again.
                scope.setdefault("state", {})[SCOPES_STATE] = await keys.scopes(presented(request))
            except HTTPException as exc:
                await _answer(send, exc.status_code, str(exc.detail), exc.headers)
                return
            except (PoolTimeout, psycopg.OperationalError) as exc:  # outside the app's handlers: answered here
                await _answer(
                    send, 503, f"database unavailable: {str(exc).strip() or type(exc).__name__}", {"Retry-After": "1"}
                )
                return
        received = 0
        answered = False  # the guard answered 413 itself: whatever the app sends after that is dropped

        async def limited() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    answered = True
                    await _answer(send, 413, f"the body is over this route's limit of {limit:,} bytes")
                    return {"type": "http.disconnect"}  # the app stops reading it
            return message

        async def sending(message: Message) -> None:
            if not answered:
                await send(message)

        try:
            await self.app(scope, limited, sending)
        except Exception:
            if not answered:  # the app's own failure: raised on to the error handling around it
                raise
