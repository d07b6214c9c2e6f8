"""Decisions: /v1/score reads and scores (one round trip); /v1/decide lands the event and decides in one
transaction, serialized per entity."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request
from psycopg.types.json import Jsonb
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from app.lake.queries import query
from app.serve.auth import require
from app.serve.decision_log import DecisionWriter
from app.serve.errors import NotFound, problem
from app.serve.jsonvalues import JsonResponse, dumps, iso_time, problem_in
from app.serve.metrics import Metrics
from app.serve.model_store import ModelStore, Serving
from app.serve.scoring import Catalog, Decision, FeatureSet, checked_score, outcome, read_vectors

router = APIRouter(prefix="/v1", tags=["decisions"])

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z][a-z0-9_]*$")]


def _storable(value: Any) -> Any:
    """A value the lake can take: no NaN or infinite number, no NUL character, no lone surrogate."""
    problem = problem_in(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    _checked = field_validator("entity", "request")(_storable)

    entity: Annotated[str, Field(min_length=1, max_length=256, description="entity key, e.g. the card id")]
    model: Name | None = Field(None, description="model name (its active version decides)")
    feature_set: Name | None = Field(None, description="or: the feature set whose one active model decides")
    request: dict[str, Any] = Field(default_factory=dict, description="payload the on-demand features and rules read")
    as_of: Annotated[AwareDatetime | None, BeforeValidator(iso_time)] = Field(
        None, description="read the features as of this time, ISO 8601 with a zone (default: now)"
    )


class DecideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    _checked = field_validator("entity", "event")(_storable)

    entity: Annotated[str, Field(min_length=1, max_length=256)]
    model: Name | None = None
    feature_set: Name | None = None
    source: Name | None = Field(None, description="events source to land in (default: the feature set's first)")
    event: dict[str, Any] = Field(
        description="the event, keyed by landing column; it is also the request payload of the read. "
        "Give its event id to make retries idempotent."
    )


def _serving(store: ModelStore, model: str | None, feature_set: str | None) -> Serving:
    if model is None and feature_set is None:
        raise HTTPException(422, "name a model or a feature_set")
    serving = store.for_model(model) if model else store.for_feature_set(feature_set or "")
    assert serving.active is not None
    if feature_set is not None and serving.active.feature_set != feature_set:
        raise HTTPException(
            422, f"model {serving.active.name} consumes feature set {serving.active.feature_set}, not {feature_set}"
        )
    return serving


async def _sets(conn: psycopg.AsyncConnection[Any], catalog: Catalog, serving: Serving) -> list[FeatureSet]:
    assert serving.active is not None
    wanted = [(serving.active.feature_set, serving.active.feature_set_version)]
    if serving.shadow is not None:
        shadow_set = (serving.shadow.feature_set, serving.shadow.feature_set_version)
        if shadow_set != wanted[0]:
            wanted.append(shadow_set)
    return [await catalog.get(conn, name, version) for name, version in wanted]


async def _decide(
    conn: psycopg.AsyncConnection[Any],
    app_state: Any,
    route: str,
    serving: Serving,
    entity: str,
    as_of: datetime | None,
    payload: dict[str, Any],
    started: float,
) -> Decision:
    """Read the vector(s) in one statement, score the active (and shadow) model, compose the outcome."""
    active, shadow = serving.active, serving.shadow
    assert active is not None
    sets = await _sets(conn, app_state.catalog, serving)
    t0 = time.perf_counter()
    vectors = await read_vectors(conn, app_state.catalog, sets, entity, as_of, payload)
    t1 = time.perf_counter()
    vector = vectors[0]
    try:
        score = checked_score(active, vector.values)
        shadow_score = None
        if shadow is not None:
            shadow_vec = next(
                v
                for v in vectors
                if v.feature_set.name == shadow.feature_set and v.feature_set.version == shadow.feature_set_version
            )
            shadow_score = checked_score(shadow, shadow_vec.values)
    except ValueError as exc:
        raise HTTPException(500, str(exc)) from None
    t2 = time.perf_counter()
    decided, reasons = outcome(active, score, vector.rule_hits)
    return Decision(
        route=route,
        model=active,
        vector=vector,
        score=score,
        shadow=shadow,
        shadow_score=shadow_score,
        outcome=decided,
        reasons=reasons,
        request=payload,
        started=started,
        db_seconds=t1 - t0,
        model_seconds=t2 - t1,
    )


def _observe(metrics: Metrics, d: Decision) -> None:
    metrics.stage_seconds.labels(d.route, "database").observe(d.db_seconds)
    metrics.stage_seconds.labels(d.route, "model").observe(d.model_seconds)
    metrics.decisions.labels(d.route, d.model.name, d.outcome).inc()
    metrics.observe_ages(d.vector.feature_set.name, d.vector.ages)


DECISION_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the decision, the vector it was made on (values and ages), the snapshot and the timing",
        "content": {
            "application/json": {
                "example": {
                    "decision_id": "6f1c3b1e-8a0e-4a38-9a53-2f0f7f3f6b5e",
                    "decision": "review",
                    "score": 0.63,
                    "model": {"name": "fraud", "version": 3},
                    "shadow": {"name": "fraud", "version": 4, "score": 0.58},
                    "rule_hits": [{"rule": "country_jump", "action": "review", "reason": "a different country..."}],
                    "reasons": ["rule country_jump (review): a different country...", "score 0.6300 >= review ..."],
                    "feature_set": {"name": "fraud", "version": 1},
                    "entity": "card-000042",
                    "as_of": "2026-11-24T06:37:12.110130+00:00",
                    "snapshot": "4320:4320:",
                    "features": {"card_txn_count_60s": {"value": 3, "age_seconds": 0.412}},
                    "timing_ms": {"database": 0.61, "model": 0.12, "total": 1.05},
                }
            }
        },
    }
}


@router.post("/score", dependencies=[Depends(require("score"))], response_class=JsonResponse, responses=DECISION_DOC)
async def score(body: ScoreRequest, request: Request) -> JsonResponse:
    """Score an entity: the feature vector (with each feature's age), rule flags and snapshot from one
    read, the active model's score (and the shadow model's, logged, never deciding), and the decision."""
    started = time.perf_counter()
    state = request.app.state
    serving = _serving(state.models, body.model, body.feature_set)
    async with state.pool.connection() as conn:
        d = await _decide(conn, state, "score", serving, body.entity, body.as_of, body.request, started)
    timing = d.timing_ms()
    writer: DecisionWriter = state.decision_log
    writer.submit(d.log_row(timing))  # LogFull when the backlog is full: 503 (errors.py)
    _observe(state.metrics, d)
    return JsonResponse(d.response(timing))


def _replayed(logged: dict[str, Any], fs: FeatureSet) -> dict[str, Any]:
    """The response of a decision already made for this event (a retried /v1/decide); `fs` is the feature
    set version the decision was made with."""
    rules = {r.name: r for r in fs.rules}
    ages = logged["ages"]
    return {
        "decision_id": logged["decision_id"],
        "decision": logged["outcome"],
        "score": logged["score"],
        "model": {"name": logged["model"], "version": logged["model_version"]},
        "shadow": None
        if logged["shadow_model"] is None
        else {"name": logged["shadow_model"], "version": logged["shadow_version"], "score": logged["shadow_score"]},
        "rule_hits": [
            {"rule": n, "action": rules[n].action, "reason": rules[n].reason} for n in logged["rule_hits"] if n in rules
        ],
        "reasons": logged["reasons"],
        "feature_set": {"name": logged["feature_set"], "version": logged["feature_set_version"]},
        "entity": logged["entity"],
        "as_of": logged["as_of"],
        "snapshot": logged["snapshot"],
        "features": {f: {"value": v, "age_seconds": ages.get(f)} for f, v in logged["features"].items()},
        "timing_ms": logged["latency_ms"],
        "source": logged["source"],
        "event_id": logged["event_id"],
        "replayed": True,
    }


@router.post(
    "/decide", dependencies=[Depends(require("score", "ingest"))], response_class=JsonResponse, responses=DECISION_DOC
)
async def decide(body: DecideRequest, request: Request) -> JsonResponse:
    """Decide and commit: in one transaction, holding the entity's lock, read the vector, score, land the
    event and log the decision, so a decision sees every earlier decision on the entity. The event happens
    at the decision's time. A retry with the same event id returns the first decision and lands nothing."""
    started = time.perf_counter()
    state = request.app.state
    serving = _serving(state.models, body.model, body.feature_set)
    assert serving.active is not None
    try:
        async with state.entity_gate.hold(body.entity), state.pool.connection() as conn:
            d = await _decide_and_commit(conn, state, body, serving, started)
    except _Replayed as replay:
        return JsonResponse(replay.body)
    _observe(state.metrics, d)
    return JsonResponse(d.response(d.timing_ms()))


