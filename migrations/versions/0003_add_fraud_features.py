"""Add the fraud features, feature set and rules."""

from migrations.sqlfile import apply

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    apply(__file__, revision)
