"""Freshness: per feature and per ingest path, the same views psql users query."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from psycopg.rows import dict_row

from app.lake.queries import query
from app.serve.auth import require
from app.serve.deps import Pool

router = APIRouter(prefix="/v1/freshness", tags=["freshness"], dependencies=[Depends(require("score"))])


@router.get("")
async def freshness(pool: Pool) -> dict[str, list[dict[str, Any]]]:
    """lake.feature_freshness and lake.ingest_lag."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        features = await (await cur.execute(query("freshness"))).fetchall()
        lag = await (await cur.execute(query("ingest_lag"))).fetchall()
    return {"features": features, "ingest_lag": lag}
