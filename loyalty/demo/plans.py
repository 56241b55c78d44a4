"""The demo's plans: who each synthetic member is and what they do when, as pure functions of
(seed, member number, the history's span), so the same seed gives the same history and a plan can be
made again rather than kept.

Personas: loyal, regular, big spender, one-timer, lapsed (churned), fading (at risk), returning
(reactivated), browser. Member 0 is the showcase member (rundemo prints its portal login) with a
scripted, rich history; members 1-13 have fixed roles, so even a small demo holds every kind of
data: the showcase member's friends (three rewarded, one pending), a referral from the referrer's
own phone and one paid with the referrer's card (both rejected), an early lapser whose points
expire, a big spender, an at-risk member, a returning one, one churned this month.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from loyalty.demo.program import FX_TO_USD
from loyalty.services.earning import LineDraft

SHOWCASE = 0


class Persona(StrEnum):
    SHOWCASE = "showcase"  # member 0: the portal demo, scripted
    FRIEND = "friend"  # joined with the showcase member's code
    LOYAL = "loyal"  # orders every month or so, to this day
    REGULAR = "regular"  # a few orders a year
    BIG_SPENDER = "big_spender"  # large baskets, often: Rouge
    ONE_TIMER = "one_timer"  # one order, never again
    LAPSED = "lapsed"  # ordered for a while, nothing for over a year: churned
    FADING = "fading"  # ordered regularly, silent for months: at risk
    RETURNING = "returning"  # lapsed for over a year, came back lately: reactivated
    BROWSER = "browser"  # enrolled, never ordered


@dataclass(frozen=True)
class Style:
    gap: float  # mean days between orders
    lines: tuple[int, int]  # lines per order
    premium: float  # chance that a line is a premium product
    redeem: float  # chance to pay with points when they could
    review: float  # chance to review an order
    claim: float  # chance to claim a reward after an order
    survey: float  # chance to answer a survey
    nps: tuple[int, int]  # what they answer


STYLES = {
    Persona.SHOWCASE: Style(42, (1, 3), 0.3, 0, 0, 0, 1.0, (9, 10)),
    Persona.FRIEND: Style(70, (1, 3), 0.2, 0.2, 0.15, 0.1, 0.5, (7, 10)),
    Persona.LOYAL: Style(60, (1, 3), 0.25, 0.3, 0.25, 0.12, 0.55, (8, 10)),
    Persona.REGULAR: Style(120, (1, 3), 0.15, 0.15, 0.1, 0.08, 0.4, (6, 9)),
    Persona.BIG_SPENDER: Style(45, (2, 5), 0.7, 0.35, 0.2, 0.15, 0.45, (7, 10)),
    Persona.ONE_TIMER: Style(365, (1, 2), 0.1, 0, 0, 0, 0.25, (3, 8)),
    Persona.LAPSED: Style(70, (1, 3), 0.15, 0.1, 0.05, 0.05, 0.3, (2, 7)),
    Persona.FADING: Style(50, (1, 3), 0.2, 0.1, 0.05, 0.05, 0.35, (3, 7)),
    Persona.RETURNING: Style(40, (1, 3), 0.2, 0.15, 0.1, 0.1, 0.45, (6, 9)),
    Persona.BROWSER: Style(365, (1, 1), 0, 0, 0, 0, 0.2, (5, 8)),
}
WEIGHTS = {  # members 14 and up
    Persona.LOYAL: 16,
    Persona.REGULAR: 22,
    Persona.BIG_SPENDER: 4,
    Persona.ONE_TIMER: 18,
    Persona.LAPSED: 15,
    Persona.FADING: 10,
    Persona.RETURNING: 5,
    Persona.BROWSER: 10,
}
FIXED = {  # member number -> persona, so a small demo has every kind of data
    0: Persona.SHOWCASE,
    1: Persona.FRIEND,
    2: Persona.FRIEND,
    3: Persona.FRIEND,
    4: Persona.LAPSED,  # stopped early: points expired
    5: Persona.LOYAL,  # joined with member 7's code from member 7's phone: rejected (same device)
    6: Persona.REGULAR,  # joined with member 8's code, paid with member 8's card: rejected (same payment)
    7: Persona.BIG_SPENDER,
    8: Persona.FADING,
    9: Persona.RETURNING,
    10: Persona.LAPSED,  # last order a year and a few days ago: churned this month
    11: Persona.ONE_TIMER,
    12: Persona.FRIEND,  # joined lately: the showcase member's referral still pending
    13: Persona.BROWSER,
}
FIXED_FATES = {(7, 2): 0.0, (10, 0): 0.1}  # (member, order) -> a cancel, a refund by amount
FRIEND_AGES = {1: 0.78, 2: 0.52, 3: 0.27}  # when the showcase member's friends joined, as shares of the span

# name, category, price in USD, premium
CATALOG = [
    ("SERUM-VITC", "skincare", "68", True),
    ("CREAM-HYDRA", "skincare", "42", False),
    ("CLEANSER-GEL", "skincare", "24", False),
    ("SPF50-FLUID", "skincare", "36", False),
    ("EYE-CREAM", "skincare", "55", True),
    ("MASK-SHEET5", "skincare", "20", False),
    ("RETINOL-NIGHT", "skincare", "89", True),
    ("LIPSTICK-ROUGE", "makeup", "28", False),
    ("MASCARA-VOLUME", "makeup", "26", False),
    ("FOUNDATION-SILK", "makeup", "46", False),
    ("PALETTE-NUDE", "makeup", "62", True),
    ("BLUSH-PEACH", "makeup", "30", False),
    ("EDP-ROSE-50", "fragrance", "128", True),
    ("EDT-CITRUS-30", "fragrance", "74", True),
    ("MIST-VANILLA", "fragrance", "32", False),
    ("SHAMPOO-REPAIR", "hair", "24", False),
    ("HAIR-OIL", "hair", "38", False),
    ("DRYER-PRO", "tools", "189", True),
    ("BRUSH-SET", "tools", "52", False),
    ("SPONGE-BLEND", "tools", "18", False),
]
GIFT_CARD = ("GIFTCARD-50", "gift_card", "50")
COUNTRIES = {  # home currency -> (country, language) choices
    "USD": [("US", "en")],
    "EUR": [("DE", "en"), ("FR", "en"), ("ES", "en"), ("IT", "en")],
    "GBP": [("GB", "en")],
    "CAD": [("CA", "en")],
    "PLN": [("PL", "pl")],
    "JPY": [("JP", "en")],
}
HOME_WEIGHTS = {"USD": 55, "EUR": 18, "GBP": 10, "CAD": 7, "PLN": 8, "JPY": 2}
FIRST = [
    "Anna", "Ben", "Chloe", "Dev", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas", "Kasia", "Liam",
    "Maya", "Nora", "Olek", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Vik", "Wren", "Yuki", "Zoe",
]  # fmt: skip
LAST = [
    "Kowalska", "Smith", "Nguyen", "Garcia", "Muller", "Rossi", "Tanaka", "Brown", "Nowak", "Dubois",
    "Okafor", "Silva", "Larsen", "Haddad", "Moreau", "Patel", "Wisniewska", "Clarke", "Jensen", "Romero",
]  # fmt: skip
NPS_COMMENTS = {
    "promoter": ["Love the free samples!", "Rouge perks are worth it.", "Fast delivery, great points.", ""],
    "passive": ["Good, but shipping could be faster.", "Nice rewards, hard to reach though.", ""],
    "detractor": ["Points expire too soon.", "My last order arrived damaged.", "Too many e-mails.", ""],
}
REVIEWS = ["Holy grail!", "Lovely texture.", "Works for my skin.", "Smells divine.", "Good, not great."]


# --- plans ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """The history's clock: from `end - days` to `end` (now), and the seed that makes it repeatable."""

    seed: int
    end: datetime
    days: int

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    def ago(self, days: float) -> datetime:
        return self.end - timedelta(days=days)

    def rng(self, *parts) -> random.Random:
        return random.Random(":".join(map(str, (self.seed, *parts))))


