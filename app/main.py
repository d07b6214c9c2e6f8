"""The HTTP service: FastAPI app over a psycopg connection pool to the lake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from app import __version__
from app.routes import features, freshness, health
from app.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.database_url,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            timeout=settings.pool_timeout,
            kwargs={"autocommit": True, "options": f"-c statement_timeout={settings.statement_timeout_ms}"},
            open=False,
        )
        # Open without waiting for the database: the service starts, /readyz says whether it can serve.
        await pool.open(wait=False)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="contextlake", version=__version__, lifespan=lifespan)

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": f"database unavailable: {str(exc).strip() or type(exc).__name__}"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    app.include_router(health.router)
    app.include_router(features.router)
    app.include_router(freshness.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn: DATABASE_URL, else the embedded lake (started if needed)."""
    from app import database

    return create_app(Settings.from_env(database.database_url()))
