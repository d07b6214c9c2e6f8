"""Change data capture: what Debezium Server's HTTP sink posts (see app/debezium.py for the formats).

The answer is 2xx only once the changes are committed. A change that cannot be read or landed is named
(index and reason) in a 422, after the others were committed: Debezium redelivers the batch, the
committed ones are recognised by their source position and apply nothing twice, and the bad one keeps
failing loudly until its mapping or data is fixed. Nothing is dropped silently."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from psycopg.types.json import Jsonb

from app.ingest.debezium import BadEvent, Change, read_event
from app.lake.queries import query
from app.serve.auth import require
from app.serve.jsonvalues import JsonResponse, dumps, problem_in

router = APIRouter(prefix="/v1/cdc", tags=["ingest"])

MAX_BATCH = 10_000


@router.post("/debezium", dependencies=[Depends(require("ingest"))], response_class=JsonResponse)
async def debezium(request: Request) -> JsonResponse:
    """Apply Debezium change events: one event, an array, with or without the schema wrapper, or CloudEvents."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise HTTPException(422, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise HTTPException(400, "JSON nested too deep") from None
    events = body if isinstance(body, list) else [body]
    if len(events) > MAX_BATCH:
        raise HTTPException(413, f"{len(events)} events in one post; at most {MAX_BATCH:,}")
    state = request.app.state
    rejected: list[dict[str, Any]] = []
    changes: list[tuple[int, Change]] = []
    ignored = 0
    async with state.pool.connection() as conn:
        hints = {t: d for t, d in await (await conn.execute(query("cdc_decode_hints"))).fetchall()}
        for i, ev in enumerate(events):
            try:
                if (problem := problem_in(ev)) is not None:  # NaN, infinity, NUL, lone surrogate: named
                    raise BadEvent(problem)
                change = read_event(ev, hints)
            except BadEvent as exc:
                rejected.append({"index": i, "reason": str(exc)})
                continue
            if change is None:
                ignored += 1
            else:
                changes.append((i, change))
        results: list[tuple[int, str, str | None]] = []
        if changes:
            params = {"changes": Jsonb([c.as_json() for _, c in changes], dumps=dumps)}
            rows = await (await conn.execute(query("apply_changes"), params)).fetchall()
            results = [(changes[idx][0], status, reason) for idx, status, reason in rows]
    rejected += [{"index": i, "reason": reason} for i, status, reason in results if status == "rejected"]
    rejected.sort(key=lambda r: r["index"])
    counts = {s: sum(1 for _, st, _ in results if st == s) for s in ("landed", "duplicate", "ignored")}
    counts["ignored"] += ignored
    for status, n in (*counts.items(), ("rejected", len(rejected))):
        if n:
            state.metrics.events.labels("debezium", status).inc(n)
    return JsonResponse({**counts, "rejected": rejected}, 422 if rejected else 200)
