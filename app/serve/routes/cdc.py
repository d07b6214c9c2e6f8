"""Change data capture: what Debezium Server's HTTP sink posts (see app/ingest/debezium.py for the formats).

The answer is 2xx only once the changes are committed. A change that cannot be read or landed is named
(index and reason) after the others were committed. By default (CONTEXTLAKE_CDC_REJECTS=dead_letter)
it is also kept in lake.cdc_dead_letters and the answer is 200: Debezium Server stops capturing after
a fixed number of refused posts, so one bad change must not end capture; `contextlake cdc replay`
applies it after a fix. With `refuse`, the answer is 422: Debezium redelivers the batch, the committed
ones are recognised by their source position and apply nothing twice, and the bad one keeps failing
loudly until its mapping or data is fixed. Nothing is dropped silently either way."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from psycopg.types.json import Jsonb

from app.ingest.debezium import dead_letter, decode_batch
from app.lake.queries import query
from app.serve.auth import require
from app.serve.jsonvalues import JsonResponse, dumps

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
    keep = state.settings.cdc_rejects == "dead_letter"
    async with state.pool.connection() as conn:
        hints = {t: d for t, d in await (await conn.execute(query("cdc_decode_hints"))).fetchall()}
        changes, rejected, ignored = decode_batch(events, hints)
        results: list[tuple[int, str, str | None]] = []
        if changes:
            params = {"changes": Jsonb([c.as_json() for _, c in changes], dumps=dumps)}
            rows = await (await conn.execute(query("apply_changes"), params)).fetchall()
            results = [(changes[idx][0], status, reason) for idx, status, reason in rows]
        rejected += [{"index": i, "reason": reason} for i, status, reason in results if status == "rejected"]
        rejected.sort(key=lambda r: r["index"])
        if rejected and keep:
            letters = Jsonb([dead_letter(events[r["index"]], r["reason"]) for r in rejected], dumps=dumps)
            kept = dict(await (await conn.execute(query("dead_letter_changes"), {"rejects": letters})).fetchall())
            for n, r in enumerate(rejected):
                r["dead_letter"] = kept[n]
    counts: dict[str, Any] = {s: sum(1 for _, st, _ in results if st == s) for s in ("landed", "duplicate", "ignored")}
    counts["ignored"] += ignored
    for status, n in (*counts.items(), ("rejected", len(rejected))):
        if n:
            state.metrics.events.labels("debezium", status).inc(n)
    if rejected and keep:
        state.metrics.dead_letters.inc(len(rejected))
        return JsonResponse({**counts, "rejected": rejected, "dead_lettered": len(rejected)}, 200)
    return JsonResponse({**counts, "rejected": rejected}, 422 if rejected else 200)