class Action(NamedTuple):
    at: datetime
    index: int  # the member's number; -1 for the program's own actions
    step: int  # order of actions at the same instant
    kind: str
    data: dict


@dataclass(frozen=True)
class Who:
    index: int
    persona: Persona
    enrolled_at: datetime
    first_name: str
    last_name: str
    currency: str
    country: str
    locale: str
    birth_date: date | None
    referrer: int | None = None
    fraud: str = ""  # "device" or "payment": a referral the fraud rules reject

    @property
    def external_id(self) -> str:
        return external_id(self.index)

    @property
    def email(self) -> str:
        return f"member{self.index}@example.com"

    def card(self, k: int = 0) -> str:
        return f"card-{self.index:06d}-{k}"

    def device(self, k: int = 0) -> str:
        return f"device-{self.index:06d}-{k}"


def external_id(index: int) -> str:
    return f"demo-{index:06d}"


def persona_of(index: int, span: Span) -> Persona:
    if index in FIXED:
        return FIXED[index]
    rng = span.rng(index, "persona")
    return rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]


def _age_window(persona: Persona, index: int, span: Span, rng: random.Random) -> tuple[float, float]:
    """(enrolled, last order) as days before the end; the last order may be 0 (to this day)."""
    d = span.days
    if persona == Persona.SHOWCASE:
        return d - 2, 0
    if persona == Persona.FRIEND:
        return (12, 0) if index == 12 else (max(d * FRIEND_AGES.get(index, rng.uniform(0.2, 0.8)), 40), 0)
    if persona == Persona.LAPSED:
        if index == 4:
            stop = max(d - rng.uniform(100, 160), 1)
        elif index == 10:
            stop = rng.uniform(372, 388)
        else:
            stop = rng.uniform(366, max(d - 60, 367))
        return min(d, stop + rng.uniform(60, 250)), min(stop, d)
    if persona == Persona.FADING:
        stop = 240 if index == 8 else rng.uniform(110, 240)
        return min(d, stop + rng.uniform(90, 250)), min(stop, d)
    if persona == Persona.RETURNING:
        return (d - 5 if index == 9 else rng.uniform(max(d - 200, 0.75 * d), d)), 0
    if index in (5, 6):  # after their referrers' first orders
        return (d * 0.5 if index == 5 else min(200.0, d * 0.4)), 0
    if persona == Persona.BIG_SPENDER:
        return (d - 10 if index == 7 else _growing(rng, 120, d)), 0
    if persona == Persona.ONE_TIMER:
        return _growing(rng, 5, d), 0
    if persona == Persona.BROWSER:
        return _growing(rng, 1, d), 0
    return _growing(rng, 45 if persona == Persona.REGULAR else 60, d), 0


