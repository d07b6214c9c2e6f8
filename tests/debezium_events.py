"""Debezium change events for the tests, written from Debezium's documented PostgreSQL connector format:
the JSON converter's value with and without the schema wrapper, and structured CloudEvents."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

SERVER = "upstream"

# Connect schema of payments.authorizations, as the connector describes it.
AUTH_FIELDS = [
    {"type": "string", "optional": False, "field": "id"},
    {"type": "string", "optional": False, "field": "card_id"},
    {"type": "string", "optional": False, "field": "merchant_id"},
    {
        "type": "bytes",
        "optional": False,
        "name": "org.apache.kafka.connect.data.Decimal",
        "version": 1,
        "parameters": {"scale": "2", "connect.decimal.precision": "14"},
        "field": "amount",
    },
    {"type": "string", "optional": False, "field": "currency"},
    {"type": "string", "optional": False, "field": "country"},
    {"type": "string", "optional": False, "field": "channel"},
    {"type": "string", "optional": True, "field": "device_id"},
    {
        "type": "int64",
        "optional": False,
        "name": "io.debezium.time.MicroTimestamp",
        "version": 1,
        "field": "created_at",
    },
]


def decimal_bytes(value: Decimal, scale: int) -> str:
    unscaled = int(value.scaleb(scale))
    length = max(1, (unscaled.bit_length() + 8) // 8)
    return base64.b64encode(unscaled.to_bytes(length, "big", signed=True)).decode()


def micros(t: datetime) -> int:
    return int((t - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)


def auth_row(i: int, card: str, amount: str, at: datetime, merchant: str = "m1") -> dict[str, Any]:
    """A row of payments.authorizations as the connector encodes it."""
    return {
        "id": f"a{i}",
        "card_id": card,
        "merchant_id": merchant,
        "amount": decimal_bytes(Decimal(amount), 2),
        "currency": "EUR",
        "country": "FR",
        "channel": "pos",
        "device_id": None,
        "created_at": micros(at),
    }


def source(table: str, lsn: int, ts_ms: int, snapshot: str = "false", schema: str = "payments") -> dict[str, Any]:
    return {
        "version": "2.7.3.Final",
        "connector": "postgresql",
        "name": SERVER,
        "ts_ms": ts_ms,
        "snapshot": snapshot,
        "db": "upstream",
        "sequence": f'["{lsn - 8}","{lsn}"]',
        "schema": schema,
        "table": table,
        "txId": 700 + lsn % 97,
        "lsn": lsn,
        "xmin": None,
    }


def payload(
    op: str,
    lsn: int,
    ts_ms: int,
    before: Any = None,
    after: Any = None,
    table: str = "authorizations",
    schema: str = "payments",
) -> dict[str, Any]:
    return {
        "before": before,
        "after": after,
        "source": source(table, lsn, ts_ms, "true" if op == "r" else "false", schema),
        "op": op,
        "ts_ms": ts_ms + 3,
        "transaction": None,
    }


def envelope_schema(
    fields: list[dict[str, Any]], table: str = "authorizations", schema: str = "payments"
) -> dict[str, Any]:
    value = f"{SERVER}.{schema}.{table}.Value"
    return {
        "type": "struct",
        "fields": [
            {"type": "struct", "fields": fields, "optional": True, "name": value, "field": "before"},
            {"type": "struct", "fields": fields, "optional": True, "name": value, "field": "after"},
            {
                "type": "struct",
                "fields": [],
                "optional": False,
                "name": "io.debezium.connector.postgresql.Source",
                "field": "source",
            },
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
        ],
        "optional": False,
        "name": f"{SERVER}.{schema}.{table}.Envelope",
    }


def with_schema(
    p: dict[str, Any],
    fields: list[dict[str, Any]] = AUTH_FIELDS,
    table: str = "authorizations",
    schema: str = "payments",
) -> dict[str, Any]:
    """schemas.enable=true"""
    return {"schema": envelope_schema(fields, table, schema), "payload": p}


def cloudevent(p: dict[str, Any]) -> dict[str, Any]:
    """Structured CloudEvents, JSON data."""
    src = p["source"]
    return {
        "id": f"name:{SERVER};lsn:{src['lsn']};txId:{src['txId']}",
        "source": f"/debezium/postgresql/{SERVER}",
        "specversion": "1.0",
        "type": "io.debezium.connector.postgresql.DataChangeEvent",
        "time": datetime.fromtimestamp(src["ts_ms"] / 1000, UTC).isoformat(),
        "datacontenttype": "application/json",
        "iodebeziumop": p["op"],
        "iodebeziumversion": src["version"],
        "iodebeziumconnector": "postgresql",
        "iodebeziumname": SERVER,
        "iodebeziumtsms": str(src["ts_ms"]),
        "iodebeziumsnapshot": src["snapshot"],
        "iodebeziumdb": "upstream",
        "iodebeziumschema": src["schema"],
        "iodebeziumtable": src["table"],
        "iodebeziumlsn": str(src["lsn"]),
        "iodebeziumxmin": None,
        "iodebeziumtxId": str(src["txId"]),
        "data": {"before": p["before"], "after": p["after"]},
    }


def heartbeat(ts_ms: int, wrapped: bool) -> dict[str, Any]:
    value = {"ts_ms": ts_ms}
    if not wrapped:
        return value
    return {
        "schema": {
            "type": "struct",
            "fields": [{"type": "int64", "optional": False, "field": "ts_ms"}],
            "optional": False,
            "name": "io.debezium.connector.common.Heartbeat",
        },
        "payload": value,
    }


def message(lsn: int, ts_ms: int) -> dict[str, Any]:
    """A logical decoding message (pg_logical_emit_message): op m."""
    return {
        "op": "m",
        "ts_ms": ts_ms,
        "source": source("", lsn, ts_ms, schema=""),
        "message": {"prefix": "audit", "content": base64.b64encode(b"hello").decode()},
    }
