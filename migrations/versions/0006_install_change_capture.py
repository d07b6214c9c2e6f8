"""Install change data capture: upstream table mappings and the ledger of applied changes."""

from migrations.sqlfile import apply

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    apply(__file__, revision)
