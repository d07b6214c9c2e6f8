"""The one settings object: every knob from the environment, an empty variable taken as unset, a bad
value refused with its name."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from app.settings import Settings


def test_empty_variables_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("DATABASE_URL", "CONTEXTLAKE_PROJECT", "CONTEXTLAKE_AUTH", "CONTEXTLAKE_SPILL_DIR", "CONTEXTLAKE_HOME")
    for name in names:
        monkeypatch.setenv(name, "")
    s = Settings()
    assert s.database_url is None and s.project is None and s.auth is True and s.spill_dir is None
    assert s.home == Path(".contextlake") and s.decision_spill_dir == s.lake_home / "decision-spill"


def test_variables_are_read_by_their_documented_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://owner@db/lake")
    monkeypatch.setenv("CONTEXTLAKE_POOL_MAX", "32")
    monkeypatch.setenv("CONTEXTLAKE_AUTH", "off")
    monkeypatch.setenv("CONTEXTLAKE_PROJECT", "/srv/features")
    s = Settings()
    assert s.pool_max == 32 and s.auth is False and s.project == Path("/srv/features")
    assert "user=contextlake_service" in s.pool_url and "host=db" in s.pool_url
    assert Settings(database_url="postgresql://x@h/d").database_url == "postgresql://x@h/d"  # explicit wins


def test_a_bad_value_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTEXTLAKE_PG_PORT", "70000")
    with pytest.raises(pydantic.ValidationError, match="pg_port"):
        Settings()
