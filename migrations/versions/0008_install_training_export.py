"""Install point-in-time training exports (labels in the catalog, the export statement)."""

from migrations.sqlfile import apply

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    apply(__file__, revision)
