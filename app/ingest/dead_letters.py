"""Dead letters of change data capture (lake.cdc_dead_letters): change events the lake refused, kept so
that capture goes on. Listing them, replaying them through the same decoding and landing as the
Debezium endpoint once their mapping or data is fixed, and discarding those that never can land."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from app.ingest.debezium import decode_batch
from app.lake.queries import query
from app.serve.jsonvalues import dumps

REPLAY_BATCH = 1_000


@dataclass(frozen=True)
class Outcome:
    id: int
    status: str  # landed, duplicate, ignored, rejected (still refused), discarded
    reason: str | None


def open_letters(conn: psycopg.Connection, ids: list[int] | None = None, every: bool = False) -> list[Any]:
    """Dead letters (open ones unless `every`), oldest first, restricted to `ids` when given."""
    return conn.execute(query("open_dead_letters"), {"all": every, "ids": ids}).fetchall()


def replay(conn: psycopg.Connection, ids: list[int] | None = None) -> list[Outcome]:
    """Apply the open dead letters (or those of `ids`) again, in arrival order, in one transaction:
    those that land, were applied meanwhile, or are now ignored are resolved; the others stay open with
    their new reason and one more attempt."""
    letters = open_letters(conn, ids)
    hints = {t: d for t, d in conn.execute(query("cdc_decode_hints")).fetchall()}
    outcomes: list[Outcome] = []
    for start in range(0, len(letters), REPLAY_BATCH):
        batch = letters[start : start + REPLAY_BATCH]
        events = [json.loads(row[-1]) for row in batch]
        changes, rejected, _ = decode_batch(events, hints)
        status: dict[int, tuple[str, str | None]] = {r["index"]: ("rejected", r["reason"]) for r in rejected}
        if changes:
            params = {"changes": Jsonb([c.as_json() for _, c in changes], dumps=dumps)}
            for idx, st, reason in conn.execute(query("apply_changes"), params).fetchall():
                status[changes[idx][0]] = (st, reason)
        for i, row in enumerate(batch):
            st, reason = status.get(i, ("ignored", None))  # a heartbeat or message: nothing to apply
            outcomes.append(Outcome(row[0], st, reason))
    _settle(conn, outcomes)
    conn.commit()
    return outcomes


def discard(conn: psycopg.Connection, ids: list[int]) -> list[Outcome]:
    """Resolve the given open dead letters without applying them (they stay in the table, as discarded)."""
    outcomes = [Outcome(row[0], "discarded", None) for row in open_letters(conn, ids)]
    _settle(conn, outcomes)
    conn.commit()
    return outcomes


def _settle(conn: psycopg.Connection, outcomes: list[Outcome]) -> None:
    if outcomes:
        rows = [{"id": o.id, "status": o.status, "reason": o.reason} for o in outcomes]
        conn.execute(query("settle_dead_letters"), {"outcomes": Jsonb(rows)})
