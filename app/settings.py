"""Every knob of contextlake, read from the environment once: one settings object, each default
written here and nowhere else (environment variables in brackets)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from psycopg.conninfo import make_conninfo
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_ROLE = "contextlake_service"


class Settings(BaseSettings):
    """Where the lake is, which project to apply, and how the HTTP service behaves."""

    model_config = SettingsConfigDict(
        env_prefix="CONTEXTLAKE_", frozen=True, populate_by_name=True, extra="ignore", env_ignore_empty=True
    )

    # The lake
    database_url: str | None = Field(None, validation_alias=AliasChoices("DATABASE_URL", "database_url"))
    """[DATABASE_URL] the owner's connection (migrations, CLI); unset: the embedded lake in `home`."""
    home: Path = Path(".contextlake")
    """[CONTEXTLAKE_HOME] directory of the embedded cluster."""
    pg_port: int = Field(54329, gt=0, lt=65536)
    """[CONTEXTLAKE_PG_PORT] port of the embedded cluster when it is first created."""
    pg_bindir: Path | None = None
    """[CONTEXTLAKE_PG_BINDIR] PostgreSQL server binaries (default: the newest /usr/lib/postgresql/*/bin)."""
    project: Path | None = None
    """[CONTEXTLAKE_PROJECT] feature project whose migrations `migrate`, `up` and `serve` apply after the engine."""

    # The HTTP service
    service_url: str | None = None
    """[CONTEXTLAKE_SERVICE_URL] what the service connects as (default: DATABASE_URL as contextlake_service)."""
    pool_min: int = 1
    """[CONTEXTLAKE_POOL_MIN]"""
    pool_max: int = 10
    """[CONTEXTLAKE_POOL_MAX]"""
    pool_timeout: float = 2.0
    """[CONTEXTLAKE_POOL_TIMEOUT] seconds to wait for a connection before answering 503."""
    statement_timeout_ms: int = 2000
    """[CONTEXTLAKE_STATEMENT_TIMEOUT_MS]"""
    auth: bool = True
    """[CONTEXTLAKE_AUTH] off serves without API keys (local exploration only)."""
    key_cache_seconds: float = 60.0
    """[CONTEXTLAKE_KEY_CACHE_SECONDS] revocations also arrive by notification."""
    log_batch: int = 500
    """[CONTEXTLAKE_LOG_BATCH] decisions per write of the /v1/score decision log."""
    log_interval: float = 0.05
    """[CONTEXTLAKE_LOG_INTERVAL] seconds between writes of the decision log."""
    log_queue_max: int = 100_000
    """[CONTEXTLAKE_LOG_QUEUE_MAX] unwritten decisions before /v1/score answers 503."""
    log_shutdown_seconds: float = 10.0
    """[CONTEXTLAKE_LOG_SHUTDOWN_SECONDS] to write the log at shutdown, then spill to a file."""
    decide_lock_timeout_ms: int = 1000
    """[CONTEXTLAKE_DECIDE_LOCK_TIMEOUT_MS] wait for an entity's lock, else 429."""
    decide_queue_max: int = 16
    """[CONTEXTLAKE_DECIDE_QUEUE_MAX] decisions waiting on one entity, else 429."""
    ingest_body_bytes: int = Field(32 * 1024 * 1024, gt=0)
    """[CONTEXTLAKE_INGEST_BODY_BYTES] largest body of /v1/events and /v1/cdc/debezium (else 413)."""
    request_body_bytes: int = Field(1024 * 1024, gt=0)
    """[CONTEXTLAKE_REQUEST_BODY_BYTES] largest body of any other route, /v1/score and /v1/decide (else 413)."""
    max_in_flight: int | None = Field(None, gt=0)
    """[CONTEXTLAKE_MAX_IN_FLIGHT] requests in progress at once, per worker (default: 2 x pool_max)."""
    max_waiting: int | None = Field(None, ge=0)
    """[CONTEXTLAKE_MAX_WAITING] requests waiting for one of those slots (default: 2 x pool_max); past it 503."""
    max_wait_ms: float = Field(10.0, ge=0)
    """[CONTEXTLAKE_MAX_WAIT_MS] longest wait for a slot, shortened by a request's X-Request-Timeout-Ms; then 503."""
    cdc_rejects: Literal["dead_letter", "refuse"] = "dead_letter"
    """[CONTEXTLAKE_CDC_REJECTS] a change event the lake refuses: kept in lake.cdc_dead_letters and answered 200
    naming it (dead_letter), or answered 422 so the sender redelivers it (refuse)."""
    spill_dir: Path | None = None
    """[CONTEXTLAKE_SPILL_DIR] unwritten decisions at shutdown (default: decision-spill in `home`)."""

    @property
    def lake_home(self) -> Path:
        return self.home.resolve()

    @property
    def admission_limit(self) -> int:
        # Room for decisions that wait on an entity's lock (they hold their slot while they wait);
        # a CPU-bound deployment answers faster with fewer (docs/http-api.md, Overload).
        return self.max_in_flight or 2 * self.pool_max

    @property
    def admission_queue(self) -> int:
        return self.max_waiting if self.max_waiting is not None else 2 * self.pool_max

    @property
    def owner_url(self) -> str:
        if not self.database_url:
            raise ValueError("no database: set DATABASE_URL, or let the command start the embedded lake")
        return self.database_url

    @property
    def pool_url(self) -> str:
        """The service's connection: CONTEXTLAKE_SERVICE_URL, else DATABASE_URL as the service role
        (which owns nothing and cannot run DDL)."""
        return self.service_url or make_conninfo(self.owner_url, user=SERVICE_ROLE)

    @property
    def decision_spill_dir(self) -> Path:
        return self.spill_dir or self.lake_home / "decision-spill"


def from_env() -> Settings:
    """The settings of this process, from its environment (a command reads them once, at its start)."""
    return Settings()
