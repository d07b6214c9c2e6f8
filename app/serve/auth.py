"""API keys: ``clk_<key id>_<secret>``, sent as ``Authorization: Bearer <key>``, ``X-API-Key``, or (for
senders that cannot set headers) the ``api_key`` query parameter.

The lake keeps only the sha256 of each secret (api.api_key reads it). Verified keys are cached for
``key_cache_seconds``, unknown key ids for a few seconds, least recently used first out when the cache
is full; a revocation notifies every service, which drops the key at once. Lookups of ids the cache
does not hold run a few at a time, so a flood of made-up keys cannot take the connection pool from
the requests that carry real ones.
Scopes: ``score`` (scoring, feature and freshness reads), ``ingest`` (landing events), ``admin``
(everything, and the model registry).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request
from psycopg_pool import AsyncConnectionPool

from app.lake.queries import query

SCOPES = ("score", "ingest", "admin")
KEY_FORMAT = re.compile(r"clk_([0-9a-f]{12})_([0-9a-f]{64})")
CACHE_MAX = 10_000  # key ids remembered (known or not); the least recently used goes first
UNKNOWN_SECONDS = 5.0  # how long an id with no key is remembered (a key created since is seen after this)
LOOKUPS_AT_ONCE = 2  # lookups of ids the cache does not hold, in flight at once
SCOPES_STATE = "api_key_scopes"  # request state: the scopes of the key a request carries, once checked


@dataclass(frozen=True)
class _Entry:
    expires: float
    secret_sha256: str | None  # None: no such key
    scopes: frozenset[str]
    revoked: bool


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


class ApiKeys:
    def __init__(self, pool: AsyncConnectionPool, cache_seconds: float) -> None:
        self.pool = pool
        self.cache_seconds = cache_seconds
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._generation = 0  # bumped by every revocation notice: a lookup in flight then is not cached
        self._lookups = asyncio.Semaphore(LOOKUPS_AT_ONCE)

    def _cached(self, key_id: str) -> _Entry | None:
        entry = self._cache.get(key_id)
        if entry is None:
            return None
        if entry.expires <= time.monotonic():
            del self._cache[key_id]
            return None
        self._cache.move_to_end(key_id)
        return entry

    async def _entry(self, key_id: str) -> _Entry:
        entry = self._cached(key_id)
        if entry is not None:
            return entry
        async with self._lookups:
            entry = self._cached(key_id)  # looked up while this request waited its turn
            if entry is not None:
                return entry
            generation = self._generation
            async with self.pool.connection() as conn:
                row = await (await conn.execute(query("api_key"), {"key_id": key_id})).fetchone()
        now = time.monotonic()
        entry = (
            _Entry(now + min(UNKNOWN_SECONDS, self.cache_seconds), None, frozenset(), True)
            if row is None
            else _Entry(now + self.cache_seconds, row[0], frozenset(row[1]), row[2])
        )
        if generation == self._generation:
            self._cache[key_id] = entry
            self._cache.move_to_end(key_id)
            while len(self._cache) > CACHE_MAX:
                self._cache.popitem(last=False)
        return entry

    async def scopes(self, api_key: str) -> frozenset[str]:
        """The scopes of a valid key; 401 for a malformed, unknown or revoked one."""
        m = KEY_FORMAT.fullmatch(api_key)
        if m is None:
            raise _unauthorized("malformed API key (expected clk_<12 hex key id>_<64 hex secret>)")
        key_id, secret = m.groups()
        entry = await self._entry(key_id)
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if entry.secret_sha256 is None or not hmac.compare_digest(digest, entry.secret_sha256):
            raise _unauthorized("unknown API key")
        if entry.revoked:
            raise _unauthorized(f"API key {key_id} is revoked")
        return entry.scopes

    async def on_notify(self, key_id: str) -> None:
        self._generation += 1
        self._cache.pop(key_id, None)

    async def resync(self) -> None:
        self._generation += 1
        self._cache.clear()


def presented(request: Request) -> str:
    """The API key a request carries; 401 when it carries none."""
    header = request.headers.get("authorization", "")
    api_key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key")
    # A sink that cannot set headers (Debezium Server's HTTP sink) puts the key in its URL.
    api_key = api_key or request.query_params.get("api_key")
    if not api_key:
        raise _unauthorized("an API key is required (Authorization: Bearer <key>, or X-API-Key)")
    return api_key


def require(*scopes: str) -> Callable[[Request], Awaitable[None]]:
    """A route dependency: the request carries a key holding every one of these scopes (or admin)."""
    for s in scopes:
        assert s in SCOPES, s

    async def check(request: Request) -> None:
        keys: ApiKeys | None = request.app.state.api_keys
        if keys is None:  # CONTEXTLAKE_AUTH=off
            return
        held = getattr(request.state, SCOPES_STATE, None)  # checked by the body guard already
        if held is None:
            held = await keys.scopes(presented(request))
        missing = [s for s in scopes if s not in held and "admin" not in held]
        if missing:
            raise HTTPException(403, f"this API key lacks the scope(s) {', '.join(missing)}")

    return check
