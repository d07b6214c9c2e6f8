"""Test fixtures: one PostgreSQL cluster of our own per session (lake settings:
logical WAL, commit timestamps), a template database migrated once, and a fresh
copy of it for every test (pytest-postgresql)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from pytest_postgresql import factories
from pytest_postgresql.executors import NoopExecutor

from app.lake.cluster import Cluster, throwaway_cluster
from app.lake.migrations import migrate
from examples.cards.sql import cards_project

TEST_TMP = os.environ.get("CONTEXTLAKE_TEST_TMP")


@pytest.fixture(scope="session")
def lake_cluster() -> Iterator[Cluster]:
    with throwaway_cluster("contextlake-test-", TEST_TMP) as cluster:
        yield cluster


class ClusterServer(NoopExecutor):
    """Our session cluster as pytest-postgresql's server: templates derive from template1."""

    @property
    def template_dbname(self) -> str:
        return "template1"


@pytest.fixture(scope="session")
def lake_server(lake_cluster: Cluster) -> NoopExecutor:
    return ClusterServer(host="127.0.0.1", port=lake_cluster.port, user="postgres", options="", dbname="postgres")


def load_lake(host: str, port: int, user: str, dbname: str, password: str | None, **_: object) -> None:
    """Template database: the engine and the card example project, migrated once per session."""
    migrate(f"postgresql://{user}@{host}:{port}/{dbname}", cards_project())


lake_template = factories.postgresql_noproc(depends_on="lake_server", dbname="lake", load=[load_lake])
lake_conn = factories.postgresql("lake_template")


@pytest.fixture
def dsn(lake_conn: psycopg.Connection) -> str:
    """DSN of this test's own copy of the migrated lake."""
    info = lake_conn.info
    return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c


@pytest.fixture
def empty_dsn(lake_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of its own with nothing in it (for migrating from scratch), dropped afterwards."""
    name = "empty_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    with psycopg.connect(lake_cluster.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield lake_cluster.dsn(name)
    finally:
        with psycopg.connect(lake_cluster.dsn("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
