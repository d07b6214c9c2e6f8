"""Install replica maintenance (native logical replication into landing tables)."""

from migrations.sqlfile import apply

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    apply(__file__, revision)
