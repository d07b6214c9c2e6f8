"""The wheel is the product: built from this checkout and installed (not editable), `contextlake` runs
from any directory, with the engine's SQL, its migrations and its named queries read from the package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("contextlake-*.whl")
    yield built


def test_the_wheel_carries_the_engine(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for sql in (ROOT / "sql").glob("*.sql"):
        assert f"app/lake/engine_sql/{sql.name}" in names
    for migration in (ROOT / "migrations").glob("*.sql"):
        assert f"app/lake/engine_migrations/{migration.name}" in names
    assert "app/lake/queries.sql" in names
    assert not any(n.startswith(("examples/", "tests/", "bench/")) for n in names)  # the engine alone


def test_installed_contextlake_migrates_from_any_directory(wheel: Path, tmp_path: Path, empty_dsn: str) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "DATABASE_URL": empty_dsn}
    run = [sys.executable, "-P", "-m", "app.cli"]  # -P: the checkout is not on the path
    where = subprocess.run(
        [sys.executable, "-P", "-c", "import app.lake.files as f; print(f.SQL_DIR, f.MIGRATIONS_DIR)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert all(Path(w).is_relative_to(target) for w in where), where
    done = subprocess.run([*run, "migrate"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "did apply engine migration 0001_create_engine_tables" in done.stdout
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM lake.applied_migrations WHERE chain = 'engine'").fetchone() == (
            len(list((ROOT / "migrations").glob("*.sql"))),
        )
    status = subprocess.run([*run, "migrate", "--status"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "engine code: installed, current" in status.stdout
