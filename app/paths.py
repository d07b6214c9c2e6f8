"""Where the project's files live: the SQL engine, the migrations, the embedded cluster."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def lake_home() -> Path:
    """Directory of the embedded cluster (CONTEXTLAKE_HOME, default .contextlake in the project)."""
    return Path(os.environ.get("CONTEXTLAKE_HOME", PROJECT_ROOT / ".contextlake")).resolve()
