"""Install the lake engine from sql/."""

from migrations.sqlfile import apply

revision = "0001"
down_revision = None


def upgrade() -> None:
    apply(__file__, revision)
