"""Debezium change events, as Debezium Server's HTTP sink posts them for the PostgreSQL connector,
turned into the decoded changes lake.apply_changes takes.

Accepted: the JSON value with the schema wrapper (``{"schema": ..., "payload": ...}``, converter
``schemas.enable=true``) or without it (the payload alone), one event or an array of them, and the
structured CloudEvents format (``specversion``, ``iodebezium*`` attributes, ``data``). Heartbeats
(a value with ``ts_ms`` and no ``op``) and logical decoding messages (``op`` m) are ignored.

Values are decoded by their Connect schema when it is there: ``org.apache.kafka.connect.data.Decimal``
(base64 big-endian unscaled integer, scale from the schema), ``io.debezium.data.VariableScaleDecimal``
(``{"scale", "value"}``), ``io.debezium.time.MicroTimestamp`` (microseconds), ``io.debezium.time.Timestamp``
(milliseconds), ``io.debezium.time.ZonedTimestamp`` (ISO text, kept) and ``io.debezium.time.Date``
(days). Without a schema, the mapping's ``decode`` names the encoding of each such column.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from app.serve.jsonvalues import problem_in

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BadEvent(ValueError):
    """An event this endpoint cannot read; the message says why."""


@dataclass(frozen=True)
class Change:
    table: str
    op: str
    lsn: int
    ts_ms: int
    row: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"table": self.table, "op": self.op, "lsn": self.lsn, "ts_ms": self.ts_ms, "row": self.row}


def _unscaled(raw: Any) -> int:
    if not isinstance(raw, str):
        raise BadEvent(f"a decimal is base64 text, not {raw!r}")
    try:
        return int.from_bytes(base64.b64decode(raw, validate=True), "big", signed=True)
    except (binascii.Error, ValueError):
        raise BadEvent(f"not base64: {raw!r}") from None


def decode_value(value: Any, name: str | None, parameters: dict[str, Any] | None) -> Any:
    """One column value by its Connect logical type name (or a mapping's decode hint)."""
    if value is None or name is None:
        return value
    if not isinstance(name, str):
        raise BadEvent(f"a Connect type name is text, not {name!r}")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadEvent(f"the parameters of a Connect type are an object, not {parameters!r}")
    if name == "org.apache.kafka.connect.data.Decimal" or name.startswith("decimal:"):
        scale = int((parameters or {}).get("scale", 0)) if not name.startswith("decimal:") else int(name[8:])
        return str(Decimal(_unscaled(value)).scaleb(-scale))
    if name == "io.debezium.data.VariableScaleDecimal":
        if not isinstance(value, dict) or "scale" not in value or "value" not in value:
            raise BadEvent(f"a variable-scale decimal is {{scale, value}}, not {value!r}")
        return str(Decimal(_unscaled(value["value"])).scaleb(-int(value["scale"])))
    if name in ("io.debezium.time.MicroTimestamp", "micro_timestamp"):
        return (EPOCH + timedelta(microseconds=int(value))).isoformat()
    if name in ("io.debezium.time.Timestamp", "timestamp"):
        return (EPOCH + timedelta(milliseconds=int(value))).isoformat()
    if name in ("io.debezium.time.Date", "date"):
        # midnight UTC, so it reads the same into a date or a timestamptz column
        return datetime.combine(date(1970, 1, 1) + timedelta(days=int(value)), datetime.min.time(), UTC).isoformat()
    return value  # ZonedTimestamp (ISO text) and everything else as JSON has it


def _row(image: Any, fields: dict[str, dict[str, Any]], hints: dict[str, str]) -> dict[str, Any]:
    if not isinstance(image, dict):
        raise BadEvent("the row image (before/after) is not an object")
    out = {}
    for col, value in image.items():
        spec = fields.get(col)
        try:
            if spec is not None:
                out[col] = decode_value(value, spec.get("name"), spec.get("parameters"))
            else:
                out[col] = decode_value(value, hints.get(col), None)
        except InvalidOperation:  # a scale past what a decimal can hold
            raise BadEvent(f"column {col}: a decimal scale out of range") from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadEvent(f"column {col}: {exc}") from None
    return out


def _row_fields(schema: Any, side: str) -> dict[str, dict[str, Any]]:
    if not isinstance(schema, dict):
        return {}
    fields = schema.get("fields", [])
    if not isinstance(fields, list):
        raise BadEvent(f"schema.fields is a list of the envelope's fields, not {fields!r}")
    for f in fields:
        if isinstance(f, dict) and f.get("field") == side:
            columns = f.get("fields", [])
            if not isinstance(columns, list):
                raise BadEvent(f"schema.fields of {side} is a list of its columns, not {columns!r}")
            named = [c for c in columns if isinstance(c, dict) and "field" in c]
            if bad := [c["field"] for c in named if not isinstance(c["field"], str)]:
                raise BadEvent(f"schema.fields of {side}: a column name is text, not {bad[0]!r}")
            return {c["field"]: c for c in named}
    return {}


# A source position is a PostgreSQL LSN the lake keeps as bigint; a commit time in milliseconds since
# 1970 is a time PostgreSQL can hold (up to the year 9999 here).
LSN_MAX = 2**63 - 1
TS_MS_MAX = 253_402_300_799_999


def _int(value: Any, what: str, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise BadEvent(f"{what} is not a number: {value!r}") from None
    if not 0 <= number <= high:
        raise BadEvent(f"{what} {number} is out of range (0 to {high:,})")
    return number


def read_event(event: Any, decode_hints: dict[str, dict[str, str]]) -> Change | None:
    """The change one posted event carries, or None for a heartbeat or a logical decoding message."""
    if not isinstance(event, dict):
        raise BadEvent("an event is a json object")
    schema: Any = None
    if "specversion" in event:  # CloudEvents, structured mode
        data = event.get("data")
        if isinstance(data, dict) and "payload" in data:
            schema, data = data.get("schema"), data["payload"]
        if not isinstance(data, dict):
            raise BadEvent("a CloudEvent's data is the change (before/after)")
        op = event.get("iodebeziumop")
        if op is None:
            return None
        payload = {
            **data,
            "op": op,
            "ts_ms": event.get("iodebeziumtsms"),
            "source": {
                "schema": event.get("iodebeziumschema"),
                "table": event.get("iodebeziumtable"),
                "lsn": event.get("iodebeziumlsn"),
                "ts_ms": event.get("iodebeziumtsms"),
            },
        }
    elif "payload" in event and "schema" in event:
        schema, payload = event["schema"], event["payload"]
    else:
        payload = event
    if not isinstance(payload, dict):
        raise BadEvent("the payload is not an object")
    op = payload.get("op")
    if op is None:
        if "ts_ms" in payload:
            return None  # heartbeat
        raise BadEvent("no op: not a Debezium change event")
    if op == "m":
        return None
    if op not in ("c", "r", "u", "d", "t"):
        raise BadEvent(f"unknown op {op!r}")
    source = payload.get("source")
    if not isinstance(source, dict) or not source.get("schema") or not source.get("table"):
        raise BadEvent("source.schema and source.table are required")
    table = f"{source['schema']}.{source['table']}"
    lsn = _int(source.get("lsn"), "source.lsn", LSN_MAX)
    ts_ms = _int(source.get("ts_ms", payload.get("ts_ms")), "source.ts_ms", TS_MS_MAX)
    side = "before" if op == "d" else "after"
    image = payload.get(side)
    row = {} if op == "t" else _row(image, _row_fields(schema, side), decode_hints.get(table, {}))
    return Change(table, op, lsn, ts_ms, row)


def decode_batch(
    events: list[Any], decode_hints: dict[str, dict[str, str]]
) -> tuple[list[tuple[int, Change]], list[dict[str, Any]], int]:
    """The changes a post carries, by their index in it; the events that cannot be read (index and
    reason); and how many were heartbeats or messages."""
    changes: list[tuple[int, Change]] = []
    rejected: list[dict[str, Any]] = []
    ignored = 0
    for i, ev in enumerate(events):
        try:
            if (problem := problem_in(ev)) is not None:  # NaN, infinity, NUL, lone surrogate: named
                raise BadEvent(problem)
            change = read_event(ev, decode_hints)
        except BadEvent as exc:
            rejected.append({"index": i, "reason": str(exc)})
            continue
        if change is None:
            ignored += 1
        else:
            changes.append((i, change))
    return changes, rejected, ignored


def event_text(event: Any) -> str:
    """A posted event as JSON text that keeps it whole: keys sorted (a redelivery reads the same),
    every non-ASCII character escaped, so a NUL or a lone surrogate survives as its escape."""
    return json.dumps(event, ensure_ascii=True, sort_keys=True, separators=(",", ":"))


def _clean(value: Any) -> str | None:
    return value if isinstance(value, str) and problem_in(value) is None else None


def dead_letter(event: Any, reason: str) -> dict[str, Any]:
    """A refused event as the dead-letter table keeps it: its text, the reason, and its upstream table,
    source position and op where they can be read."""
    letter: dict[str, Any] = {"event": event_text(event), "reason": reason}
    if not isinstance(event, dict):
        return letter
    if "specversion" in event:
        schema, table = event.get("iodebeziumschema"), event.get("iodebeziumtable")
        lsn, op = event.get("iodebeziumlsn"), event.get("iodebeziumop")
    else:
        wrapped = event.get("payload")
        body: dict[str, Any] = wrapped if isinstance(wrapped, dict) and "schema" in event else event
        given = body.get("source")
        source: dict[str, Any] = given if isinstance(given, dict) else {}
        schema, table, lsn, op = source.get("schema"), source.get("table"), source.get("lsn"), body.get("op")
    if _clean(schema) and _clean(table):
        letter["upstream_table"] = f"{schema}.{table}"
    if isinstance(lsn, int) and not isinstance(lsn, bool) and 0 <= lsn <= LSN_MAX:
        letter["lsn"] = lsn
    if (cleaned := _clean(op)) and len(cleaned) <= 8:
        letter["op"] = cleaned
    return letter
