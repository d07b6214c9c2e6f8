"""The contextlake command in a subprocess, on a given database (DATABASE_URL) or the caller's environment."""

from __future__ import annotations

import os
import subprocess
import sys


def contextlake(*args: str, dsn: str | None = None) -> subprocess.CompletedProcess[str]:
    return _run("app.cli", args, dsn)


def cards_example(*args: str, dsn: str | None = None) -> subprocess.CompletedProcess[str]:
    """The card example's own commands (python -m examples.cards demo | generate)."""
    return _run("examples.cards", args, dsn)


def _run(module: str, args: tuple[str, ...], dsn: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn} if dsn else None
    return subprocess.run(
        [sys.executable, "-m", module, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )
