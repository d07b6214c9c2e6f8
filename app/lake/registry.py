"""Model registry and API keys, as the CLI, the demo and the tests manage them (as the lake's owner)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.lake.queries import query
from app.serve.onnx_model import check_inputs


def latest_feature_set_version(conn: psycopg.Connection, feature_set: str) -> int:
    row = conn.execute(query("latest_feature_set_version"), {"feature_set": feature_set}).fetchone()
    if row is None or row[0] is None:
        raise psycopg.errors.UndefinedObject(f"unknown feature set {feature_set!r}")
    return int(row[0])


def model_inputs(conn: psycopg.Connection, feature_set: str, version: int) -> list[str]:
    """The features of a set version a model can take (numeric and boolean), in the set's order."""
    return [r[0] for r in conn.execute(query("model_inputs"), {"feature_set": feature_set, "version": version})]


def register_model(
    conn: psycopg.Connection,
    name: str,
    onnx: bytes,
    feature_set: str,
    *,
    version: int | None = None,
    feature_set_version: int | None = None,
    features: Sequence[str] | None = None,
    review_at: float | None = 0.5,
    decline_at: float | None = 0.9,
    status: str = "shadow",
) -> dict[str, Any]:
    """Register an ONNX model for a feature set version (default: the latest), consuming the given
    features (default: every numeric and boolean feature of the set, in its order). The ONNX input
    must take exactly that many features; the lake checks the features against the set."""
    if feature_set_version is None:
        feature_set_version = latest_feature_set_version(conn, feature_set)
    if features is None:
        features = model_inputs(conn, feature_set, feature_set_version)
    if version is None:
        row = conn.execute(query("next_model_version"), {"name": name}).fetchone()
        assert row is not None
        version = int(row[0])
    params = {
        "name": name,
        "version": version,
        "onnx": onnx,
        "feature_set": feature_set,
        "feature_set_version": feature_set_version,
        "features": list(features),
        "review_at": review_at,
        "decline_at": decline_at,
        "status": status,
    }
    # The lake checks the features against the set, then the ONNX input is checked against the features;
    # either refusal rolls the registration back.
    with conn.transaction():
        out = conn.cursor(row_factory=dict_row).execute(query("register_model"), params).fetchone()
        assert out is not None
        check_inputs(onnx, out["features"])
    return out


def set_model_status(conn: psycopg.Connection, name: str, version: int, status: str) -> dict[str, Any]:
    with conn.transaction():
        params = {"name": name, "version": version, "status": status}
        out = conn.cursor(row_factory=dict_row).execute(query("set_model_status"), params).fetchone()
    assert out is not None
    return out


def create_api_key(conn: psycopg.Connection, name: str, scopes: Sequence[str]) -> tuple[str, str]:
    """A new key (key id, the key itself); the key is shown once and only its hash is kept."""
    with conn.transaction():
        row = conn.execute(query("create_api_key"), {"name": name, "scopes": list(scopes)}).fetchone()
    assert row is not None
    return row[0], row[1]


def import_api_key(conn: psycopg.Connection, name: str, scopes: Sequence[str], key: str) -> str:
    """Register a key made elsewhere (a deployment secret); returns its key id."""
    with conn.transaction():
        row = conn.execute(query("import_api_key"), {"name": name, "scopes": list(scopes), "key": key}).fetchone()
    assert row is not None
    return str(row[0])


def revoke_api_key(conn: psycopg.Connection, key_id: str) -> bool:
    with conn.transaction():
        row = conn.execute(query("revoke_api_key"), {"key_id": key_id}).fetchone()
    return bool(row and row[0])
