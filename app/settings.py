"""Service settings, from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Knobs of the HTTP service (environment variables in brackets)."""

    database_url: str  # DATABASE_URL, else the embedded lake
    pool_min: int = 1  # CONTEXTLAKE_POOL_MIN
    pool_max: int = 10  # CONTEXTLAKE_POOL_MAX
    pool_timeout: float = 2.0  # CONTEXTLAKE_POOL_TIMEOUT: seconds to wait for a connection before answering 503
    statement_timeout_ms: int = 2000  # CONTEXTLAKE_STATEMENT_TIMEOUT_MS

    @classmethod
    def from_env(cls, database_url: str) -> Settings:
        return cls(
            database_url=database_url,
            pool_min=int(os.environ.get("CONTEXTLAKE_POOL_MIN", "1")),
            pool_max=int(os.environ.get("CONTEXTLAKE_POOL_MAX", "10")),
            pool_timeout=float(os.environ.get("CONTEXTLAKE_POOL_TIMEOUT", "2")),
            statement_timeout_ms=int(os.environ.get("CONTEXTLAKE_STATEMENT_TIMEOUT_MS", "2000")),
        )
