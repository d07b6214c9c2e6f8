"""Which PostgreSQL the lake lives in: DATABASE_URL, or the embedded cluster."""

from __future__ import annotations

import os

from app.embedded import Cluster, EmbeddedError
from app.paths import lake_home


def embedded_cluster() -> Cluster:
    """The embedded cluster: its port is the one it was created with, else CONTEXTLAKE_PG_PORT (default 54329)."""
    home = lake_home()
    recorded = Cluster(home=home).recorded_port()
    if recorded is not None:
        return Cluster(home=home, port=recorded)
    raw = os.environ.get("CONTEXTLAKE_PG_PORT", "54329")
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise EmbeddedError(f"CONTEXTLAKE_PG_PORT must be a TCP port number, got {raw!r}")
    return Cluster(home=home, port=int(raw))


def database_url(start: bool = True) -> str:
    """DATABASE_URL if set; otherwise the embedded cluster's URL, starting it when asked."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    cluster = embedded_cluster()
    if start:
        cluster.start()
    return cluster.dsn()


def uses_embedded() -> bool:
    return not os.environ.get("DATABASE_URL")
