"""Landing card transactions of the example project in tests: one helper instead of a hand-written
INSERT in every test file."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import Connection, sql

from examples.cards.generator import TRANSACTION_COLUMNS as COLUMNS


def insert_rows(count: int) -> sql.Composed:
    """One INSERT of `count` transactions, their values in COLUMNS order, flattened."""
    one = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)))
    return sql.SQL("INSERT INTO cards.transactions ({}) VALUES {}").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.SQL(", ").join([one] * count)
    )


INSERT = insert_rows(1)
COPY = sql.SQL("COPY cards.transactions ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))


def row(
    event_id: str,
    card: str,
    merchant: str = "m1",
    amount: float | Decimal = 5,
    when: datetime | None = None,
    *,
    currency: str = "EUR",
    country: str = "FR",
    channel: str = "pos",
    device: str | None = None,
) -> tuple[Any, ...]:
    """One transaction's values in COLUMNS order; `when` None means the statement's time."""
    return (event_id, card, merchant, Decimal(str(amount)), currency, country, channel, device, when)


def land_txn(conn: Connection[Any], *args: Any, **kwargs: Any) -> None:
    """INSERT one card transaction (see row() for the arguments)."""
    values = row(*args, **kwargs)
    if values[-1] is None:
        conn.execute(
            sql.SQL("INSERT INTO cards.transactions ({}) VALUES ({}, now())").format(
                sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
                sql.SQL(", ").join(sql.Placeholder() * (len(COLUMNS) - 1)),
            ),
            values[:-1],
        )
    else:
        conn.execute(INSERT, values)