class _Replayed(Exception):  # noqa: N818 - control flow: the decision already exists
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body


async def _decide_and_commit(
    conn: psycopg.AsyncConnection[Any], state: Any, body: DecideRequest, serving: Serving, started: float
) -> Decision:
    sets = await _sets(conn, state.catalog, serving)
    source = body.source or sets[0].event_source
    if source is None:
        raise HTTPException(422, f"feature set {sets[0].name} reads no events source: name the source")
    event = dict(body.event)
    lock = {
        "source": source,
        "entity": body.entity,
        "event": Jsonb(event, dumps=dumps),
        "lock_timeout": f"{state.settings.decide_lock_timeout_ms}ms",
    }
    try:
        async with conn.transaction():
            row = await (await conn.execute(query("lock_entity"), lock)).fetchone()
            assert row is not None
            locked = row[0]
            if sets[0].entity is not None and locked["entity"] != sets[0].entity:
                raise HTTPException(
                    422,
                    f"source {source} lands {locked['entity']} events; "
                    f"feature set {sets[0].name} is per {sets[0].entity}",
                )
            decided = locked["decided"]
            if decided is not None:
                if decided["entity"] != body.entity:
                    raise HTTPException(409, f"event {decided['event_id']} of {source} was decided for another entity")
                logged_set = await state.catalog.get(conn, decided["feature_set"], decided["feature_set_version"])
                raise _Replayed(_replayed(decided, logged_set))
            id_column, time_column = locked["id_column"], locked["time_column"]
            if event.get(time_column) is not None:
                # A client time could hide the event from the windows of the decisions that follow it
                # (a backdated one falls out of a 24-hour limit at once).
                raise HTTPException(422, f"{time_column}: a decided event happens at the decision time; leave it out")
            if id_column and event.get(id_column) is None:
                event[id_column] = str(uuid.uuid4())
            d = await _decide(conn, state, "decide", serving, body.entity, None, event, started)
            event[time_column] = d.vector.as_of
            d.source, d.event_id = source, (str(event[id_column]) if id_column else None)
            timing = d.timing_ms()
            async with conn.pipeline():
                landed_cur = await conn.execute(
                    query("land_event"), {"source": source, "entity": body.entity, "event": Jsonb(event, dumps=dumps)}
                )
                await conn.execute(query("log_decisions"), {"rows": Jsonb([d.log_row(timing)], dumps=dumps)})
            landed = await landed_cur.fetchone()
            if id_column and (landed is None or landed[0] is None):
                raise HTTPException(409, f"event {d.event_id} of {source} had already landed without a decision")
    except psycopg.errors.UndefinedObject as exc:
        if body.source is None:  # the source came from the model's feature set, not from the request
            raise NotFound(problem(exc)) from None
        raise
    return d
