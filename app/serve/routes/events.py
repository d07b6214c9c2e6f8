"""Landing events over REST: one event or a batch of up to 10,000, into one source's landing table.

Each event is checked on its own: a bad one is rejected with its index and reason and the good ones
land (207), or with ``atomic`` none land (422). Events are idempotent by their event id: a retried
batch lands nothing twice (those events are counted as duplicates)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.lake.queries import query
from app.serve.auth import require
from app.serve.jsonvalues import JsonResponse, dumps, problem_in

router = APIRouter(prefix="/v1/events", tags=["ingest"])

MAX_BATCH = 10_000


class EventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Annotated[str, Field(min_length=1, max_length=63, description="events source, e.g. card_txn")]
    event: Any = Field(None, description="one event: a json object keyed by landing column")
    events: list[Any] | None = Field(None, max_length=MAX_BATCH, description=f"or a batch of up to {MAX_BATCH:,}")
    atomic: bool = Field(False, description="land all or nothing")

    @model_validator(mode="after")
    def one_or_many(self) -> EventsRequest:
        if (self.event is None) == (self.events is None):
            raise ValueError("give either event (one) or events (a batch)")
        if self.events is not None and not self.events:
            raise ValueError("events is empty")
        return self


@router.post("", dependencies=[Depends(require("ingest"))], response_class=JsonResponse)
async def land_events(body: EventsRequest, request: Request) -> JsonResponse:
    """Land events; the answer counts landed and duplicate events and lists each rejected one."""
    state = request.app.state
    events = [body.event] if body.events is None else body.events
    rejected: list[dict[str, Any]] = []
    sendable: list[tuple[int, Any]] = []
    for i, ev in enumerate(events):
        # NaN and infinities (JSON has none), NUL characters and lone surrogates (the lake's text has
        # none) would fail the whole batch in the lake: the event is named here instead.
        if (problem := problem_in(ev)) is None:
            sendable.append((i, ev))
        else:
            rejected.append({"index": i, "event_id": None, "reason": problem})
    results: list[tuple[int, str | None, str, str | None]] = []
    async with state.pool.connection() as conn:
        try:
            async with conn.transaction():
                if sendable:
                    params = {"source": body.source, "events": Jsonb([ev for _, ev in sendable], dumps=dumps)}
                    rows = await (await conn.execute(query("land_events"), params)).fetchall()
                    results = [(sendable[idx][0], ev_id, status, reason) for idx, ev_id, status, reason in rows]
                rejected += [
                    {"index": i, "event_id": ev_id, "reason": reason}
                    for i, ev_id, status, reason in results
                    if status == "rejected"
                ]
                if body.atomic and rejected:
                    raise _AtomicRollback
        except _AtomicRollback:
            rejected.sort(key=lambda r: r["index"])
            state.metrics.events.labels(body.source, "rejected").inc(len(rejected))
            return JsonResponse(
                {"landed": 0, "duplicates": 0, "rejected": rejected, "detail": "atomic batch: nothing landed"}, 422
            )
    rejected.sort(key=lambda r: r["index"])
    landed = sum(1 for r in results if r[2] == "landed")
    duplicates = sum(1 for r in results if r[2] == "duplicate")
    for status, n in (("landed", landed), ("duplicate", duplicates), ("rejected", len(rejected))):
        if n:
            state.metrics.events.labels(body.source, status).inc(n)
    return JsonResponse({"landed": landed, "duplicates": duplicates, "rejected": rejected}, 207 if rejected else 200)


class _AtomicRollback(Exception):
    pass