def _growing(rng: random.Random, low: float, high: float) -> float:
    """Days ago, between `low` and `high`, more of them lately: the program grows."""
    return low + (high - low) * rng.random() ** 1.6


def member_who(index: int, span: Span) -> Who:
    """Who member `index` is: a pure function of the seed and the span."""
    persona = persona_of(index, span)
    rng = span.rng(index, "who")
    enrolled_age, _ = _age_window(persona, index, span, span.rng(index, "ages"))
    currency = rng.choices(list(HOME_WEIGHTS), weights=list(HOME_WEIGHTS.values()))[0]
    country, locale = rng.choice(COUNTRIES[currency])
    first, last = rng.choice(FIRST), rng.choice(LAST)
    birth = date(rng.randint(1966, 2004), rng.randint(1, 12), rng.randint(1, 28)) if rng.random() < 0.7 else None
    if persona == Persona.SHOWCASE:
        first, last, currency, country, locale = "Maya", "Laurent", "USD", "US", "en"
        birth = date(1991, span.ago(45).month, 14)
    referrer, fraud = None, ""
    if persona == Persona.FRIEND:
        referrer = SHOWCASE
    elif index == 5:
        referrer, fraud = 7, "device"
    elif index == 6:
        referrer, fraud = 8, "payment"
    elif index not in FIXED and rng.random() < 0.18:
        referrer = _referrer_pick(index, span, enrolled_age, rng)
        fraud = "device" if referrer is not None and rng.random() < 0.15 else ""
    return Who(
        index=index,
        persona=persona,
        enrolled_at=max(_at(span.ago(enrolled_age), rng), span.start + timedelta(minutes=5)),
        first_name=first,
        last_name=last,
        currency=currency,
        country=country,
        locale=locale,
        birth_date=birth,
        referrer=referrer,
        fraud=fraud,
    )


def _referrer_pick(index: int, span: Span, enrolled_age: float, rng: random.Random) -> int | None:
    """A member who enrolled well before this one and recommends the shop."""
    for _ in range(8):
        j = rng.randrange(0, index)
        if persona_of(j, span) not in (Persona.LOYAL, Persona.REGULAR, Persona.BIG_SPENDER, Persona.FRIEND):
            continue
        age, _ = _age_window(persona_of(j, span), j, span, span.rng(j, "ages"))
        if age > enrolled_age + 20:
            return j
    return None


def _at(day: datetime, rng: random.Random) -> datetime:
    """A time of day a shop sees orders at (8:00 to 22:00), on the day of `day`."""
    midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(hours=rng.uniform(8, 22))


