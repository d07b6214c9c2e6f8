"""A seeded, realistic stream of card transactions with injected fraud and late labels.

Structure of the ordinary spending:
- merchants have a category (its amount scale and channels), a country and a popularity;
- cards have a home country, a daily rate, a spending scale, a few favourite merchants, a device, a
  credit tier and limit; some cards travel for a few days (legitimate country changes);
- the rate follows the hour of the day and the day of the week; a few legitimate transactions come
  in quick runs (a shopping trip), so fast spending alone is not fraud.

Injected fraud (a share of the cards is compromised once, after the first two days):
- card testing: many tiny amounts at different online merchants within a minute, then often a
  larger purchase;
- takeover burst: a new device spends medium to large amounts at several merchants within the hour;
- geography jump: a cloned card is used in person abroad minutes after the holder used it at home;
- exposure run-up: growing amounts across many merchants until well past the credit limit.

Labels: most fraudulent transactions get a chargeback, reported days to weeks later; a few ordinary
ones get one too (friendly fraud). Only chargebacks reported before the end of the period exist.

The same seed and parameters give the same rows in the same order: every card's day has its own
random generator derived from the seed, and rows are emitted in (time, event id) order.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

COUNTRIES = ("FR", "DE", "ES", "IT", "NL", "GB", "US", "PL", "PT", "BR", "NG", "TH")
HOME_WEIGHTS = (30, 20, 15, 12, 8, 8, 7, 0, 0, 0, 0, 0)
FAR = ("US", "BR", "NG", "TH", "PL", "PT")

# category: (weight, log-amount mean, log-amount sd, channels with weights)
CATEGORIES: dict[str, tuple[int, float, float, tuple[tuple[str, int], ...]]] = {
    "grocery": (30, 3.3, 0.6, (("pos", 95), ("ecom", 5))),
    "fuel": (10, 3.8, 0.3, (("pos", 100),)),
    "restaurant": (18, 3.2, 0.6, (("pos", 90), ("moto", 10))),
    "online_retail": (15, 3.9, 0.9, (("ecom", 100),)),
    "digital": (10, 2.3, 0.8, (("ecom", 100),)),
    "electronics": (4, 5.2, 0.7, (("pos", 50), ("ecom", 50))),
    "travel": (3, 5.5, 0.8, (("ecom", 80), ("moto", 20))),
    "cash": (10, 4.3, 0.5, (("atm", 100),)),
}
# Share of the day's transactions per hour (UTC), and per weekday (Monday first).
HOURLY = (2, 1, 1, 1, 1, 2, 4, 6, 8, 9, 9, 10, 12, 11, 9, 8, 8, 9, 11, 12, 11, 9, 6, 4)
WEEKDAY = (0.9, 0.9, 0.95, 1.0, 1.15, 1.25, 0.85)
CREDIT_LIMITS = (500, 1000, 2500, 5000, 10000)
PATTERNS = ("card_testing", "takeover_burst", "geography_jump", "exposure_run_up")

TRANSACTION_COLUMNS = (
    "event_id",
    "card_id",
    "merchant_id",
    "amount",
    "currency",
    "country",
    "channel",
    "device_id",
    "event_time",
)
CHARGEBACK_COLUMNS = ("chargeback_id", "event_id", "card_id", "reason_code", "amount", "reported_at")
PROFILE_COLUMNS = ("card_id", "loaded_at", "credit_tier", "credit_limit", "tenure_days")
INCIDENT_COLUMNS = ("card_id", "pattern", "started_at", "transactions")

US_PER_DAY = 86_400_000_000
US_PER_SECOND = 1_000_000


@dataclass(frozen=True)
class Params:
    seed: int = 1
    cards: int = 5_000
    merchants: int = 2_000
    start: datetime = datetime(2026, 9, 1, tzinfo=UTC)
    days: int = 28
    fraud_share: float = 0.02  # share of cards compromised once during the period
    mean_daily_rate: float = 1.6  # ordinary transactions per card and day, on average

    def __post_init__(self) -> None:
        if self.cards < 1 or self.merchants < 20:
            raise ValueError("generate needs at least 1 card and 20 merchants")
        if self.days < 1:
            raise ValueError("generate needs at least 1 day")
        if not 0 <= self.fraud_share <= 0.5:
            raise ValueError("the fraud share is a fraction between 0 and 0.5")
        if self.start.tzinfo is None:
            raise ValueError("the start time needs a time zone")

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    category: str
    country: str


@dataclass
class Card:
    index: int
    card_id: str
    home: str
    rate: float
    scale: float
    favourites: list[int]
    device: str
    tier: int
    limit: int
    tenure_days: int
    trip: tuple[int, int, str] | None  # (first day, last day, country)
    events: int = 0


@dataclass(order=True)
class Transaction:
    t: int  # microseconds since the start of the period
    event_id: str
    card_id: str = field(compare=False)
    merchant_id: str = field(compare=False)
    amount_cents: int = field(compare=False)
    country: str = field(compare=False)
    channel: str = field(compare=False)
    device_id: str | None = field(compare=False)
    fraud: bool = field(compare=False, default=False)


@dataclass(frozen=True)
class Chargeback:
    reported: int  # microseconds since the start of the period
    chargeback_id: str
    event_id: str
    card_id: str
    reason_code: str
    amount_cents: int


@dataclass(frozen=True)
class Incident:
    card_id: str
    pattern: str
    started: int
    transactions: int


def card_name(index: int) -> str:
    return f"card-{index:06d}"


def _rng(seed: int, *parts: int) -> random.Random:
    value = seed
    for p in parts:
        value = value * 1_000_003 + p
    return random.Random(value)


def _weighted(rng: random.Random, items: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([i for i, _ in items], weights=[w for _, w in items])[0]


def merchants(params: Params) -> list[Merchant]:
    rng = _rng(params.seed, 1)
    names = list(CATEGORIES)
    weights = [CATEGORIES[c][0] for c in names]
    out = []
    for m in range(params.merchants):
        # Every category has a merchant, however few merchants there are.
        category = names[m] if m < len(names) else rng.choices(names, weights=weights)[0]
        country = rng.choices(COUNTRIES, weights=(30, 20, 15, 12, 8, 8, 7, 2, 2, 2, 1, 1))[0]
        out.append(Merchant(f"m{m:06d}", category, country))
    return out


def cards(params: Params, shops: list[Merchant]) -> list[Card]:
    by_country: dict[str, list[int]] = {}
    for i, m in enumerate(shops):
        by_country.setdefault(m.country, []).append(i)
    out = []
    for c in range(params.cards):
        rng = _rng(params.seed, 2, c)
        home = rng.choices(COUNTRIES, weights=HOME_WEIGHTS)[0]
        local = by_country.get(home) or list(range(len(shops)))
        online = [i for i in range(0, len(shops), 7) if shops[i].category in ("online_retail", "digital")]
        favourites = rng.sample(local, k=min(len(local), rng.randint(6, 20))) + rng.sample(
            online, k=min(len(online), 3)
        )
        tier = rng.choices(range(1, 6), weights=(10, 30, 30, 20, 10))[0]
        trip = None
        if rng.random() < 0.05:
            first = rng.randrange(params.days)
            trip = (first, first + rng.randint(2, 8), rng.choice([x for x in COUNTRIES if x != home]))
        out.append(
            Card(
                index=c,
                card_id=card_name(c),
                home=home,
                rate=min(rng.lognormvariate(0, 0.7) * params.mean_daily_rate / 1.28, 12.0),
                scale=rng.lognormvariate(0, 0.35),
                favourites=favourites,
                device=f"dev-{c:06d}-0",
                tier=tier,
                limit=CREDIT_LIMITS[tier - 1],
                tenure_days=rng.randint(30, 4000),
                trip=trip,
            )
        )
    return out


def _cents(amount: float) -> int:
    return max(1, int(round(amount * 100)))


def _next_id(card: Card) -> str:
    card.events += 1
    return f"{card.card_id}-{card.events:05d}"


class _Stream:
    """Emits one card-day at a time into a time-ordered heap."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.shops = merchants(params)
        self.cards = cards(params, self.shops)
        self.by_category: dict[str, list[int]] = {}
        self.by_country: dict[str, list[int]] = {}
        for i, m in enumerate(self.shops):
            self.by_category.setdefault(m.category, []).append(i)
            self.by_country.setdefault(m.country, []).append(i)
        self.incidents: list[Incident] = []
        self.chargebacks: list[Chargeback] = []
        rng = _rng(params.seed, 3)
        compromised = rng.sample(range(params.cards), k=int(round(params.cards * params.fraud_share)))
        warmup = min(2, params.days - 1)
        self.planned: dict[tuple[int, int], tuple[str, int]] = {}  # (day, card) -> (pattern, start)
        for c in sorted(compromised):
            start = rng.randrange(warmup * US_PER_DAY, params.days * US_PER_DAY)
            self.planned[(start // US_PER_DAY, c)] = (rng.choice(PATTERNS), start)

    def _tx(
        self,
        card: Card,
        t: int,
        shop: int,
        amount: float,
        channel: str | None,
        rng: random.Random,
        *,
        country: str | None = None,
        device: str | None = None,
        fraud: bool = False,
    ) -> Transaction:
        m = self.shops[shop]
        channel = channel or _weighted(rng, CATEGORIES[m.category][3])
        if channel in ("pos", "atm"):
            where = country or m.country
            dev = None
        else:
            where = country or card.home
            dev = device or card.device
        return Transaction(t, _next_id(card), card.card_id, m.merchant_id, _cents(amount), where, channel, dev, fraud)

    def _ordinary_day(self, card: Card, day: int, rng: random.Random) -> list[Transaction]:
        weekday = (self.params.start + timedelta(days=day)).weekday()
        n = _poisson(rng, card.rate * WEEKDAY[weekday])
        travelling = card.trip is not None and card.trip[0] <= day <= card.trip[1]
        out = []
        for _ in range(n):
            hour = rng.choices(range(24), weights=HOURLY)[0]
            t = day * US_PER_DAY + hour * 3_600_000_000 + rng.randrange(3_600_000_000)
            runs = rng.randint(2, 4) if rng.random() < 0.03 else 1
            for k in range(runs):
                if travelling and card.trip is not None:
                    local = self.by_country.get(card.trip[2]) or self.by_category["online_retail"]
                    shop = rng.choice(local)
                elif rng.random() < 0.7:
                    shop = rng.choice(card.favourites)
                else:
                    shop = rng.randrange(len(self.shops))
                _, mu, sd, _ = CATEGORIES[self.shops[shop].category]
                amount = rng.lognormvariate(mu, sd) * card.scale
                tx = self._tx(card, t, shop, amount, None, rng)
                out.append(tx)
                t += rng.randrange(60, 900) * US_PER_SECOND + rng.randrange(US_PER_SECOND)
                _ = k
        return out

    def _incident(self, card: Card, pattern: str, t: int, rng: random.Random) -> list[Transaction]:
        cat = self.by_category
        out: list[Transaction] = []
        if pattern == "card_testing":
            for _ in range(rng.randint(5, 14)):
                out.append(
                    self._tx(card, t, rng.choice(cat["digital"]), rng.uniform(0.5, 3.0), "ecom", rng, fraud=True)
                )
                t += rng.randrange(2, 10) * US_PER_SECOND + rng.randrange(US_PER_SECOND)
            if rng.random() < 0.6:
                t += rng.randrange(60, 1200) * US_PER_SECOND
                shop = rng.choice(cat["electronics"] + cat["online_retail"])
                out.append(self._tx(card, t, shop, rng.uniform(150, 900), "ecom", rng, fraud=True))
        elif pattern == "takeover_burst":
            device = f"dev-x{rng.randrange(10**6):06d}"
            country = card.home if rng.random() < 0.6 else rng.choice(FAR)
            for _ in range(rng.randint(4, 10)):
                shop = rng.choice(cat["electronics"] + cat["online_retail"] + cat["travel"])
                amount = rng.uniform(80, 600)
                out.append(self._tx(card, t, shop, amount, "ecom", rng, country=country, device=device, fraud=True))
                t += rng.randrange(60, 600) * US_PER_SECOND + rng.randrange(US_PER_SECOND)
        elif pattern == "geography_jump":
            # The holder pays at home; minutes later the cloned card is used in person far away.
            out.append(
                self._tx(card, t, rng.choice(card.favourites), rng.uniform(5, 60), "pos", rng, country=card.home)
            )
            abroad = rng.choice([x for x in FAR if x != card.home])
            local = self.by_country.get(abroad) or cat["cash"]
            t += rng.randrange(300, 3000) * US_PER_SECOND
            for _ in range(rng.randint(2, 5)):
                channel = "atm" if rng.random() < 0.5 else "pos"
                amount = rng.uniform(200, 500) if channel == "atm" else rng.uniform(50, 400)
                out.append(self._tx(card, t, rng.choice(local), amount, channel, rng, country=abroad, fraud=True))
                t += rng.randrange(300, 2400) * US_PER_SECOND + rng.randrange(US_PER_SECOND)
        else:  # exposure_run_up
            amount = rng.uniform(20, 60)
            spent = 0.0
            shops = rng.sample(range(len(self.shops)), k=min(30, len(self.shops)))
            for shop in shops:
                channel = "ecom" if self.shops[shop].category in ("online_retail", "digital", "travel") else "pos"
                out.append(self._tx(card, t, shop, amount, channel, rng, country=card.home, fraud=True))
                spent += amount
                if spent > card.limit * rng.uniform(1.2, 2.0) or len(out) >= 20:
                    break
                amount *= rng.uniform(1.15, 1.5)
                t += rng.randrange(90, 900) * US_PER_SECOND + rng.randrange(US_PER_SECOND)
        self.incidents.append(Incident(card.card_id, pattern, out[0].t, len(out)))
        return out

    def _label(self, tx: Transaction, rng: random.Random) -> None:
        if tx.fraud:
            if rng.random() >= 0.85:
                return  # some fraud is never disputed
            delay_days = 1 + rng.lognormvariate(1.7, 0.6)
            reason = "10.4"
        else:
            if rng.random() >= 0.0005:
                return
            delay_days = 3 + rng.lognormvariate(2.3, 0.5)  # friendly fraud: a holder disputes their own purchase
            reason = "13.1"
        reported = tx.t + int(delay_days * US_PER_DAY)
        if reported < self.params.days * US_PER_DAY:
            self.chargebacks.append(
                Chargeback(reported, f"cb-{tx.event_id}", tx.event_id, tx.card_id, reason, tx.amount_cents)
            )

    def transactions(self) -> Iterator[Transaction]:
        """Every transaction of the period in (time, event id) order, holding about a day in memory."""
        pending: list[Transaction] = []
        end = self.params.days * US_PER_DAY
        for day in range(self.params.days):
            for card in self.cards:
                rng = _rng(self.params.seed, 4, card.index, day)
                todays = self._ordinary_day(card, day, rng)
                planned = self.planned.get((day, card.index))
                if planned is not None:
                    todays += self._incident(card, planned[0], planned[1], rng)
                for tx in todays:
                    if tx.t < end:
                        self._label(tx, rng)
                        heapq.heappush(pending, tx)
            horizon = (day + 1) * US_PER_DAY
            while pending and pending[0].t < horizon:
                yield heapq.heappop(pending)
        while pending:
            yield heapq.heappop(pending)


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: small rates only (a card makes at most a few dozen transactions a day).
    limit, k, p = pow(2.718281828459045, -lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass
class Generated:
    """The generated period: stream `transactions` first; chargebacks, incidents and profiles are
    complete once it is exhausted."""

    params: Params
    _stream: _Stream

    def transactions(self) -> Iterator[Transaction]:
        return self._stream.transactions()

    def chargebacks(self) -> list[Chargeback]:
        return sorted(self._stream.chargebacks, key=lambda c: (c.reported, c.chargeback_id))

    def incidents(self) -> list[Incident]:
        return sorted(self._stream.incidents, key=lambda i: (i.started, i.card_id))

    def profiles(self) -> Iterator[tuple[object, ...]]:
        loaded = self.params.start - timedelta(days=1)
        for card in self._stream.cards:
            yield (card.card_id, loaded, card.tier, card.limit, card.tenure_days)

    def time(self, us: int) -> datetime:
        return self.params.start + timedelta(microseconds=us)

    def transaction_row(self, tx: Transaction) -> tuple[object, ...]:
        amount = f"{tx.amount_cents // 100}.{tx.amount_cents % 100:02d}"
        return (
            tx.event_id,
            tx.card_id,
            tx.merchant_id,
            amount,
            "EUR",
            tx.country,
            tx.channel,
            tx.device_id,
            self.time(tx.t),
        )

    def chargeback_row(self, cb: Chargeback) -> tuple[object, ...]:
        amount = f"{cb.amount_cents // 100}.{cb.amount_cents % 100:02d}"
        return (cb.chargeback_id, cb.event_id, cb.card_id, cb.reason_code, amount, self.time(cb.reported))

    def incident_row(self, i: Incident) -> tuple[object, ...]:
        return (i.card_id, i.pattern, self.time(i.started), i.transactions)

    @property
    def expected_transactions(self) -> float:
        return self.params.cards * self.params.days * self.params.mean_daily_rate * 1.05


def generate(params: Params) -> Generated:
    return Generated(params, _Stream(params))
