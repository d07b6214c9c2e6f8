"""Every error a route can meet, answered in one place: the exception handlers of the app.

Database errors become what they mean for the request (a value the lake refuses: 422 naming it with
the lake's hint; an unknown name: 422, or 404 where a route says the name was a resource it looked up;
the entity's lock held past its timeout: 429; the lake away: 503 with Retry-After), and so do the
service's own (no such model: 404; a busy entity: 429; a full decision log: 503).
"""

from __future__ import annotations

import json

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg_pool import PoolTimeout

from app.serve.decision_log import LogFull
from app.serve.entity_gate import EntityBusy
from app.serve.model_store import AmbiguousModel, NotReady, UnknownModel
from app.serve.scoring import UnknownFeatureSet

RETRY = {"Retry-After": "1"}


class NotFound(LookupError):
    """What a request names as a resource (a path, the model to score with) does not exist: 404."""


def problem(exc: psycopg.Error) -> str:
    """The lake's message for a refused request, with its hint (which lists the valid names or values)."""
    diag = exc.diag
    message = diag.message_primary or str(exc).strip()
    return f"{message} ({diag.message_hint})" if diag.message_hint else message


def _answer(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers on the app."""

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def lake_away(request: Request, exc: Exception) -> JSONResponse:
        return _answer(503, f"database unavailable: {str(exc).strip() or type(exc).__name__}", RETRY)

    @app.exception_handler(psycopg.errors.LockNotAvailable)
    async def lock_held(request: Request, exc: Exception) -> JSONResponse:
        return _answer(429, "the entity's earlier decisions still hold its lock", RETRY)

    @app.exception_handler(psycopg.DataError)
    @app.exception_handler(psycopg.IntegrityError)
    @app.exception_handler(psycopg.errors.UndefinedColumn)
    @app.exception_handler(psycopg.errors.UndefinedObject)
    @app.exception_handler(psycopg.errors.RaiseException)
    async def refused_input(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, psycopg.Error)
        return _answer(422, problem(exc))

    @app.exception_handler(NotFound)
    @app.exception_handler(UnknownModel)
    @app.exception_handler(UnknownFeatureSet)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return _answer(404, str(exc))

    @app.exception_handler(AmbiguousModel)
    async def ambiguous(request: Request, exc: Exception) -> JSONResponse:
        return _answer(422, str(exc))

    @app.exception_handler(EntityBusy)
    async def entity_busy(request: Request, exc: Exception) -> JSONResponse:
        return _answer(429, str(exc), RETRY)

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, exc: Exception) -> JSONResponse:
        return _answer(503, str(exc), RETRY)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: Exception) -> Response:
        # As FastAPI answers, but encoded as ASCII: a lone surrogate the client sent, echoed in the
        # error, must not make the error itself fail to render.
        assert isinstance(exc, RequestValidationError)
        body = {"detail": jsonable_encoder(exc.errors())}
        return Response(json.dumps(body, ensure_ascii=True, default=str), 422, media_type="application/json")

    @app.exception_handler(LogFull)
    async def log_full(request: Request, exc: Exception) -> JSONResponse:
        return _answer(503, f"decision log backlog: {exc}", RETRY)