def _price(usd: Decimal, currency: str) -> Decimal:
    """A shelf price in the currency: x.99, or round hundreds of yen."""
    value = usd / FX_TO_USD[currency]
    if currency == "JPY":
        return max((value / 100).quantize(Decimal(1)) * 100, Decimal(100))
    return max(value.quantize(Decimal(1)) - Decimal("0.01"), Decimal("0.99"))


@dataclass
class Basket:
    lines: tuple[LineDraft, ...]
    shipping: Decimal
    tax: Decimal


def _basket(rng: random.Random, style: Style, currency: str, *, skincare: bool = False, least: int = 0) -> Basket:
    lines, skus = [], set()
    count = rng.randint(*style.lines)
    while len(lines) < count:
        premium = rng.random() < style.premium
        choices = [p for p in CATALOG if p[3] == premium and p[0] not in skus] or CATALOG
        if skincare and not lines:
            choices = [p for p in CATALOG if p[1] == "skincare" and p[3]]
        sku, category, usd, _ = rng.choice(choices)
        skus.add(sku)
        quantity = 2 if rng.random() < 0.15 else 1
        price = _price(Decimal(usd), currency)
        discount = Decimal(0)
        if rng.random() < 0.12:  # a line on sale
            discount = (price * quantity * Decimal("0.15")).quantize(
                Decimal(1) if currency == "JPY" else Decimal("0.01")
            )
        lines.append(LineDraft(sku=sku, category=category, quantity=quantity, unit_price=price, discount=discount))
    if rng.random() < 0.03:  # a gift card: paid for, earns nothing
        sku, category, usd = GIFT_CARD
        lines.append(
            LineDraft(sku=sku, category=category, quantity=1, unit_price=_price(Decimal(usd), currency), gift_card=True)
        )
    merchandise_usd = sum(line.net for line in lines) * FX_TO_USD[currency]
    if merchandise_usd < least:
        sku, category, usd, _ = next(p for p in CATALOG if p[0] == "SERUM-VITC")
        lines.append(
            LineDraft(sku=sku + "-DUO", category=category, quantity=1, unit_price=_price(Decimal(usd), currency))
        )
        merchandise_usd = sum(line.net for line in lines) * FX_TO_USD[currency]
    merchandise = sum(line.net for line in lines)
    cents = Decimal(1) if currency == "JPY" else Decimal("0.01")
    shipping = _price(Decimal("6"), currency) if merchandise_usd < 50 else Decimal(0)
    tax = (merchandise * Decimal("0.08")).quantize(cents) if currency in ("USD", "CAD") else Decimal(0)
    return Basket(tuple(lines), shipping, tax)


def _order_times(rng: random.Random, first: datetime, last: datetime, gap: float) -> list[datetime]:
    times, t = [], first
    while t <= last:
        times.append(_at(t, rng))
        t += timedelta(days=max(5.0, rng.gammavariate(2.0, gap / 2)))
    return times


