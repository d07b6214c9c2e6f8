"""Prometheus metrics (unauthenticated, as scrapers expect: keep the port internal)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from app.lake.queries import query
from app.serve.metrics import Metrics

router = APIRouter(tags=["health"])
log = logging.getLogger("contextlake.metrics")


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Request latency by route, decision stages, feature ages, decisions by outcome, ingest lag, pool use."""
    state = request.app.state
    m: Metrics = state.metrics
    stats = state.pool.get_stats()
    m.pool.labels("size").set(stats.get("pool_size", 0))
    m.pool.labels("idle").set(stats.get("pool_available", 0))
    m.pool.labels("waiting").set(stats.get("requests_waiting", 0))
    m.pool.labels("max").set(state.pool.max_size)
    models = state.models
    m.models.labels("active").set(sum(1 for s in models.by_name.values() if s.active))
    m.models.labels("shadow").set(sum(1 for s in models.by_name.values() if s.shadow))
    m.log_pending.set(len(state.decision_log.pending))
    m.log_written.set(state.decision_log.written)
    try:
        async with asyncio.timeout(1.0), state.pool.connection(timeout=1.0) as conn:
            rows = await (await conn.execute(query("ingest_lag_metrics"))).fetchall()
        for source, p50, p95, p99, mx in rows:
            for q, v in (("0.5", p50), ("0.95", p95), ("0.99", p99), ("1", mx)):
                if v is not None:
                    m.ingest_lag.labels(source, q).set(v)
    except Exception as exc:  # metrics still answer while the lake is away
        log.warning("ingest lag not read for /metrics: %s", exc)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
