"""Which PostgreSQL the lake lives in: DATABASE_URL, or the embedded cluster."""

from __future__ import annotations

from app.lake.cluster import Cluster
from app.settings import Settings


def embedded_cluster(settings: Settings) -> Cluster:
    """The embedded cluster: its port is the one it was created with, else CONTEXTLAKE_PG_PORT."""
    home = settings.lake_home
    recorded = Cluster(home=home, bindir=settings.pg_bindir).recorded_port()
    return Cluster(home=home, port=recorded or settings.pg_port, bindir=settings.pg_bindir)


def database_url(settings: Settings, start: bool = True) -> str:
    """DATABASE_URL if set; otherwise the embedded cluster's URL, starting it when asked."""
    if settings.database_url:
        return settings.database_url
    cluster = embedded_cluster(settings)
    if start:
        cluster.start()
    return cluster.dsn()


def uses_embedded(settings: Settings) -> bool:
    return not settings.database_url
