"""Service settings, from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo

from app.paths import lake_home

SERVICE_ROLE = "contextlake_service"


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "on", "yes"):
        return True
    if raw.lower() in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{name} must be on or off, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Knobs of the HTTP service (environment variables in brackets)."""

    database_url: str  # DATABASE_URL, else the embedded lake: the owner's connection (migrations, CLI)
    service_url: str | None = None  # CONTEXTLAKE_SERVICE_URL: what the service connects as (default: below)
    pool_min: int = 1  # CONTEXTLAKE_POOL_MIN
    pool_max: int = 10  # CONTEXTLAKE_POOL_MAX
    pool_timeout: float = 2.0  # CONTEXTLAKE_POOL_TIMEOUT: seconds to wait for a connection before answering 503
    statement_timeout_ms: int = 2000  # CONTEXTLAKE_STATEMENT_TIMEOUT_MS
    auth: bool = True  # CONTEXTLAKE_AUTH: off serves without API keys (local exploration only)
    key_cache_seconds: float = 60.0  # CONTEXTLAKE_KEY_CACHE_SECONDS: revocations also arrive by notification
    log_batch: int = 500  # CONTEXTLAKE_LOG_BATCH: decisions per write of the /v1/score decision log
    log_interval: float = 0.05  # CONTEXTLAKE_LOG_INTERVAL: seconds between writes of the decision log
    log_queue_max: int = 100_000  # CONTEXTLAKE_LOG_QUEUE_MAX: unwritten decisions before /v1/score answers 503
    log_shutdown_seconds: float = 10.0  # CONTEXTLAKE_LOG_SHUTDOWN_SECONDS: to write the log at shutdown, then spill
    decide_lock_timeout_ms: int = 1000  # CONTEXTLAKE_DECIDE_LOCK_TIMEOUT_MS: wait for an entity's lock, else 429
    decide_queue_max: int = 16  # CONTEXTLAKE_DECIDE_QUEUE_MAX: decisions waiting on one entity, else 429
    spill_dir: Path | None = None  # CONTEXTLAKE_SPILL_DIR: unwritten decisions at shutdown (default: lake home)

    @property
    def pool_url(self) -> str:
        """The service's connection: CONTEXTLAKE_SERVICE_URL, else DATABASE_URL as the service role
        (which owns nothing and cannot run DDL)."""
        return self.service_url or make_conninfo(self.database_url, user=SERVICE_ROLE)

    @property
    def decision_spill_dir(self) -> Path:
        return self.spill_dir or lake_home() / "decision-spill"

    @classmethod
    def from_env(cls, database_url: str) -> Settings:
        env = os.environ.get
        spill = env("CONTEXTLAKE_SPILL_DIR")
        return cls(
            database_url=database_url,
            service_url=env("CONTEXTLAKE_SERVICE_URL") or None,
            pool_min=int(env("CONTEXTLAKE_POOL_MIN", "1")),
            pool_max=int(env("CONTEXTLAKE_POOL_MAX", "10")),
            pool_timeout=float(env("CONTEXTLAKE_POOL_TIMEOUT", "2")),
            statement_timeout_ms=int(env("CONTEXTLAKE_STATEMENT_TIMEOUT_MS", "2000")),
            auth=_flag("CONTEXTLAKE_AUTH", True),
            key_cache_seconds=float(env("CONTEXTLAKE_KEY_CACHE_SECONDS", "60")),
            log_batch=int(env("CONTEXTLAKE_LOG_BATCH", "500")),
            log_interval=float(env("CONTEXTLAKE_LOG_INTERVAL", "0.05")),
            log_queue_max=int(env("CONTEXTLAKE_LOG_QUEUE_MAX", "100000")),
            log_shutdown_seconds=float(env("CONTEXTLAKE_LOG_SHUTDOWN_SECONDS", "10")),
            decide_lock_timeout_ms=int(env("CONTEXTLAKE_DECIDE_LOCK_TIMEOUT_MS", "1000")),
            decide_queue_max=int(env("CONTEXTLAKE_DECIDE_QUEUE_MAX", "16")),
            spill_dir=Path(spill) if spill else None,
        )
