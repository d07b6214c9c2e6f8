"""Crashes under load lose and double nothing the service acknowledged: kill -9 of the PostgreSQL
postmaster mid-load (the service recovers without a restart; retried requests land once), SIGTERM of
the service mid-load (in-flight requests finish and the /v1/score decision log is written), and SIGTERM
while the lake is down (the log spills to a file that the next start writes)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from app.lake import registry
from app.lake.cluster import Cluster, EmbeddedError, throwaway_cluster
from app.lake.migrations import migrate
from examples.cards.sql import cards_project
from tests.cli_run import contextlake
from tests.conftest import TEST_TMP
from tests.load_clients import Load, serve
from tests.onnx_models import constant

pytestmark = pytest.mark.crash


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A cluster of this test's own, since the test kills it."""
    with throwaway_cluster("contextlake-crash-", TEST_TMP) as cluster:
        yield cluster


def kill_postmaster(cluster: Cluster) -> None:
    """kill -9 of the postmaster. It is not this process's child: it stays a zombie until the machine's
    init reaps it, which Cluster.start waits for."""
    os.kill(postmaster_pid(cluster), signal.SIGKILL)


def prepare(dsn: str) -> str:
    """The fraud model (a constant score, so decisions do not depend on the vector) and a key for the load."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM lake.model_inputs('fraud', 1) WHERE usable").fetchone()
        assert row is not None
        registry.register_model(conn, "fraud", constant(row[0], 0.1), "fraud", status="active")
        return registry.create_api_key(conn, "crash", ["score", "ingest"])[1]


def postmaster_pid(cluster: Cluster) -> int:
    return int((cluster.datadir / "postmaster.pid").read_text(encoding="utf-8").splitlines()[0])


def start_again(cluster: Cluster, seconds: float = 30) -> int:
    """Start a crashed cluster; the new postmaster refuses while backends of the killed one still hold its
    shared memory (they exit once they notice), so retry. Returns the attempts it took."""
    deadline = time.monotonic() + seconds
    attempts = 0
    while True:
        attempts += 1
        try:
            cluster.start()
            return attempts
        except EmbeddedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def landed_counts(conn: psycopg.Connection) -> Counter[str]:
    return Counter({eid: n for eid, n in conn.execute("SELECT event_id, count(*) FROM cards.transactions GROUP BY 1")})


def decisions_by_event(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every /v1/decide decision, by its event id."""
    out: dict[str, list[str]] = {}
    for eid, did in conn.execute("SELECT event_id, decision_id::text FROM lake.decisions WHERE route = 'decide'"):
        out.setdefault(eid, []).append(did)
    return out


