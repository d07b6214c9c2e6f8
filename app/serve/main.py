"""The HTTP service: FastAPI app over a psycopg connection pool to the lake."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from app import __version__
from app.serve import errors
from app.serve.admission import Admission, AdmissionControl
from app.serve.auth import ApiKeys
from app.serve.decision_log import DecisionWriter
from app.serve.entity_gate import EntityGate
from app.serve.failsafe import Failsafe
from app.serve.guard import BodyGuard
from app.serve.listener import Listener
from app.serve.logs import redact_keys
from app.serve.metrics import Metrics, TimingMiddleware
from app.serve.model_store import ModelStore
from app.serve.routes import cdc, events, features, freshness, health, metrics, models, score
from app.serve.scoring import Catalog
from app.settings import Settings

log = logging.getLogger("contextlake.service")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.pool_url,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            timeout=settings.pool_timeout,
            # Decide-and-commit relies on READ COMMITTED: its read after the entity lock must see the commit
            # of the decision that held the lock before, whatever the server's default isolation.
            kwargs={
                "autocommit": True,
                "options": f"-c statement_timeout={settings.statement_timeout_ms} "
                "-c default_transaction_isolation=read\\ committed",
            },
            open=False,
        )
        # Open without waiting for the database: the service starts, /readyz says whether it can serve.
        await pool.open(wait=False)
        store = ModelStore(pool)
        keys = ApiKeys(pool, settings.key_cache_seconds) if settings.auth else None
        listener = Listener(settings.pool_url)
        catalog = Catalog()
        listener.on("lake_models", store.on_notify, store.resync)
        listener.on("lake_catalog", catalog.on_notify, catalog.resync)
        if keys is not None:
            listener.on("lake_api_keys", keys.on_notify, keys.resync)
        writer = DecisionWriter(
            pool, settings.decision_spill_dir, settings.log_batch, settings.log_interval, settings.log_queue_max
        )
        app.state.pool = pool
        app.state.models = store
        app.state.api_keys = keys
        app.state.catalog = catalog
        app.state.entity_gate = EntityGate(settings.decide_queue_max)
        app.state.settings = settings
        app.state.decision_log = writer
        app.state.listener = listener
        listener.start()
        writer.start()
        try:
            yield
        finally:
            await listener.stop()
            await writer.close(settings.log_shutdown_seconds)
            await pool.close()

    app = FastAPI(title="contextlake", version=__version__, lifespan=lifespan)
    app.state.metrics = Metrics()
    # Outermost last: timing sees every answer (the failsafe's 500, admission's 503, the guard's 401 and
    # 413); admission refuses before the guard looks a key up or reads a body.
    app.add_middleware(BodyGuard, ingest_bytes=settings.ingest_body_bytes, request_bytes=settings.request_body_bytes)
    app.state.admission = AdmissionControl(
        app.state.metrics, settings.admission_limit, settings.admission_queue, settings.max_wait_ms
    )
    app.add_middleware(Admission, control=app.state.admission)
    app.add_middleware(Failsafe)
    app.add_middleware(TimingMiddleware, metrics=app.state.metrics)

    errors.install(app)
    redact_keys()

    for module in (health, metrics, features, freshness, score, events, cdc, models):
        app.include_router(module.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn: CONTEXTLAKE_SERVICE_URL, else DATABASE_URL as the service role, else the
    embedded lake (started if needed)."""
    from app.lake import database

    settings = Settings()
    if settings.service_url:
        return create_app(settings)
    return create_app(settings.model_copy(update={"database_url": database.database_url(settings)}))
