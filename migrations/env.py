"""Alembic environment: one transaction per migration, checksums verified before anything runs."""

from alembic import context
from sqlalchemy import create_engine, pool

from migrations.sqlfile import ensure_bookkeeping, verify_applied

MIGRATION_LOCK = 727_001  # advisory lock key: one migrator at a time


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
        conn.commit()  # the session-level lock outlives this transaction
        try:
            with conn.begin():
                ensure_bookkeeping(conn)
                verify_applied(conn)
            context.configure(
                connection=conn,
                transaction_per_migration=True,
                version_table_schema="lake",
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
            conn.commit()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: migrations run against a database")
run()
