"""Install batch landing of events (REST, bulk, CDC)."""

from migrations.sqlfile import apply

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    apply(__file__, revision)
