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


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "a string holds a NUL character (\\u0000), which the lake's text cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a string holds a lone UTF-16 surrogate (not a character)"
    return None


def iso_time(value: Any) -> Any:
    """A time a client sends is ISO 8601 text with a zone: a number (or digits) is refused, not read as
    seconds since 1970."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str) or value.strip().lstrip("-").replace(".", "", 1).isdigit():
        raise ValueError("a time is ISO 8601 text with a zone, e.g. 2026-11-20T12:00:00Z")
    return value


def problem_in(value: Any) -> str | None:
    """Why a parsed JSON value cannot be stored in the lake as it is, or None: a NaN or infinite number
    (Python's parser accepts them, JSON has none), a NUL character or a lone surrogate in a string."""
    if isinstance(value, float):
        return None if math.isfinite(value) else "a number is NaN or infinite"
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, dict):
        for k, v in value.items():
            found = _text_problem(k) if isinstance(k, str) else None
            if found := found or problem_in(v):
                return found
        return None
    if isinstance(value, list):
        for v in value:
            if found := problem_in(v):
                return found
    return None


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_default, allow_nan=False, separators=(",", ":"))


class JsonResponse(Response):
    """A JSON response of plain values, encoded once (no per-field walk by the framework)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")
