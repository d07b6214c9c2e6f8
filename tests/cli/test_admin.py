"""contextlake model ... and contextlake key ... against a lake given by DATABASE_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.onnx_models import constant


def cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=dsn)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_model_register_list_activate_retire(dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    good.write_bytes(constant(19, 0.2))
    bad.write_bytes(constant(7, 0.2))
    r = cli(dsn, "model", "register", str(good), "--name", "fraud", "--feature-set", "fraud")
    assert r.returncode == 0 and "registered model fraud v1 (shadow)" in r.stdout, r.stderr
    r = cli(dsn, "model", "register", str(bad), "--name", "fraud", "--feature-set", "fraud")
    assert r.returncode == 2 and "the model takes 7 input features but is registered with 19" in r.stderr
    assert r.stderr.count("\n") == 1  # one line, no traceback
    r = cli(dsn, "model", "register", str(tmp_path / "missing.onnx"), "--name", "fraud", "--feature-set", "fraud")
    assert r.returncode == 2 and "missing.onnx" in r.stderr
    r = cli(dsn, "model", "register", str(good), "--name", "fraud", "--feature-set", "nope")
    assert r.returncode == 2 and "unknown feature set 'nope'" in r.stderr
    r = cli(
        dsn,
        "model",
        "register",
        str(good),
        "--name",
        "fraud",
        "--feature-set",
        "fraud",
        "--features",
        "card_txn_count,card_last_country",
    )
    assert r.returncode == 2 and "card_last_country (character(2)) cannot be an input" in r.stderr

    assert cli(dsn, "model", "activate", "fraud", "1").stdout.strip() == "model fraud v1 is active"
    good2 = tmp_path / "good2.onnx"
    good2.write_bytes(constant(19, 0.4))
    assert (
        "fraud v2 (active)"
        in cli(
            dsn, "model", "register", str(good2), "--name", "fraud", "--feature-set", "fraud", "--status", "active"
        ).stdout
    )
    listed = cli(dsn, "model", "list").stdout
    assert "retired" in listed.splitlines()[2] and "active" in listed.splitlines()[3], listed
    assert conn.execute("SELECT version FROM lake.models WHERE status = 'active'").fetchall() == [(2,)]
    assert cli(dsn, "model", "retire", "fraud", "2").returncode == 0
    assert conn.execute("SELECT count(*) FROM lake.models WHERE status = 'active'").fetchone() == (0,)
    r = cli(dsn, "model", "activate", "fraud", "9")
    assert r.returncode == 2 and "unknown model fraud version 9" in r.stderr


def test_key_create_list_revoke(dsn: str, conn: psycopg.Connection) -> None:
    r = cli(dsn, "key", "create", "checkout service", "--scopes", "score,ingest")
    assert r.returncode == 0, r.stderr
    api_key = r.stdout.strip().splitlines()[-1]
    key_id = api_key.split("_")[1]
    assert api_key.startswith("clk_") and api_key not in cli(dsn, "key", "list").stdout
    assert "checkout service" in cli(dsn, "key", "list").stdout
    r = cli(dsn, "key", "create", "x", "--scopes", "root")
    assert r.returncode == 2 and "scopes must be among score, ingest, admin (got root)" in r.stderr
    assert cli(dsn, "key", "revoke", key_id).stdout.strip() == f"key {key_id} revoked"
    assert cli(dsn, "key", "revoke", key_id).returncode == 1
    assert conn.execute("SELECT revoked_at IS NOT NULL FROM lake.api_keys WHERE key_id = %s", (key_id,)).fetchone() == (
        True,
    )


def test_key_from_a_deployment_secret(dsn: str, conn: psycopg.Connection) -> None:
    given = "clk_0123456789ab_" + "ab" * 32
    env_dsn = dsn
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", "key", "create", "debezium", "--scopes", "ingest", "--key-from-env", "K"],
        env=dict(os.environ, DATABASE_URL=env_dsn, K=given),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0 and "key 0123456789ab (ingest) registered from K" in r.stdout, r.stderr
    stored = conn.execute("SELECT scopes, secret_sha256 FROM lake.api_keys WHERE key_id = '0123456789ab'").fetchone()
    assert stored is not None and stored[0] == ["ingest"] and "ab" * 32 not in stored[1]
    bad = subprocess.run(
        [sys.executable, "-m", "app.cli", "key", "create", "x", "--key-from-env", "K"],
        env=dict(os.environ, DATABASE_URL=env_dsn, K="clk_short_key"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "clk_<12 hex key id>_<64 hex secret>" in bad.stderr
