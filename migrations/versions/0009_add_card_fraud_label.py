"""Example domain: the fraud label of card transactions (a chargeback names the transaction)."""

from migrations.sqlfile import apply

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    apply(__file__, revision)
