"""The contextlake command on an embedded cluster of its own (no DATABASE_URL)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from app.lake.cluster import free_port
from tests.cards import land_txn

ROOT = Path(__file__).resolve().parents[2]
CARDS = ROOT / "examples" / "cards"


@pytest.fixture(scope="module")
def lake_env() -> Iterator[dict[str, str]]:
    home = Path(tempfile.mkdtemp(prefix="contextlake-cli-", dir="/tmp"))
    os.chmod(home, 0o755)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(CONTEXTLAKE_HOME=str(home / "lake"), CONTEXTLAKE_PG_PORT=str(free_port()))
    yield env
    subprocess.run([sys.executable, "-m", "app.cli", "down"], env=env, check=False, capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_help_lists_every_command(lake_env: dict[str, str]) -> None:
    out = cli(lake_env, "--help").stdout
    for command in (
        "up",
        "down",
        "migrate",
        "init",
        "new-migration",
        "serve",
        "model",
        "key",
        "load",
        "psql",
        "freshness",
        "compact",
        "verify",
        "export-training",
        "train",
        "freshness-cost",
    ):
        assert f"    {command}" in out
    assert "demo" not in out and "generate" not in out  # the card example's commands are its own


def test_embedded_lifecycle(lake_env: dict[str, str]) -> None:
    up = cli(lake_env, "up", "--project", str(CARDS))
    assert up.returncode == 0, up.stderr
    assert "did apply cards migration 0001_create_card_landing" in up.stdout
    dsn = up.stdout.strip().rsplit(" ", 1)[-1]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        assert conn.execute("SHOW track_commit_timestamp").fetchone() == ("on",)
        land_txn(conn, "x1", "c1", "m1", 12.5)

    migrate = cli(dict(lake_env, CONTEXTLAKE_PROJECT=str(CARDS)), "migrate")
    assert migrate.returncode == 0 and "nothing to do: the lake is up to date with project cards" in migrate.stdout

    psql = cli(lake_env, "psql", "-Atc", "SELECT (features->>'card_txn_count') FROM lake.read_vector('fraud', 'c1')")
    assert psql.returncode == 0 and psql.stdout.strip() == "1"

    fresh = cli(lake_env, "freshness")
    assert fresh.returncode == 0 and "card_txn_count" in fresh.stdout and "x1" in fresh.stdout

    assert cli(lake_env, "compact").returncode == 0
    ok = cli(lake_env, "verify")
    assert ok.returncode == 0 and "equals its recomputation" in ok.stdout

    with psycopg.connect(dsn, autocommit=True) as conn:  # corrupt the maintained state behind the trigger's back
        conn.execute("UPDATE lake_gen.card_txn_tiles SET n = n + 1 WHERE grain = 0")
    bad = cli(lake_env, "verify")
    assert bad.returncode == 1 and "MISMATCH" in bad.stdout and "c1" in bad.stdout

    down = cli(lake_env, "down")
    assert down.returncode == 0
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)


def test_unreachable_database_is_a_clear_error(lake_env: dict[str, str]) -> None:
    env = dict(lake_env, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    out = cli(env, "freshness")
    assert out.returncode == 2 and out.stderr.startswith("contextlake: ") and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("env_change", "args", "message"),
    [
        ({"DATABASE_URL": "foo"}, ("migrate",), "contextlake: "),
        (
            {"CONTEXTLAKE_PG_PORT": "abc", "CONTEXTLAKE_HOME": "/tmp/contextlake-cli-never-created"},
            ("up",),
            "settings from the environment: pg_port: Input should be a valid integer",
        ),
        ({}, ("migrate", "--project", "/tmp/contextlake-no-such-project"), "is not a contextlake project"),
    ],
)
def test_configuration_errors_are_one_clear_line(
    lake_env: dict[str, str], env_change: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    out = cli(dict(lake_env, **env_change), *args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_stop_twice(lake_env: dict[str, str]) -> None:
    assert cli(lake_env, "up").returncode == 0
    assert cli(lake_env, "down").stdout.strip() == "embedded lake stopped"
    assert cli(lake_env, "down").stdout.startswith("no embedded lake is running")


def test_demo_lands_trains_serves_and_decides() -> None:
    home = Path(tempfile.mkdtemp(prefix="contextlake-demo-", dir="/tmp"))
    os.chmod(home, 0o755)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(CONTEXTLAKE_HOME=str(home / "lake"), CONTEXTLAKE_PG_PORT=str(free_port()))
    try:
        out = subprocess.run(
            [sys.executable, "-m", "examples.cards", "demo", "--live-seconds", "1"],
            env=env, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
        )  # fmt: skip
    finally:
        cli(env, "down")
        shutil.rmtree(home, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "generated and landed" in text and "registered model fraud v1 (active)" in text
    assert "point-in-time training rows" in text and "ONNX matches LightGBM within" in text
    assert "POST /v1/score unseen card, 250 USD abroad: APPROVE" in text
    assert "POST /v1/decide" in text and "decision log (api.decisions): " in text
    assert "embedded lake stopped" in text
