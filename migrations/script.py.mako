"""${message}"""

from migrations.sqlfile import apply

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}


def upgrade() -> None:
    apply(__file__, revision)
