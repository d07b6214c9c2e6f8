"""Install the model registry, decision log, API keys and database roles."""

from migrations.sqlfile import apply

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    apply(__file__, revision)
