"""JSON for values read from the lake: numeric as JSON numbers, times as ISO 8601, uuids as text."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from starlette.responses import Response


def plain(value: Any) -> Any:
    """A value as JSON has it (non-finite floats become null)."""
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def _default(value: Any) -> Any:
    converted = plain(value)
    if converted is value:
        raise TypeError(f"not JSON serializable: {type(value).__name__}")
    return converted


def finite(value: Any) -> bool:
    """No NaN or infinite float anywhere in a parsed JSON value (Python's parser accepts them)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, list):
        return all(finite(v) for v in value)
    return True


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_default, allow_nan=False, separators=(",", ":"))


class JsonResponse(Response):
    """A JSON response of plain values, encoded once (no per-field walk by the framework)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")
