"""The decision log of /v1/score, written in batches behind the response (no round trip added).

Decisions wait in memory and are written every ``log_interval`` seconds or ``log_batch`` rows by
lake.log_decisions, which skips a decision already written, so a batch retried after a lost
acknowledgement writes nothing twice. While the lake is unreachable the batch is retried; past
``log_queue_max`` waiting decisions /v1/score answers 503 rather than acknowledge a decision it
could not keep.

On a clean shutdown every waiting decision is written; what cannot be written (lake down) goes to a
spill file in ``spill_dir``, which the next start writes first. On a crash (kill -9, power loss) the
decisions of the last unwritten interval are lost: at most ``log_interval`` seconds of them, plus any
backlog while the lake was unreachable. A decision the lake rejects outright (a constraint) is
narrowed down and set aside in ``rejected.jsonl`` beside the spill files, the rest of its batch
written. /v1/decide does not use this writer: it logs in its own transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.lake.queries import query
from app.serve.jsonvalues import dumps

log = logging.getLogger("contextlake.decisions")


def _private(path: Path, mode: str) -> IO[str]:
    """A file only the service's user may read: it holds whole decisions (vectors, request payloads)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    return open(os.open(path, flags, 0o600), mode, encoding="utf-8")


class LogFull(RuntimeError):
    """Too many decisions wait to be written (the lake is slow or unreachable)."""


class DecisionWriter:
    def __init__(self, pool: AsyncConnectionPool, spill_dir: Path, batch: int, interval: float, queue_max: int) -> None:
        self.pool = pool
        self.spill_dir = spill_dir
        self.batch = batch
        self.interval = interval
        self.queue_max = queue_max
        self.pending: deque[dict[str, Any]] = deque()
        self.written = 0
        self.failures = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._spilled_rows = 0  # rows of loaded spill files still at the head of the queue
        self._spilled_files: list[Path] = []
        self._task: asyncio.Task[None] | None = None
        self._retry_at = 0.0  # while the lake refuses, wait for the backoff instead of retrying per request
        self._limit = batch  # rows per write; halved while a batch holds a row the lake rejects
        self.rejected = 0

    def submit(self, row: dict[str, Any]) -> None:
        if len(self.pending) >= self.queue_max:
            raise LogFull(f"{len(self.pending)} decisions wait to be logged")
        self.pending.append(row)
        if len(self.pending) >= self.batch and time.monotonic() >= self._retry_at:
            self._wake.set()

    def start(self) -> None:
        self._load_spill()
        self._task = asyncio.create_task(self._run(), name="decision-log")

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(query("log_decisions"), {"rows": Jsonb(rows, dumps=dumps)})

    async def _flush_once(self) -> bool:
        """Write one batch; False when the lake refused (the batch stays queued, in order)."""
        rows = [self.pending[i] for i in range(min(self._limit, len(self.pending)))]
        if not rows:
            return True
        try:
            await self._write(rows)
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            # A row the lake rejects: narrow down to it, set it aside, and go on with the others.
            if len(rows) > 1:
                self._limit = max(1, len(rows) // 2)
                return True
            self._reject(rows[0], exc)
            self.pending.popleft()
            return True
        except Exception as exc:  # lake unreachable, pool exhausted, privileges: keep the rows, try again
            self.failures += 1
            log.warning("decision log write of %d rows failed (%s); will retry", len(rows), exc)
            return False
        self._limit = self.batch
        for _ in rows:
            self.pending.popleft()
        self.written += len(rows)
        if self._spilled_files:
            self._spilled_rows -= len(rows)
            if self._spilled_rows <= 0:
                for path in self._spilled_files:
                    path.unlink(missing_ok=True)
                self._spilled_files = []
        return True

    def _reject(self, row: dict[str, Any], exc: Exception) -> None:
        """Set aside a decision the lake will never accept (a file beside the spill files), loudly."""
        self.spill_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.spill_dir / "rejected.jsonl"
        with _private(path, "a") as f:
            f.write(dumps({"error": str(exc).strip(), "decision": row}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rejected += 1
        log.error("decision %s rejected by the lake (%s); kept in %s", row.get("decision_id"), exc, path)

    async def _run(self) -> None:
        backoff = self.interval
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except TimeoutError:
                pass
            self._wake.clear()
            ok = True
            try:
                while ok and self.pending and not self._stopping:
                    ok = await self._flush_once()
                    if ok and len(self.pending) < self.batch:
                        break
            except Exception:  # never let the writer die with decisions queued
                log.exception("decision log writer error; will retry")
                ok = False
            backoff = self.interval if ok else min(max(backoff * 2, 0.1), 5.0)
            self._retry_at = 0.0 if ok else time.monotonic() + backoff

    async def close(self, deadline_seconds: float = 10.0) -> None:
        """Write everything waiting; spill to a file what cannot be written before the deadline."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await self._task
            except Exception:
                log.exception("decision log writer failed; writing what waits now")
        end = time.monotonic() + deadline_seconds
        while self.pending and time.monotonic() < end:
            try:
                written = await self._flush_once()
            except Exception:
                log.exception("decision log write at shutdown failed")
                written = False
            if not written:
                await asyncio.sleep(0.2)
        if self.pending:
            self._spill()

    def _spill(self) -> None:
        self.spill_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.spill_dir / f"decisions-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{id(self):x}.jsonl"
        tmp = path.with_suffix(".tmp")
        with _private(tmp, "w") as f:
            for row in self.pending:
                f.write(dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(path)
        dir_fd = os.open(self.spill_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
        log.error("lake unreachable at shutdown: %d decisions spilled to %s", len(self.pending), path)
        self.pending.clear()
        for old in self._spilled_files:  # their rows are in the new file
            old.unlink(missing_ok=True)
        self._spilled_files = []

    def _load_spill(self) -> None:
        if not self.spill_dir.is_dir():
            return
        # A file stays until its rows are written (a crash before that loads it again; the log skips repeats).
        for path in sorted(self.spill_dir.glob("decisions-*.jsonl")):
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            self.pending.extend(rows)
            self._spilled_rows += len(rows)
            self._spilled_files.append(path)
            log.info("%d spilled decisions from %s queued for the log", len(rows), path)
