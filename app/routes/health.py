"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import Pool

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(pool: Pool) -> dict[str, str]:
    """The lake is reachable and migrated (its feature catalog answers)."""
    async with pool.connection() as conn:
        await conn.execute("SELECT count(*) FROM lake.feature_sets")
    return {"status": "ready"}
