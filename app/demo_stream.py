"""A small seeded stream of card transactions for the demo and the benchmarks.

Mostly ordinary spending, plus two fraud patterns, marked as such: card testing (many small
amounts at different merchants within a minute) and takeover spending (a large amount in a
foreign country, soon after the card's previous use).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

COUNTRIES = ["FR", "DE", "ES", "IT", "NL", "GB", "US"]
CHANNELS = ["pos", "ecom", "atm", "moto"]
COLUMNS = ("event_id", "card_id", "merchant_id", "amount", "currency", "country", "channel", "device_id", "event_time")


@dataclass(frozen=True)
class Transaction:
    event_id: str
    card_id: str
    merchant_id: str
    amount: Decimal
    currency: str
    country: str
    channel: str
    device_id: str | None
    event_time: datetime
    fraud: bool = False

    def row(self) -> tuple[object, ...]:
        return tuple(getattr(self, c) for c in COLUMNS)


def card_name(i: int) -> str:
    return f"card-{i:06d}"


def stream(
    seed: int, cards: int, events: int, start: datetime, end: datetime, prefix: str = "d"
) -> Iterator[Transaction]:
    """`events` transactions spread over [start, end), in time order, a few card-testing bursts included."""
    rng = random.Random(seed)
    span = (end - start).total_seconds()
    home = {c: rng.choice(COUNTRIES) for c in range(cards)}
    times = sorted(rng.random() * span for _ in range(events))
    testers = set(rng.sample(range(cards), k=max(1, cards // 200)))
    for n, t in enumerate(times):
        c = rng.randrange(cards)
        when = start + timedelta(seconds=t)
        if c in testers and rng.random() < 0.5:
            # Card testing: a burst of tiny amounts at distinct merchants within seconds.
            for k in range(6):
                yield Transaction(
                    f"{prefix}{n}-{k}",
                    card_name(c),
                    f"m{rng.randrange(5000)}",
                    Decimal("1.00") + k,
                    "EUR",
                    home[c],
                    "ecom",
                    None,
                    when + timedelta(seconds=k),
                    fraud=True,
                )
            continue
        if rng.random() < 0.004:
            # Takeover: a large amount abroad, minutes after the card was last used at home.
            abroad = rng.choice([x for x in COUNTRIES if x != home[c]])
            amount = Decimal(round(rng.uniform(300, 900), 2)).quantize(Decimal("0.01"))
            yield Transaction(
                f"{prefix}{n}-a",
                card_name(c),
                f"m{rng.randrange(500)}",
                Decimal("12.00"),
                "EUR",
                home[c],
                "pos",
                f"dev{c % 97}",
                when,
            )
            yield Transaction(
                f"{prefix}{n}-b",
                card_name(c),
                f"m{rng.randrange(500)}",
                amount,
                "EUR",
                abroad,
                "ecom",
                None,
                when + timedelta(seconds=rng.randrange(60, 900)),
                fraud=True,
            )
            continue
        amount = Decimal(round(rng.lognormvariate(3.2, 0.9), 2)).quantize(Decimal("0.01"))
        country = home[c] if rng.random() > 0.03 else rng.choice(COUNTRIES)
        yield Transaction(
            f"{prefix}{n}",
            card_name(c),
            f"m{rng.randrange(500)}",
            amount,
            "EUR",
            country,
            rng.choice(CHANNELS),
            f"dev{c % 97}",
            when,
        )
