"""README's five minutes, run as written: a project made by `contextlake init` in a folder outside the
clone, with a landing table, a source, two features, a feature set and a model of its own, migrated and
scored over HTTP with the documented commands only."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.lake.cluster import free_port

ROOT = Path(__file__).resolve().parents[2]


def five_minutes() -> list[tuple[str, str]]:
    """The fenced blocks of README's "Five minutes" section: (language, text), in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Five minutes", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture
def workdir() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="contextlake-first-hour-", dir="/tmp"))
    os.chmod(home, 0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_readme_five_minutes_from_init_to_a_score_over_http(workdir: Path) -> None:
    blocks = five_minutes()
    assert [lang for lang, _ in blocks] == ["sh", "sql", "sh", "sh"]
    port = str(free_port())
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CONTEXTLAKE_PROJECT")}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
        CONTEXTLAKE_HOME=str(workdir / ".contextlake"),
        CONTEXTLAKE_PG_PORT=str(free_port()),
    )

    def sh(script: str) -> str:
        # Output to files, not pipes: the server the script leaves running in the background keeps them open.
        with (workdir / "out.txt").open("w+") as out, (workdir / "err.txt").open("w+") as err:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script.replace("8000", port)],
                cwd=workdir, env=env, stdout=out, stderr=err, text=True, timeout=300,
            )  # fmt: skip
            out.seek(0)
            err.seek(0)
            text, problems = out.read(), err.read()
        assert done.returncode == 0, text + problems
        return text

    try:
        created = sh(blocks[0][1]).strip().splitlines()[-1]
        migration = workdir / created
        assert migration.name == "0001_create_orders.sql" and migration.parent == workdir / "shop" / "migrations"
        assert not workdir.is_relative_to(ROOT)
        migration.write_text(migration.read_text() + blocks[1][1])
        out = sh(blocks[2][1] + blocks[3][1].replace("kill %1 && contextlake down", ""))
        *_, landed, scored = (line for line in out.splitlines() if line.startswith("{"))
        assert json.loads(landed)["landed"] == 1, landed
        body = json.loads(scored)
        assert body["decision"] in ("approve", "review", "decline") and 0 <= body["score"] <= 1
        assert body["features"]["customer_orders_1h"]["value"] == 1
        assert float(body["features"]["customer_amount_24h"]["value"]) == 120
        assert "would apply project" not in out and "did apply shop migration 0001_create_orders" in out
    finally:
        subprocess.run(["pkill", "-f", f"contextlake serve --port {port}"], check=False)
        subprocess.run([sys.executable, "-m", "app.cli", "down"], cwd=workdir, env=env, check=False, timeout=120)