def member_actions(who: Who, span: Span) -> list[Action]:
    """Everything member `who` does over the span, in time order."""
    rng = span.rng(who.index, "acts")
    style = STYLES[who.persona]
    acts: list[Action] = []
    data = {"who": who}
    acts.append(Action(who.enrolled_at, who.index, 0, "enroll", data))
    if who.persona == Persona.SHOWCASE:
        acts += _showcase_plan(who, span, rng)
        return sorted((a for a in acts if a.kind == "enroll" or a.at > who.enrolled_at), key=action_key)
    times = _persona_order_times(who, span, rng)
    for n, placed in enumerate(times):
        order = {"who": who, "n": n}
        order["currency"] = who.currency if rng.random() < 0.88 else rng.choice(list(FX_TO_USD))
        first_referred = n == 0 and who.referrer is not None
        order["basket"] = _basket(rng, style, order["currency"], least=40 if first_referred else 0)
        order["card"] = who.card(0 if n == 0 or rng.random() < 0.85 else 1)
        order["device"] = who.device(0 if n == 0 or rng.random() < 0.7 else 1)
        if first_referred and who.fraud == "payment":
            order["card"] = member_who(who.referrer, span).card(0)  # the referrer's card, used on their first order
        order["pay_points"] = rng.random() < style.redeem
        acts.append(Action(placed, who.index, 1, "order", order))
        ref = f"{who.external_id}-{n + 1:03d}"
        fate = rng.random()
        if who.persona == Persona.FRIEND and n == 0:
            fate = 1.0  # the friend's first order stands: the referral qualifies
        fate = FIXED_FATES.get((who.index, n), fate)
        if fate < 0.03:
            acts.append(Action(placed + timedelta(hours=rng.uniform(2, 30)), who.index, 2, "cancel", {"order": ref}))
            continue
        if fate < 0.08:
            acts.append(
                Action(placed + timedelta(days=rng.uniform(4, 25)), who.index, 2, "refund_lines", {"order": ref})
            )
        elif fate < 0.11:
            share = Decimal(rng.randint(20, 60)) / 100
            acts.append(
                Action(
                    placed + timedelta(days=rng.uniform(5, 20)),
                    who.index,
                    2,
                    "refund_amount",
                    {"order": ref, "share": share},
                )
            )
        if rng.random() < style.review:
            review = {"order": ref, "rating": rng.choice([5, 5, 4, 4, 3]), "text": rng.choice(REVIEWS)}
            acts.append(Action(placed + timedelta(days=rng.uniform(6, 25)), who.index, 3, "review", review))
        if rng.random() < style.claim:
            acts.append(
                Action(
                    placed + timedelta(days=rng.uniform(1, 10)), who.index, 3, "claim", {"rouge": rng.random() < 0.5}
                )
            )
        if rng.random() < 0.5:  # the post-purchase survey
            sent = placed + timedelta(days=3)
            acts.append(Action(sent, who.index, 4, "csat_send", {"order": ref}))
            if rng.random() < style.survey:
                score = rng.choice([5, 5, 4, 4, 3] if fate >= 0.11 else [2, 3, 3, 4])
                acts.append(
                    Action(
                        sent + timedelta(days=rng.uniform(0.1, 4)),
                        who.index,
                        5,
                        "csat_answer",
                        {"order": ref, "score": score},
                    )
                )
        if rng.random() < 0.03:  # a checkout left with points on hold: cancelled, or left to run out
            acts.append(Action(placed - timedelta(minutes=40), who.index, 0, "abandon", {"void": rng.random() < 0.7}))
    acts += _birthdays(who, span, rng, times)
    return sorted((a for a in acts if a.kind == "enroll" or a.at > who.enrolled_at), key=action_key)


def _persona_order_times(who: Who, span: Span, rng: random.Random) -> list[datetime]:
    return sorted(t for t in _times(who, span, rng) if who.enrolled_at < t < span.end)


def _times(who: Who, span: Span, rng: random.Random) -> list[datetime]:
    persona, style = who.persona, STYLES[who.persona]
    _, last_age = _age_window(persona, who.index, span, span.rng(who.index, "ages"))
    first = who.enrolled_at + timedelta(days=rng.uniform(0.05, 6))
    if persona == Persona.BROWSER:
        return []
    if persona == Persona.ONE_TIMER:
        return [first]
    if persona == Persona.FRIEND and who.index == 12:
        return [min(who.enrolled_at + timedelta(days=4), span.ago(1))]
    if persona == Persona.RETURNING:
        first_run = _order_times(rng, first, first + timedelta(days=rng.uniform(45, 120)), style.gap)
        back = span.ago(30 if who.index == 9 else rng.uniform(8, 45))
        if not first_run or back - first_run[-1] < timedelta(days=380):  # too short for a year's silence
            return first_run
        return first_run + _order_times(rng, back, span.ago(0), style.gap)
    last = span.ago(last_age)
    times = _order_times(rng, first, last, style.gap)
    if persona in (Persona.LAPSED, Persona.FADING) and times:
        times[-1] = _at(last, rng)  # they stopped exactly then
        if persona == Persona.FADING and who.index != 8 and rng.random() < 0.35:
            times.append(_at(span.ago(rng.uniform(30, 75)), rng))  # won back
    return list(set(times))


def _birthdays(who: Who, span: Span, rng: random.Random, orders: list[datetime]) -> list[Action]:
    """The birthday choice, in the birthday month of years the member was shopping."""
    if who.birth_date is None:
        return []
    acts = []
    for year in range(span.start.year, span.end.year + 1):
        at = datetime(year, who.birth_date.month, rng.randint(1, 20), 11, tzinfo=UTC)
        if not who.enrolled_at < at < span.end:
            continue
        near = any(abs((t - at).days) < 120 for t in orders)
        if near and rng.random() < 0.7:
            acts.append(Action(at, who.index, 3, "birthday", {"points": rng.random() < 0.65}))
    return acts


