"""Feature vectors: one-snapshot reads of a feature set for one entity."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from psycopg.rows import dict_row
from pydantic import BeforeValidator

from app.lake.queries import query
from app.serve.auth import require
from app.serve.deps import Pool
from app.serve.errors import NotFound, problem
from app.serve.jsonvalues import iso_time

router = APIRouter(prefix="/v1/features", tags=["features"], dependencies=[Depends(require("score"))])


@router.get("/{feature_set}/{entity}")
async def read_vector(
    pool: Pool,
    feature_set: Annotated[str, Path(min_length=1, max_length=40)],
    entity: Annotated[str, Path(min_length=1, max_length=256)],
    as_of: Annotated[
        datetime | None,
        BeforeValidator(iso_time),
        Query(description="read as of this time, ISO 8601 with a zone (default: now)"),
    ] = None,
    version: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="feature set version (default: latest)")
    ] = None,
) -> dict[str, Any]:
    """Every feature value, its age in seconds, every rule flag and the snapshot they were read in."""
    if as_of is not None and as_of.tzinfo is None:
        raise HTTPException(422, "as_of needs a time zone, e.g. 2026-11-20T12:00:00Z")
    params = {"feature_set": feature_set, "entity": entity, "as_of": as_of, "version": version, "request": None}
    async with pool.connection() as conn:
        try:
            cur = await conn.cursor(row_factory=dict_row).execute(query("read_vector_by_name"), params)
            row = await cur.fetchone()
        except psycopg.errors.UndefinedObject as exc:  # the feature set in the path: a resource
            raise NotFound(problem(exc)) from None
    assert row is not None
    return row
