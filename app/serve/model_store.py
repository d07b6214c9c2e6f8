"""The models the service scores with: the active and shadow version of every model name, loaded
from the registry, swapped when the registry notifies a change.

A swap replaces the entry of one name at once; a request holds the LoadedModel it started with,
so a swap never fails a request in flight.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.lake.queries import query
from app.serve.onnx_model import LoadedModel, ModelInputError

log = logging.getLogger("contextlake.models")


@dataclass(frozen=True)
class Serving:
    """What serves one model name: the active version decides, the shadow version is scored beside it."""

    active: LoadedModel | None
    shadow: LoadedModel | None


class UnknownModel(LookupError):
    """No active model by that name, or none for that feature set (404)."""


class AmbiguousModel(ValueError):
    """Several active models consume the feature set a request named (422: name the model)."""


class NotReady(RuntimeError):
    """The registry's models are not loaded yet (503 with Retry-After: the process just started)."""


class ModelStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.by_name: dict[str, Serving] = {}
        self.loaded = False
        self.load_errors: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def _rows(self, name: str | None) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(query("serving_models"), {"name": name})
            return await cur.fetchall()

    @staticmethod
    def _build(rows: list[dict[str, Any]], errors: dict[str, str]) -> dict[str, Serving]:
        staged: dict[str, dict[str, LoadedModel]] = {}
        for row in rows:
            try:
                model = LoadedModel.load(row)
            except ModelInputError as exc:
                errors[f"{row['name']} v{row['version']}"] = str(exc)
                log.error("model %s v%s not loaded: %s", row["name"], row["version"], exc)
                continue
            staged.setdefault(model.name, {})[model.status] = model
        return {name: Serving(m.get("active"), m.get("shadow")) for name, m in staged.items()}

    async def reload(self, name: str | None = None) -> None:
        """Load the serving versions of one name (or all) in a worker thread, then swap them in."""
        async with self._lock:
            rows = await self._rows(name)
            errors: dict[str, str] = {}
            built = await asyncio.to_thread(self._build, rows, errors)
            # A name whose new version fails to load keeps serving the version it had (the failure is in
            # load_errors and /readyz), rather than going dark.
            failed = {k.rsplit(" v", 1)[0] for k in errors}
            kept = {n: s for n, s in self.by_name.items() if n in failed and n not in built}
            if name is None:
                self.by_name = {**built, **kept}
                self.load_errors = errors
            else:
                fresh = dict(self.by_name)
                fresh.pop(name, None)
                fresh.update(built)
                fresh.update(kept)
                self.by_name = fresh
                self.load_errors = {k: v for k, v in self.load_errors.items() if not k.startswith(f"{name} v")}
                self.load_errors.update(errors)
            self.loaded = True
            # What exists now (imported modules, the app, the models) lives as long as the service: out
            # of the cyclic collector's way, so a full collection under load walks the requests' objects
            # only (seen without it: a 190 ms pause of the event loop, every request of that moment late).
            gc.freeze()
            log.info("models serving: %s", self.describe())

    async def on_notify(self, name: str) -> None:
        await self.reload(name)

    async def resync(self) -> None:
        await self.reload(None)

    def describe(self) -> str:
        parts = []
        for name, s in sorted(self.by_name.items()):
            active = f"v{s.active.version}" if s.active else "none"
            shadow = f", shadow v{s.shadow.version}" if s.shadow else ""
            parts.append(f"{name} {active}{shadow}")
        return "; ".join(parts) or "none"

    def for_model(self, name: str) -> Serving:
        self._ready()
        serving = self.by_name.get(name)
        if serving is None or serving.active is None:
            raise UnknownModel(f"no active model named {name!r}; active models: {self._active_names()}")
        return serving

    def for_feature_set(self, feature_set: str) -> Serving:
        self._ready()
        found = [s for s in self.by_name.values() if s.active is not None and s.active.feature_set == feature_set]
        if not found:
            raise UnknownModel(
                f"no active model consumes feature set {feature_set!r}; active models: {self._active_names()}"
            )
        if len(found) > 1:
            names = ", ".join(sorted(s.active.name for s in found if s.active))
            raise AmbiguousModel(
                f"several active models consume feature set {feature_set!r} ({names}): name one as model"
            )
        return found[0]

    def _ready(self) -> None:
        if not self.loaded:
            raise NotReady("the service is starting: the registry's models are not loaded yet")

    def _active_names(self) -> str:
        return ", ".join(sorted(n for n, s in self.by_name.items() if s.active)) or "none"
