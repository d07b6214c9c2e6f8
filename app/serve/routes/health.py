"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict[str, object]:
    """The lake answers, and the models of the registry are loaded."""
    state = request.app.state
    async with state.pool.connection() as conn:
        await conn.execute("SELECT count(*) FROM api.feature_sets")
    if not state.models.loaded:
        raise HTTPException(503, "models not loaded yet", headers={"Retry-After": "1"})
    return {
        "status": "ready",
        "models": state.models.describe(),
        "refused_models": state.models.load_errors,
        # Without it model swaps and key revocations wait for the reconnect (revocations: at most the key cache).
        "notifications": "listening" if state.listener.connected.is_set() else "reconnecting",
    }
