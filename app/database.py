"""Which PostgreSQL the lake lives in: DATABASE_URL, or the embedded cluster."""

from __future__ import annotations

import os

from app.embedded import Cluster
from app.paths import lake_home


def embedded_cluster() -> Cluster:
    return Cluster(home=lake_home(), port=int(os.environ.get("CONTEXTLAKE_PG_PORT", "54329")))


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