def _showcase_plan(who: Who, span: Span, rng: random.Random) -> list[Action]:
    """Member 0: monthly orders to this day, VIB then higher, three friends referred, points paid
    at checkout, rewards claimed, reviews, a refund, the birthday points, surveys answered."""
    style = STYLES[Persona.SHOWCASE]
    times = _order_times(rng, who.enrolled_at + timedelta(days=2), span.ago(5), style.gap)
    march = datetime(span.end.year, 3, 1, tzinfo=UTC)
    if span.start + timedelta(days=5) < march and span.end - march > timedelta(days=61):  # the Spring streak
        times = [t for t in times if t.month != 3 or t.year != march.year]
        times += [march + timedelta(days=d, hours=h) for d, h in ((2, 19), (11, 12), (23, 20))]
    if times[-1] < span.ago(15):
        times.append(_at(span.ago(6), rng))  # the latest order: its points still pending
    times = sorted(times)
    acts = []
    last = len(times) - 1
    for n, placed in enumerate(times):
        back = last - n  # 0 is the latest order
        currency = {8: "EUR", 11: "GBP"}.get(back, "USD")
        basket = _basket(rng, style, currency, skincare=n % 2 == 0, least=60 if n else 40)
        order = {
            "who": who,
            "n": n,
            "currency": currency,
            "basket": basket,
            "card": who.card(0),
            "device": who.device(0),
            "pay_points": back in (2, 10),
        }
        acts.append(Action(placed, who.index, 1, "order", order))
        ref = f"{who.external_id}-{n + 1:03d}"
        if back == 7:
            acts.append(Action(placed + timedelta(days=9), who.index, 2, "refund_lines", {"order": ref}))
        if back in (4, 9, 12, 14):
            review = {"order": ref, "rating": 5, "text": REVIEWS[back % len(REVIEWS)]}
            acts.append(Action(placed + timedelta(days=8), who.index, 3, "review", review))
        if back in (3, 9):
            acts.append(Action(placed + timedelta(days=2), who.index, 3, "csat_send", {"order": ref}))
            acts.append(
                Action(placed + timedelta(days=2, hours=5), who.index, 4, "csat_answer", {"order": ref, "score": 5})
            )
        if back in (5, 13):  # a checkout with points given up: cancelled, or left to run out
            acts.append(Action(placed - timedelta(minutes=30), who.index, 0, "abandon", {"void": back == 5}))
        if back in (3, 10):
            acts.append(
                Action(
                    placed + timedelta(days=3),
                    who.index,
                    3,
                    "claim",
                    {"reward": "$10 off" if back == 3 else "Deluxe sample"},
                )
            )
    birthday = datetime(span.ago(45).year, who.birth_date.month, 16, 11, tzinfo=UTC)
    if who.enrolled_at < birthday < span.end:
        acts.append(Action(birthday, who.index, 3, "birthday", {"points": True}))
    return acts


def program_actions(span: Span) -> list[Action]:
    """What the program's staff and tools do: the monthly NPS survey, a win-back campaign, a
    partnership tier pin, a goodwill adjustment."""
    acts = []
    month = datetime(span.start.year, span.start.month, 5, 10, tzinfo=UTC)
    while month < span.end:
        if month > span.start:
            acts.append(Action(month, -1, 0, "nps_campaign", {"survey": f"nps-{month:%Y-%m}"}))
        month = (month + timedelta(days=32)).replace(day=5)
    if span.days >= 200:
        acts.append(Action(_at(span.ago(95), span.rng("winback")), -1, 0, "winback", {}))
        acts.append(Action(_at(span.ago(40), span.rng("pin")), -1, 0, "pin", {"member": 1}))
        acts.append(Action(_at(span.ago(130), span.rng("goodwill")), -1, 0, "goodwill", {"member": 2}))
    return acts


def actions_between(*, span: Span, first: int, count: int, start: datetime, end: datetime) -> list[Action]:
    """Every planned action in [start, end), in time order (the plans are made again, not kept)."""
    found = [a for a in program_actions(span) if start <= a.at < end]
    for index in range(first, first + count):
        who = member_who(index, span)
        if who.enrolled_at >= end:
            continue
        found += [a for a in member_actions(who, span) if start <= a.at < end and a.at < span.end]
    return sorted(found, key=action_key)


def action_key(action: Action) -> tuple:
    return action.at, action.index, action.step
