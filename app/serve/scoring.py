"""From a read vector to a decision: the feature-set catalog the service caches, the one-statement
read of the vectors a decision needs, the model scores, and the outcome.

Outcome: decline when a decline rule hits or the score reaches the model's decline threshold; else
review when a review rule hits or the score reaches the review threshold; else approve.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.lake.queries import query
from app.serve.jsonvalues import dumps, plain
from app.serve.onnx_model import LoadedModel

OUTCOMES = ("approve", "review", "decline")


@dataclass(frozen=True)
class Rule:
    name: str
    action: str
    reason: str


@dataclass(frozen=True)
class FeatureSet:
    """A feature set version as the service reads it: its generated read function, features and rules."""

    name: str
    version: int
    read_function: sql.Composable
    features: tuple[str, ...]
    rules: tuple[Rule, ...]
    event_source: str | None
    entity: str | None

    @property
    def width(self) -> int:
        """Columns of its typed vector: entity, as_of, snapshot, the features, ages, rules."""
        return 3 + len(self.features) + 2


class UnknownFeatureSet(LookupError):
    pass


class Catalog:
    """Feature set versions are sealed once defined, so each is read from the lake once (and the
    statement reading a combination of them is composed once). Their read functions are generated again
    by an engine upgrade or a new feature of their source; the lake then notifies (channel lake_catalog)
    and everything cached is read again."""

    def __init__(self) -> None:
        self._sets: dict[tuple[str, int], FeatureSet] = {}
        self._statements: dict[tuple[tuple[str, int], ...], str] = {}

    def clear(self) -> None:
        self._sets = {}
        self._statements = {}

    async def on_notify(self, payload: str) -> None:
        self.clear()

    async def resync(self) -> None:
        self.clear()

    def statement(self, conn: AsyncConnection[Any], sets: list[FeatureSet]) -> str:
        key = tuple((fs.name, fs.version) for fs in sets)
        found = self._statements.get(key)
        if found is None:
            found = self._statements[key] = read_statement(sets).as_string(conn)
        return found

    async def get(self, conn: AsyncConnection[Any], name: str, version: int) -> FeatureSet:
        found = self._sets.get((name, version))
        if found is not None:
            return found
        cur = conn.cursor(row_factory=dict_row)
        row = await (await cur.execute(query("feature_set_meta"), {"feature_set": name, "version": version})).fetchone()
        if row is None:
            raise UnknownFeatureSet(f"unknown feature set {name!r} version {version}")
        schema, _, fn = row["read_function"].partition(".")
        fs = FeatureSet(
            name=name,
            version=version,
            read_function=sql.Identifier(schema, fn.strip('"')),
            features=tuple(row["features"]),
            rules=tuple(
                Rule(*r) for r in zip(row["rule_names"], row["rule_actions"], row["rule_reasons"], strict=True)
            ),
            event_source=row["event_source"],
            entity=row["entity"],
        )
        self._sets[(name, version)] = fs
        return fs


@dataclass(frozen=True)
class Vector:
    feature_set: FeatureSet
    entity: str
    as_of: datetime
    snapshot: str
    values: dict[str, Any]
    ages: dict[str, float | None]
    rule_hits: tuple[Rule, ...]

    @classmethod
    def from_row(cls, fs: FeatureSet, row: tuple[Any, ...]) -> Vector:
        entity, as_of, snapshot = row[0], row[1], row[2]
        n = len(fs.features)
        values = dict(zip(fs.features, row[3 : 3 + n], strict=True))
        ages = dict(zip(fs.features, row[3 + n], strict=True))
        hits = tuple(rule for rule, hit in zip(fs.rules, row[4 + n], strict=True) if hit)
        return cls(fs, entity, as_of, snapshot, values, ages, hits)

    def features_json(self) -> dict[str, Any]:
        return {f: plain(v) for f, v in self.values.items()}

    def ages_json(self) -> dict[str, float | None]:
        return {f: plain(a) for f, a in self.ages.items()}


def read_statement(sets: list[FeatureSet]) -> sql.Composed:
    """One statement reading the vector of each feature set (the active model's, and the shadow's when it
    consumes another set) for one entity, at one as_of, in one snapshot."""
    first = sql.SQL(
        "SELECT * FROM {}(%(entity)s, coalesce(%(as_of)s::timestamptz, statement_timestamp()), %(request)s::jsonb)"
        " AS v0"
    ).format(sets[0].read_function)
    more = [
        sql.SQL(" CROSS JOIN LATERAL {}(v0.entity, v0.as_of, %(request)s::jsonb) AS {}").format(
            fs.read_function, sql.Identifier(f"v{i}")
        )
        for i, fs in enumerate(sets[1:], start=1)
    ]
    return sql.Composed([first, *more])


async def read_vectors(
    conn: AsyncConnection[Any],
    catalog: Catalog,
    sets: list[FeatureSet],
    entity: str,
    as_of: datetime | None,
    request: dict[str, Any],
) -> list[Vector]:
    params = {"entity": entity, "as_of": as_of, "request": Jsonb(request, dumps=dumps)}
    row = await (await conn.execute(catalog.statement(conn, sets), params)).fetchone()
    assert row is not None, "a read function returns one row"
    vectors, at = [], 0
    for fs in sets:
        vectors.append(Vector.from_row(fs, row[at : at + fs.width]))
        at += fs.width
    return vectors


def checked_score(model: LoadedModel, values: dict[str, Any]) -> float:
    score = model.score(values)
    if not math.isfinite(score):
        raise ValueError(f"model {model.name} v{model.version} returned a non-finite score ({score})")
    return score


def outcome(model: LoadedModel, score: float, hits: tuple[Rule, ...]) -> tuple[str, list[str]]:
    """The decision and the reasons for it (rule reasons first, then the score threshold reached)."""
    level = 0
    reasons = []
    for rule in hits:
        level = max(level, OUTCOMES.index(rule.action))
        reasons.append(f"rule {rule.name} ({rule.action}): {rule.reason}")
    if model.decline_at is not None and score >= model.decline_at:
        level = 2
        reasons.append(f"score {score:.4f} >= decline threshold {model.decline_at}")
    elif model.review_at is not None and score >= model.review_at:
        level = max(level, 1)
        reasons.append(f"score {score:.4f} >= review threshold {model.review_at}")
    return OUTCOMES[level], reasons


@dataclass
class Decision:
    """A decision as the response and the log both carry it."""

    route: str
    model: LoadedModel
    vector: Vector
    score: float
    shadow: LoadedModel | None
    shadow_score: float | None
    outcome: str
    reasons: list[str]
    request: dict[str, Any]
    started: float
    db_seconds: float
    model_seconds: float
    source: str | None = None
    event_id: str | None = None
    decision_id: str = ""
    decided_at: datetime | None = None

    def __post_init__(self) -> None:
        self.decision_id = self.decision_id or str(uuid.uuid4())
        self.decided_at = self.decided_at or datetime.now(UTC)

    def timing_ms(self) -> dict[str, float]:
        return {
            "database": round(self.db_seconds * 1e3, 3),
            "model": round(self.model_seconds * 1e3, 3),
            "total": round((time.perf_counter() - self.started) * 1e3, 3),
        }

    def response(self, timing: dict[str, float]) -> dict[str, Any]:
        v = self.vector
        body: dict[str, Any] = {
            "decision_id": self.decision_id,
            "decision": self.outcome,
            "score": self.score,
            "model": {"name": self.model.name, "version": self.model.version},
            "shadow": None
            if self.shadow is None
            else {"name": self.shadow.name, "version": self.shadow.version, "score": self.shadow_score},
            "rule_hits": [{"rule": r.name, "action": r.action, "reason": r.reason} for r in v.rule_hits],
            "reasons": self.reasons,
            "feature_set": {"name": v.feature_set.name, "version": v.feature_set.version},
            "entity": v.entity,
            "as_of": v.as_of.isoformat(),
            "snapshot": v.snapshot,
            "features": {f: {"value": plain(val), "age_seconds": plain(v.ages[f])} for f, val in v.values.items()},
            "timing_ms": timing,
        }
        if self.route == "decide":
            body["source"] = self.source
            body["event_id"] = self.event_id
        return body

    def log_row(self, timing: dict[str, float]) -> dict[str, Any]:
        v = self.vector
        return {
            "decision_id": self.decision_id,
            "decided_at": plain(self.decided_at),
            "route": self.route,
            "feature_set": v.feature_set.name,
            "feature_set_version": v.feature_set.version,
            "entity": v.entity,
            "source": self.source,
            "event_id": self.event_id,
            "request": self.request,
            "as_of": plain(v.as_of),
            "snapshot": v.snapshot,
            "features": v.features_json(),
            "ages": v.ages_json(),
            "model": self.model.name,
            "model_version": self.model.version,
            "score": self.score,
            "shadow_model": self.shadow.name if self.shadow else None,
            "shadow_version": self.shadow.version if self.shadow else None,
            "shadow_score": self.shadow_score,
            "rule_hits": [r.name for r in v.rule_hits],
            "reasons": self.reasons,
            "outcome": self.outcome,
            "latency_ms": timing,
        }