def half_landed(conn: psycopg.Connection) -> tuple[int, int]:
    """Decide decisions whose event is missing, and events landed by /v1/decide without their decision."""
    row = conn.execute(
        """SELECT (SELECT count(*) FROM lake.decisions d WHERE d.route = 'decide'
                     AND NOT EXISTS (SELECT FROM cards.transactions t WHERE t.event_id = d.event_id)),
                  (SELECT count(*) FROM cards.transactions t WHERE t.event_id LIKE 'decide%'
                     AND NOT EXISTS (SELECT FROM lake.decisions d WHERE d.source = 'card_txn'
                                     AND d.event_id = t.event_id))"""
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def score_decisions(conn: psycopg.Connection) -> Counter[str]:
    return Counter(did for (did,) in conn.execute("SELECT decision_id::text FROM lake.decisions WHERE route = 'score'"))


def spilled(spill_dir: Path) -> Counter[str]:
    return Counter(
        json.loads(line)["decision_id"]
        for path in sorted(spill_dir.glob("decisions-*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    )


def post_again(base_url: str, key: str, load: Load, before: float) -> int:
    """Post again, with the same ids, every events batch and decision acknowledged before `before`: each
    must be answered as already done (duplicates, the first decision replayed), landing nothing."""
    again = [a for kind in ("events", "decide") for a in load.acked(kind) if a.at < before]
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
        for a in again:
            r = http.post(a.path, json=a.body)
            assert r.status_code == 200, r.text
            answer = r.json()
            if a.path == "/v1/events":
                assert (answer["landed"], answer["duplicates"], answer["rejected"]) == (0, len(a.ids), []), answer
            else:
                assert answer["replayed"] is True and answer["decision_id"] == a.decision_id, answer
    return len(again)


def test_kill_9_of_postgres_under_load_loses_and_doubles_nothing_acknowledged(
    own_cluster: Cluster, tmp_path: Path
) -> None:
    dsn = own_cluster.dsn()
    migrate(dsn, cards_project())
    key = prepare(dsn)
    # A short pool timeout: while the lake is away a request answers 503 quickly instead of queueing.
    with serve(dsn, tmp_path / "home", pool_timeout="0.5") as service:
        load = Load.start(service.base_url, key, {"events": 2, "decide": 2})
        try:
            load.wait_for({"events": 10, "decide": 20}, 30)  # the load is running when the lake dies
            kill_postmaster(own_cluster)
            killed = time.monotonic()
            time.sleep(1.0)
            attempts = start_again(own_cluster)
            started = time.monotonic()
            # The same service process serves again by itself: its pool and listener reconnect.
            load.wait_for({"events": 10, "decide": 20}, 30)
            assert service.proc.poll() is None
            load.finish()
        finally:
            load.close()
        assert httpx.get(f"{service.base_url}/readyz", timeout=5).status_code == 200
        # What landed before the crash came back with the recovery: a redelivery of it lands nothing.
        posted_again = post_again(service.base_url, key, load, killed)
    assert load.unexpected() == []
    assert load.pending() == []  # every request was acknowledged in the end, so the lake must hold exactly them

    events = [eid for a in load.acked("events") for eid, _ in a.ids]
    decided = {a.ids[0][0]: a.decision_id for a in load.acked("decide")}
    retried = [eid for kind in ("events", "decide") for a in load.acked(kind) if a.attempts > 1 for eid, _ in a.ids]
    failed_in_outage = sum(1 for c in load.clients for t in c.failed_at if killed <= t <= started + 5)
    # The outage was seen: requests failed and were retried with the same ids.
    assert load.failures("events") > 0 and load.failures("decide") > 0 and retried and posted_again > 0
    assert len(events) == len(set(events))

    with psycopg.connect(dsn, autocommit=True) as conn:
        landed = landed_counts(conn)
        by_event = decisions_by_event(conn)
        orphans = half_landed(conn)
        cards = {card for kind in ("events", "decide") for a in load.acked(kind) for _, card in a.ids}
        counted = {
            card: conn.execute("SELECT card_txn_count FROM api.read_fraud_v1(%s)", (card,)).fetchone()[0]  # type: ignore[index]
            for card in cards
        }
    assert {eid: n for eid, n in landed.items() if eid.startswith("events")} == dict.fromkeys(events, 1)
    assert {eid: n for eid, n in landed.items() if eid.startswith("decide")} == dict.fromkeys(decided, 1)
    assert by_event == {eid: [did] for eid, did in decided.items()}
    assert [eid for eid in retried if landed[eid] != 1] == []
    assert orphans == (0, 0)
    # The features count each event once: a retried event that landed before its answer was lost is not
    # counted again.
    expected = Counter(card for kind in ("events", "decide") for a in load.acked(kind) for _, card in a.ids)
    assert counted == dict(expected)
    verify = contextlake("verify", dsn=dsn)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    print(
        f"\nkill -9: {len(events)} events and {len(decided)} decide decisions acknowledged; "
        f"{load.failures('events')} events posts and {load.failures('decide')} decides not acknowledged "
        f"({failed_in_outage} in the outage); {len(retried)} ids retried, "
        f"{sum(a.duplicates for a in load.acked('events'))} events found already landed and "
        f"{sum(a.replayed for a in load.acked('decide'))} decisions replayed on retry; "
        f"{posted_again} requests acknowledged before the kill posted again, none landed twice; "
        f"cluster started on attempt {attempts}, {started - killed:.1f} s after the kill"
    )


def test_sigterm_of_the_service_under_load_keeps_every_acknowledged_request(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    key = prepare(dsn)
    spill_dir = tmp_path / "spill"
    # The /v1/score log is written only when the batch fills or the interval passes: with both out of
    # reach, every score decision of the run still waits in memory at the signal, and the shutdown alone
    # must keep them.
    settings = {"spill_dir": str(spill_dir), "log_interval": "600", "log_batch": "1000000"}
    with serve(dsn, tmp_path / "home", **settings) as service:
        load = Load.start(service.base_url, key, {"events": 1, "decide": 1, "score": 2})
        try:
            load.wait_for({"events": 10, "decide": 20, "score": 100}, 30)
            logged_before = sum(score_decisions(conn).values())
            signalled = time.monotonic()
            code = service.terminate()
            exited = time.monotonic()
        finally:
            load.close()
    log = service.log()
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again (exit -15); 0 from versions
    # that return.
    assert code in (0, -signal.SIGTERM), log[-3000:]
    assert "Application shutdown complete." in log and "Traceback" not in log, log[-3000:]
    assert load.unexpected() == []

    events = [eid for a in load.acked("events") for eid, _ in a.ids]
    decided = {a.ids[0][0]: a.decision_id for a in load.acked("decide")}
    scored = [str(a.decision_id) for a in load.acked("score")]
    landed = landed_counts(conn)
    by_event = decisions_by_event(conn)
    logged, spill = score_decisions(conn), spilled(spill_dir)

    assert logged_before < len(scored)  # the shutdown had acknowledged decisions to write
    assert [eid for eid in events if landed[eid] != 1] == []
    assert {eid for eid in landed if eid.startswith("events")} <= load.sent("events")
    assert [eid for eid, did in decided.items() if by_event.get(eid) != [did] or landed[eid] != 1] == []
    assert half_landed(conn) == (0, 0)
    assert [did for did in scored if logged[did] + spill[did] != 1] == []
    assert not (spill_dir / "rejected.jsonl").exists()
    print(
        f"\nSIGTERM: {len(events)} events, {len(decided)} decide and {len(scored)} score decisions acknowledged "
        f"({sum(1 for c in load.clients for a in c.acked if a.at > signalled)} after the signal); "
        f"{logged_before} score decisions logged before it, {sum(logged.values())} after the exit, "
        f"{sum(spill.values())} spilled; {sum(c.failures for c in load.clients)} requests not acknowledged; "
        f"exit {code} {exited - signalled:.1f} s after the signal"
    )


def test_sigterm_while_the_lake_is_down_spills_the_log_and_the_next_start_writes_it(
    own_cluster: Cluster, tmp_path: Path
) -> None:
    dsn = own_cluster.dsn()
    migrate(dsn, cards_project())
    key = prepare(dsn)
    spill_dir = tmp_path / "spill"
    # As above, every score decision still waits in memory when the lake goes; the shutdown gives up
    # writing after a second and must spill them all.
    settings = {"spill_dir": str(spill_dir), "log_interval": "600", "log_batch": "1000000"}
    with serve(dsn, tmp_path / "home", log_shutdown_seconds="1", pool_timeout="0.5", **settings) as service:
        load = Load.start(service.base_url, key, {"score": 2})
        try:
            load.wait_for({"score": 100}, 30)
            own_cluster.stop()
            code = service.terminate()
        finally:
            load.close()
    log = service.log()
    assert code in (0, -signal.SIGTERM) and "decisions spilled to" in log, log[-3000:]
    scored = [str(a.decision_id) for a in load.acked("score")]
    spill = spilled(spill_dir)
    assert [did for did in scored if spill[did] != 1] == [], log[-3000:]

    own_cluster.start()
    # The next start, with the default log interval, writes the spill first.
    with serve(dsn, tmp_path / "home2", spill_dir=str(spill_dir)) as again:
        deadline = time.monotonic() + 20
        while list(spill_dir.glob("decisions-*.jsonl")):  # the file goes once its rows are written
            assert time.monotonic() < deadline and again.proc.poll() is None, again.log()[-3000:]
            time.sleep(0.1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        logged = score_decisions(conn)
    assert logged == spill  # every spilled decision written once, the acknowledged ones among them
    print(f"\nspill: {len(scored)} score decisions acknowledged, {sum(spill.values())} spilled and written again")
