"""Dependencies of the routes: the connection pool of the running app."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool


def get_pool(request: Request) -> AsyncConnectionPool:
    return cast(AsyncConnectionPool, request.app.state.pool)


Pool = Annotated[AsyncConnectionPool, Depends(get_pool)]
