"""docker-compose.yml cannot run here (no container engine): check that it parses, that everything it
wires matches what the code reads and serves, and run its upstream schema on a real PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import yaml

from app.serve.main import create_app
from app.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def env_read_by_the_code() -> set[str]:
    """The environment variables of the one settings object."""
    return {"DATABASE_URL"} | {
        "CONTEXTLAKE_" + name.upper() for name in Settings.model_fields if name != "database_url"
    }


def test_it_parses_and_every_dependency_exists() -> None:
    assert set(SERVICES) == {"lake", "upstream", "migrate", "service", "debezium", "prometheus"}
    for name, svc in SERVICES.items():
        assert "image" in svc or "build" in svc, name
        deps = svc.get("depends_on", {})
        assert set(deps) <= set(SERVICES), name
    assert (PROJECT_ROOT / "Dockerfile").exists()
    for svc in SERVICES.values():
        for volume in svc.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("./"):
                assert (PROJECT_ROOT / host).exists(), host
            else:
                assert host in COMPOSE["volumes"], host


def test_the_lake_runs_with_the_settings_the_engine_needs() -> None:
    command = " ".join(SERVICES["lake"]["command"])
    assert "wal_level=logical" in command and "track_commit_timestamp=on" in command
    assert "wal_level=logical" in " ".join(SERVICES["upstream"]["command"])


def test_every_setting_passed_to_the_service_is_one_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    known = env_read_by_the_code()
    for name in ("service", "migrate"):
        named = set(re.findall(r"--key-from-env (\w+)", " ".join(SERVICES[name].get("command", []))))
        passed = {k for k in SERVICES[name]["environment"] if k.startswith("CONTEXTLAKE_") or k == "DATABASE_URL"}
        passed -= named  # read by the command that names it
        assert passed <= known, (name, passed - known)
    env = SERVICES["service"]["environment"]
    assert "DATABASE_URL" not in env  # the service holds the service role's credentials only
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = Settings()
    assert settings.pool_url == env["CONTEXTLAKE_SERVICE_URL"] and "contextlake_service" in settings.pool_url
    assert settings.pool_max == int(env["CONTEXTLAKE_POOL_MAX"])
    assert str(settings.decision_spill_dir) == env["CONTEXTLAKE_SPILL_DIR"]
    assert env["CONTEXTLAKE_SPILL_DIR"].startswith(SERVICES["service"]["volumes"][0].split(":")[1])
    # the password the migrate step gives the service role is the one the service connects with
    given = re.match(r"\$\{(\w+)", SERVICES["migrate"]["environment"]["SERVICE_PASSWORD"])
    used = re.match(r"\$\{(\w+)", urlsplit(env["CONTEXTLAKE_SERVICE_URL"]).password or "")
    assert given and used and given.group(1) == used.group(1) == "CONTEXTLAKE_SERVICE_PASSWORD"


def test_debezium_posts_to_the_services_cdc_route_with_the_key_migrate_registers() -> None:
    env = SERVICES["debezium"]["environment"]
    url = urlsplit(env["DEBEZIUM_SINK_HTTP_URL"])
    assert env["DEBEZIUM_SINK_TYPE"] == "http" and url.hostname == "service"
    assert f"{url.port}:{url.port}" in SERVICES["service"]["ports"][0]
    paths = create_app(Settings(database_url="postgresql://x@127.0.0.1/x")).openapi()["paths"]
    assert "post" in paths[url.path]
    assert parse_qs(url.query)["api_key"] == ["${CONTEXTLAKE_DEBEZIUM_KEY}"]
    assert "--key-from-env CONTEXTLAKE_DEBEZIUM_KEY" in " ".join(SERVICES["migrate"]["command"])
    assert env["DEBEZIUM_SOURCE_DATABASE_HOSTNAME"] == "upstream"
    assert env["DEBEZIUM_SOURCE_DATABASE_DBNAME"] == SERVICES["upstream"]["environment"]["POSTGRES_DB"]
    assert env["DEBEZIUM_SOURCE_DATABASE_PASSWORD"] == SERVICES["upstream"]["environment"]["POSTGRES_PASSWORD"]
    assert env["DEBEZIUM_FORMAT_VALUE"] == "json"


def test_prometheus_scrapes_the_service() -> None:
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["service:8000"]


def test_the_upstream_schema_is_captured_as_the_lake_maps_it(conn: psycopg.Connection, dsn: str) -> None:
    """Run deploy/upstream-init.sql on a real database: the captured table has every column the lake's
    CDC mapping reads, REPLICA IDENTITY FULL, and is in the publication Debezium reads."""
    env = SERVICES["debezium"]["environment"]
    base = dsn.rsplit("/", 1)[0]
    with psycopg.connect(base + "/postgres", autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS compose_upstream")
        admin.execute("CREATE DATABASE compose_upstream")
    try:
        with psycopg.connect(base + "/compose_upstream", autocommit=True) as up:
            up.execute((PROJECT_ROOT / "deploy" / "upstream-init.sql").read_text())
            for table in env["DEBEZIUM_SOURCE_TABLE_INCLUDE_LIST"].split(","):
                schema, name = table.split(".")
                mapping = conn.execute(
                    "SELECT columns, decode FROM lake.cdc_mappings WHERE upstream_table = %s", (table,)
                ).fetchone()
                assert mapping is not None, f"no CDC mapping for {table}"
                columns = dict(
                    up.execute(
                        "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_schema = %s AND table_name = %s",
                        (schema, name),
                    ).fetchall()
                )
                assert set(mapping[0]) <= set(columns), set(mapping[0]) - set(columns)
                # schemaless decoding hints agree with the column types Debezium encodes
                expected = {"numeric": "decimal:", "timestamp without time zone": "micro_timestamp", "date": "date"}
                for col, hint in mapping[1].items():
                    assert hint.startswith(expected[columns[col]]), (col, hint, columns[col])
                assert up.execute(
                    "SELECT relreplident FROM pg_class WHERE oid = %s::regclass", (table,)
                ).fetchone() == ("f",)
                published = up.execute(
                    "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s",
                    (env["DEBEZIUM_SOURCE_PUBLICATION_NAME"],),
                ).fetchall()
                assert (table,) in published
    finally:
        with psycopg.connect(base + "/postgres", autocommit=True) as admin:
            admin.execute("DROP DATABASE compose_upstream")


def test_the_image_holds_the_project_migrate_applies() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    project = SERVICES["migrate"]["environment"]["CONTEXTLAKE_PROJECT"]
    workdir = re.findall(r"^WORKDIR (\S+)$", dockerfile, re.MULTILINE)[-1]
    copies = re.findall(r"^COPY (.+) (\S+)$", dockerfile, re.MULTILINE)
    into_project = {f"{workdir}/{dest.rstrip('/')}": src.split() for src, dest in copies if dest.startswith("project")}
    assert into_project[project] == ["examples/cards/contextlake.toml", "examples/cards/README.md"]
    assert into_project[f"{project}/migrations"] == ["examples/cards/migrations"]
    assert "pip install --no-cache-dir . " in dockerfile and " -e " not in dockerfile


def test_the_image_serves_on_the_port_compose_publishes() -> None:
    cmd = re.search(r"^CMD (.*)$", (PROJECT_ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert cmd is not None and '"--port", "8000"' in cmd.group(1) and '"0.0.0.0"' in cmd.group(1)
    assert SERVICES["service"]["ports"] == ["127.0.0.1:8000:8000"]


def test_the_stack_is_local_restarts_and_keeps_its_secrets_out_of_the_file() -> None:
    for name, svc in SERVICES.items():
        assert all(str(p).startswith("127.0.0.1:") for p in svc.get("ports", [])), name
    for name in ("lake", "upstream"):  # over TCP, not the first-start server's socket
        assert "-h 127.0.0.1" in " ".join(SERVICES[name]["healthcheck"]["test"]), name
    assert "pg_isready" in SERVICES["migrate"]["command"][-1].split("contextlake migrate")[0]
    assert SERVICES["debezium"]["restart"] == "unless-stopped" and SERVICES["service"]["restart"] == "unless-stopped"
    assert SERVICES["debezium"]["environment"]["QUARKUS_LOG_CATEGORY__IO_DEBEZIUM_SERVER_HTTP__LEVEL"] == "WARN"
    assert SERVICES["lake"]["environment"]["POSTGRES_PASSWORD"].startswith("${CONTEXTLAKE_LAKE_PASSWORD:?")
    assert "${CONTEXTLAKE_LAKE_PASSWORD" in COMPOSE["x-lake-url"]
    assert Path(PROJECT_ROOT / ".dockerignore").read_text().count(".venv") == 1
