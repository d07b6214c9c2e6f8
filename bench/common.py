"""What every benchmark does around its measurement: the machine it ran on, the server (DATABASE_URL
or a throwaway cluster with the lake settings), a fresh database, and `contextlake serve` in a process
of its own."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg

from app.lake.cluster import free_port, throwaway_cluster


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    mem = next((ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), "0")
    return f"{os.cpu_count()} cores ({cpu}), {int(mem) / 2**20:.0f} GiB, {platform.platform()}"


@contextmanager
def server() -> Iterator[str]:
    """DATABASE_URL, else a throwaway cluster with the lake settings (destroyed afterwards)."""
    base = os.environ.get("DATABASE_URL")
    if base:
        yield base
        return
    with throwaway_cluster("contextlake-bench-") as cluster:
        yield cluster.dsn()


def fresh_database(base: str, name: str) -> tuple[str, str]:
    """An empty database `name` on the server (dropped first if there), and the server's version; prints
    the machine and the server."""
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
        version = admin.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
    print(f"machine: {machine()}\nserver: {version}", flush=True)
    return base.rsplit("/", 1)[0] + "/" + name, version


@contextmanager
def service(dsn: str, **env: str) -> Iterator[str]:
    """`contextlake serve` on the lake `dsn` in a process of its own, until ready; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=dict(os.environ, DATABASE_URL=dsn, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not become ready")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
