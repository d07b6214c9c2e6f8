"""Create the card landing tables and sources."""

from migrations.sqlfile import apply

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    apply(__file__, revision)
