"""The decision log of /v1/score: written behind the response, complete after a clean shutdown,
spilled to disk and written on the next start when the lake refuses it, never written twice."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from app.lake import registry
from app.serve.decision_log import DecisionWriter
from app.settings import Settings
from tests.onnx_models import constant
from tests.service import new_key, serving, wait_ready

SCORE = {"model": "fraud", "entity": "c1", "request": {"amount": 12}}


@pytest.fixture(autouse=True)
def model(conn: psycopg.Connection) -> None:
    registry.register_model(conn, "fraud", constant(19, 0.2), "fraud", status="active")


def logged(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT decision_id::text FROM lake.decisions").fetchall()}


def test_a_clean_shutdown_writes_every_acknowledged_decision(dsn: str, conn: psycopg.Connection) -> None:
    settings = Settings(database_url=dsn, log_interval=3600, log_batch=10_000)  # nothing is written while serving
    with serving(settings, new_key(dsn, "score")) as c:
        wait_ready(c)
        ids = {c.post("/v1/score", json=SCORE).json()["decision_id"] for _ in range(25)}
        assert logged(conn) == set()
    assert logged(conn) == ids


def test_decisions_the_lake_refuses_at_shutdown_are_spilled_and_written_on_the_next_start(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    conn.execute("REVOKE EXECUTE ON FUNCTION api.log_decisions(jsonb) FROM contextlake_service")
    settings = Settings(database_url=dsn, log_interval=0.01, log_shutdown_seconds=0.3, spill_dir=tmp_path)
    key = new_key(dsn, "score")
    with serving(settings, key) as c:
        wait_ready(c)
        ids = {c.post("/v1/score", json=SCORE).json()["decision_id"] for _ in range(10)}
    assert logged(conn) == set()
    (spill,) = tmp_path.glob("decisions-*.jsonl")
    assert {json.loads(line)["decision_id"] for line in spill.read_text().splitlines()} == ids

    conn.execute("GRANT EXECUTE ON FUNCTION api.log_decisions(jsonb) TO contextlake_service")
    with serving(settings, key) as c:
        wait_ready(c)
        deadline = time.monotonic() + 10
        while logged(conn) != ids:
            assert time.monotonic() < deadline, "spilled decisions not written"
            time.sleep(0.02)
        assert not spill.exists()


def test_a_full_backlog_answers_503_rather_than_drop_a_decision(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    conn.execute("REVOKE EXECUTE ON FUNCTION api.log_decisions(jsonb) FROM contextlake_service")
    settings = Settings(
        database_url=dsn, log_queue_max=3, log_interval=0.01, log_shutdown_seconds=0.1, spill_dir=tmp_path
    )
    with serving(settings, new_key(dsn, "score")) as c:
        wait_ready(c)
        statuses = [c.post("/v1/score", json=SCORE) for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 503, 503]
    assert statuses[3].headers["Retry-After"] == "1" and "decision log backlog" in statuses[3].text
    (spill,) = tmp_path.glob("decisions-*.jsonl")
    assert len(spill.read_text().splitlines()) == 3  # every acknowledged one, and only those


def test_writing_a_batch_twice_logs_it_once(conn: psycopg.Connection, dsn: str) -> None:
    settings = Settings(database_url=dsn, log_interval=3600, log_batch=10_000)
    with serving(settings, new_key(dsn, "score")) as c:
        wait_ready(c)
        c.post("/v1/score", json=SCORE)
    rows = conn.execute("SELECT jsonb_agg(to_jsonb(d)) FROM lake.decisions d").fetchone()
    assert rows is not None
    assert conn.execute("SELECT lake.log_decisions(%s)", (json.dumps(rows[0]),)).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM lake.decisions").fetchone() == (1,)


def test_a_decision_the_lake_rejects_is_set_aside_and_the_others_are_written(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    settings = Settings(database_url=dsn, log_interval=3600, log_batch=10_000)
    with serving(settings, new_key(dsn, "score")) as c:
        good = [c.post("/v1/score", json=SCORE).json() for _ in range(6)]
    rows = conn.execute("SELECT jsonb_agg(to_jsonb(d)) FROM lake.decisions d").fetchone()[0]  # type: ignore[index]
    conn.execute("DELETE FROM lake.decisions")
    bad = dict(rows[0], decision_id="00000000-0000-0000-0000-000000000001", outcome="maybe")  # fails a CHECK

    async def write() -> DecisionWriter:
        async with AsyncConnectionPool(dsn, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
            writer = DecisionWriter(pool, tmp_path, batch=100, interval=0.01, queue_max=100)
            for row in rows[:3] + [bad] + rows[3:]:
                writer.submit(row)
            writer.start()
            await writer.close(5)
            return writer

    writer = asyncio.run(write())
    assert logged(conn) == {b["decision_id"] for b in good} and writer.rejected == 1
    (rejected,) = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert rejected["decision"]["decision_id"] == bad["decision_id"] and "decisions_outcome_check" in rejected["error"]
