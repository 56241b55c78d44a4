"""The demo's synthetic history (`seed_demo --members N --days D --seed S`): about two years of a
believable Beauty Rewards program, played through the real services while a simulated clock
advances, so the ledger verifies and every rule applies (earning and promotions, tiers and their
year ends, refunds and cancels, points at checkout, rewards, referrals and their fraud checks,
expiry, badges, challenges, surveys, win-back).

- Who does what when comes from the plans (loyalty.demo.plans), read one window at a time (30
  days; a day for 150,000 members or more) and not kept, so memory does not grow with the number
  of members.
- The clock advances a day at a time; each action runs in time order with `now` passed explicitly
  to the service. Once a simulated week (and on 1 January) the periodic jobs run as of that
  midnight (maturity, expiry, stale holds, tier year end, referrals, birthdays, challenge closing),
  then the events written since are processed as of it (badges, challenges): a worker a few days
  behind, which changes nothing but the date a badge is given. Events are kept from the real
  worker meanwhile (`events_deferred`): run it with no Celery beat sweeping events at the same
  time, or the sweep would evaluate them as of today.
- What depends on the state (points to pay with, a referrer's code, who gets the monthly NPS
  survey, who is at risk) is read from the database at that moment, as a shop would.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from loyalty import errors
from loyalty.demo.plans import (
    NPS_COMMENTS,
    SHOWCASE,
    STYLES,
    Action,
    Basket,
    Span,
    Who,
    action_key,
    actions_between,
    external_id,
    member_who,
    persona_of,
)
from loyalty.demo.program import FX_TO_USD
from loyalty.jobs import jobs
from loyalty.models import Event, Member, Order, Program, Reward, WinbackOffer, WinbackOfferKind
from loyalty.selectors.members import member_balances, member_get
from loyalty.selectors.metrics import at_risk_member_ids
from loyalty.services.adjustments import points_adjust
from loyalty.services.earning import OrderDraft
from loyalty.services.events import event_record, events_deferred, events_process
from loyalty.services.members import member_enroll
from loyalty.services.metrics import (
    MAX_WINBACK_MEMBERS,
    survey_response_record,
    survey_sends_record,
    winback_grant,
)
from loyalty.services.orders import RefundLine, order_cancel, order_place, order_refund
from loyalty.services.redemptions import redemption_capture, redemption_hold, redemption_void
from loyalty.services.rewards import reward_claim
from referrals.models import ReferralCode
from tiers.models import BirthdayChoice
from tiers.services import BirthdayPointsNotForTier, birthday_take, tier_override_set

DAY = timedelta(days=1)
# Plans are read a window at a time: 30 days, shorter for many members, so that a window holds a
# few thousand actions whatever the number of members (memory stays bounded).
WINDOW_DAYS, WINDOW_MEMBER_DAYS = 30, 150_000
TICK_DAYS = 7  # the periodic jobs and the event worker run once a simulated week (and on 1 January)
# Jobs the history does not run: it processes its own events (the sweep looks at the wall clock),
# delivers no webhooks (nobody listens yet), keeps no idempotency keys, and the metrics snapshots
# are back-filled once the history is written (rundemo: `metrics_snapshot --days 90`).
JOBS_SKIPPED = frozenset({"events_sweep", "webhooks_deliver", "idempotency_purge", "metrics_snapshot"})


# --- playing it -----------------------------------------------------------------------------------
@dataclass
class HistoryResult:
    members: int = 0
    days: int = 0
    done: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)


class History:
    """Plays the plans of members `first` .. `first + count - 1` through the services."""

    def __init__(self, *, program: Program, span: Span, first: int, count: int):
        self.program, self.span, self.first, self.count = program, span, first, count
        self.result = HistoryResult(members=count, days=span.days)
        self.planned: Iterator[Action] = iter(())
        self.pending: Action | None = None  # the next planned action
        self.later: list[tuple] = []  # actions decided on the way (survey answers): a heap
        self._seq = 0
        self.rewards = {r.name: r.pk for r in Reward.objects.filter(program=program)}
        self.jobs = {name: job for name, job in jobs().items() if name not in JOBS_SKIPPED}
        self.window = timedelta(days=max(1, min(WINDOW_DAYS, WINDOW_MEMBER_DAYS // max(count, 1))))
        self._staff = None

    # --- the clock ---------------------------------------------------------------------------------
    def play(self, *, progress: Callable[[int], None] | None = None) -> HistoryResult:
        span = self.span
        day = span.start.replace(hour=0, minute=0, second=0, microsecond=0)
        window_end = day
        with events_deferred():
            while day < span.end:
                night = min(day + DAY, span.end)
                if day >= window_end:
                    window_end = min(day + self.window, span.end)
                    self.planned = iter(
                        actions_between(span=span, first=self.first, count=self.count, start=day, end=window_end)
                    )
                    self.pending = next(self.planned, None)
                while (action := self.next_before(night)) is not None:
                    if action.at >= span.start:
                        self.run(action)
                tick = night == span.end or (night - span.start).days % TICK_DAYS == 0
                if tick or (night.month, night.day) == (1, 1):
                    self.periodic(night)
                    self.events(night)
                if progress:
                    progress(1)
                day = night
        return self.result

    def next_before(self, night: datetime) -> Action | None:
        """The next action before `night`: the next planned, or one decided on the way, in time order."""
        planned, late = self.pending, (self.later[0][-1] if self.later else None)
        first = planned if late is None or (planned is not None and action_key(planned) <= action_key(late)) else late
        if first is None or first.at >= night:
            return None
        if first is planned:
            self.pending = next(self.planned, None)
            return planned
        return heapq.heappop(self.later)[-1]

    def periodic(self, now: datetime) -> None:
        for job in self.jobs.values():
            job.fn(now)

    def events(self, now: datetime) -> None:
        ids = list(
            Event.objects.filter(program=self.program, processed_at__isnull=True)
            .order_by("id")
            .values_list("id", flat=True)
        )
        if ids:
            events_process(event_ids=ids, now=now)

    def run(self, action: Action) -> None:
        getattr(self, f"do_{action.kind}")(action, action.at)
        self.result.done[action.kind] += 1

    def ours(self, index: int) -> bool:
        """Is member `index` one of this run's (not of an earlier run, whose history is written)?"""
        return self.first <= index < self.first + self.count

    def soon(self, action: Action) -> None:
        self._seq += 1
        heapq.heappush(self.later, (*action_key(action), self._seq, action))

    def skip(self, what: str) -> None:
        self.result.skipped[what] += 1

    # --- members -------------------------------------------------------------------------------------
    def do_enroll(self, action: Action, now: datetime) -> None:
        who: Who = action.data["who"]
        code, context = None, {}
        if who.referrer is not None:
            code = (
                ReferralCode.objects.filter(
                    program=self.program, member__external_id=external_id(who.referrer), retired_at__isnull=True
                )
                .values_list("code", flat=True)
                .first()
            )
            if who.fraud == "device":
                context = {"device_id": member_who(who.referrer, self.span).device(0)}
        member_enroll(
            program=self.program,
            external_id=who.external_id,
            email=who.email,
            first_name=who.first_name,
            last_name=who.last_name,
            birth_date=who.birth_date,
            locale=who.locale,
            country=who.country,
            marketing_opt_in=who.index % 3 != 0,
            referral_code=code,
            referral_context=context,
            invite=False,  # synthetic members get no e-mail (rundemo gives one a portal password)
            now=now,
        )

    def do_order(self, action: Action, now: datetime) -> None:
        data, who = action.data, action.data["who"]
        basket: Basket = data["basket"]
        ref = f"{who.external_id}-{data['n'] + 1:03d}"
        draft = OrderDraft(
            external_id=ref,
            member=who.external_id,
            currency=data["currency"],
            lines=basket.lines,
            shipping=basket.shipping,
            tax=basket.tax,
            placed_at=now,
            payment_fingerprint=data["card"],
            device_id=data["device"],
        )
        checkout = now - timedelta(minutes=2)
        points = self._points_to_pay(who, draft, checkout) if data["pay_points"] else 0
        if not points:
            order_place(program=self.program, draft=draft, now=now)
            return
        # Checkout: hold the points, place the order (they pay part of it), capture.
        redemption = redemption_hold(
            program=self.program,
            member_external_id=who.external_id,
            points=points,
            order_external_id=ref,
            order_amount=draft.earning_merchandise,
            order_currency=draft.currency,
            now=checkout,
        )
        order_place(program=self.program, draft=draft, now=now)
        redemption_capture(program=self.program, redemption_id=redemption.pk, now=now + timedelta(minutes=1))
        self.result.done["points_paid"] += points
        if who.index == SHOWCASE or self.span.rng(who.index, ref, "ces").random() < 0.6:
            survey = f"ces-{ref}"
            sent = now + timedelta(days=1)
            self.soon(Action(sent, who.index, 4, "ces_send", {"who": who, "survey": survey}))
            if self.span.rng(who.index, ref, "ces-answer").random() < STYLES[who.persona].survey:
                score = self.span.rng(who.index, ref, "ces-score").choice([7, 6, 6, 5, 4])
                answer = {"who": who, "survey": survey, "score": score}
                self.soon(Action(sent + timedelta(hours=6), who.index, 5, "ces_answer", answer))

    def _points_to_pay(self, who: Who, draft: OrderDraft, now: datetime) -> int:
        """What the member pays with points at this checkout: whole steps of 500, at most half the
        merchandise and at most 1,500; 0 when they have too few."""
        asset = self.program.primary_asset
        base = draft.earning_merchandise * FX_TO_USD[draft.currency]
        if base < asset.redeem_min_order:
            return 0
        member = member_get(program=self.program, external_id=who.external_id)
        available = member_balances(member=member, now=now).get(asset.code, {}).get("available", 0)
        cap = min(available, int(base / 2 / asset.unit_value), 1500)
        points = cap - cap % asset.redeem_step
        return points if points >= asset.redeem_min else 0

    def do_abandon(self, action: Action, now: datetime) -> None:
        """A checkout with points on hold that was never finished: voided, or left to run out."""
        who = member_get(program=self.program, external_id=external_id(action.index))
        available = member_balances(member=who, now=now).get(self.program.primary_asset.code, {}).get("available", 0)
        if available < 500:
            return self.skip("abandon")
        redemption = redemption_hold(program=self.program, member_external_id=who.external_id, points=500, now=now)
        if action.data["void"]:
            redemption_void(program=self.program, redemption_id=redemption.pk, now=now + timedelta(minutes=7))

    def do_cancel(self, action: Action, now: datetime) -> None:
        order_cancel(program=self.program, order_external_id=action.data["order"], reason="Customer cancelled", now=now)

    def do_refund_lines(self, action: Action, now: datetime) -> None:
        order = Order.objects.filter(program=self.program, external_id=action.data["order"]).first()
        if order is None or order.status == "cancelled":
            return self.skip("refund")
        line = order.lines.filter(gift_card=False).order_by("id").first()
        order_refund(
            program=self.program,
            order_external_id=order.external_id,
            refund_external_id=f"R-{order.external_id}",
            lines=[RefundLine(sku=line.sku, quantity=1)],
            reason="Returned: not the right shade",
            now=now,
        )

    def do_refund_amount(self, action: Action, now: datetime) -> None:
        order = Order.objects.filter(program=self.program, external_id=action.data["order"]).first()
        if order is None or order.status == "cancelled":
            return self.skip("refund")
        cents = Decimal(1) if str(order.currency) == "JPY" else Decimal("0.01")
        amount = (order.merchandise.amount * action.data["share"]).quantize(cents)
        order_refund(
            program=self.program,
            order_external_id=order.external_id,
            refund_external_id=f"R-{order.external_id}",
            amount=amount,
            reason="Goodwill: arrived damaged",
            now=now,
        )

    def do_review(self, action: Action, now: datetime) -> None:
        data = action.data
        event_record(
            program=self.program,
            member_external_id=external_id(action.index),
            type="review.posted",
            occurred_at=now,
            properties={"order": data["order"], "rating": data["rating"], "text": data["text"]},
            external_id=f"review-{data['order']}",
            now=now,
        )

    def do_claim(self, action: Action, now: datetime) -> None:
        member = member_get(program=self.program, external_id=external_id(action.index))
        available = member_balances(member=member, now=now).get(self.program.primary_asset.code, {}).get("available", 0)
        name = action.data.get("reward")
        if name is None:
            if available >= 2500 and action.data.get("rouge") and member.tier and member.tier.code == "rouge":
                name = "Rouge Reward: $100 off"
            elif available >= 500:
                name = "$10 off"
            elif available >= 100:
                name = "Deluxe sample"
            else:
                return self.skip("claim")
        try:
            reward_claim(
                program=self.program, reward_id=self.rewards[name], member_external_id=member.external_id, now=now
            )
        except errors.LoyaltyError:  # too few points, the monthly limit, the tier: the shop says no
            self.skip("claim")

    def do_birthday(self, action: Action, now: datetime) -> None:
        member = member_get(program=self.program, external_id=external_id(action.index))
        choice = BirthdayChoice.POINTS if action.data["points"] else BirthdayChoice.GIFT
        try:
            birthday_take(member=member, choice=choice, now=now)
        except BirthdayPointsNotForTier:  # an Insider takes the gift
            birthday_take(member=member, choice=BirthdayChoice.GIFT, now=now)

    # --- surveys -------------------------------------------------------------------------------------
    def do_csat_send(self, action: Action, now: datetime) -> None:
        survey_sends_record(
            program=self.program,
            kind="csat",
            member_external_ids=[external_id(action.index)],
            survey_id=f"csat-{action.data['order']}",
            sent_at=now,
            now=now,
        )

    def do_csat_answer(self, action: Action, now: datetime) -> None:
        survey_response_record(
            program=self.program,
            member_external_id=external_id(action.index),
            kind="csat",
            score=action.data["score"],
            survey_id=f"csat-{action.data['order']}",
            responded_at=now,
            now=now,
        )

    def do_ces_send(self, action: Action, now: datetime) -> None:
        survey_sends_record(
            program=self.program,
            kind="ces",
            member_external_ids=[external_id(action.index)],
            survey_id=action.data["survey"],
            sent_at=now,
            now=now,
        )

    def do_ces_answer(self, action: Action, now: datetime) -> None:
        survey_response_record(
            program=self.program,
            member_external_id=external_id(action.index),
            kind="ces",
            score=action.data["score"],
            survey_id=action.data["survey"],
            responded_at=now,
            now=now,
        )

    def do_nps_campaign(self, action: Action, now: datetime) -> None:
        """The monthly NPS survey, to half of the members who ordered in the last 90 days."""
        survey = action.data["survey"]
        recent = (
            Order.objects.filter(program=self.program, placed_at__gte=now - timedelta(days=90), placed_at__lt=now)
            .exclude(status="cancelled")
            .values_list("member__external_id", flat=True)
            .distinct()
        )
        chosen = []
        for member in sorted(recent):
            index = int(member.removeprefix("demo-"))
            if not self.ours(index):  # members of an earlier run had their surveys in their history
                continue
            rng = self.span.rng(index, survey)
            if index == SHOWCASE or rng.random() < 0.5:
                chosen.append(member)
                persona = persona_of(index, self.span)
                if index == SHOWCASE or rng.random() < STYLES[persona].survey:
                    score = rng.randint(*STYLES[persona].nps)
                    answer = {"survey": survey, "score": score, "comment": rng.choice(NPS_COMMENTS[_nps_group(score)])}
                    self.soon(Action(now + timedelta(days=rng.uniform(0.1, 6)), index, 5, "nps_answer", answer))
        for batch in _chunks(chosen, 1000):
            survey_sends_record(
                program=self.program, kind="nps", member_external_ids=batch, survey_id=survey, sent_at=now, now=now
            )

    def do_nps_answer(self, action: Action, now: datetime) -> None:
        survey_response_record(
            program=self.program,
            member_external_id=external_id(action.index),
            kind="nps",
            score=action.data["score"],
            comment=action.data["comment"],
            survey_id=action.data["survey"],
            responded_at=now,
            now=now,
        )

    # --- staff ---------------------------------------------------------------------------------------
    @property
    def staff(self):
        """The marketing manager who runs campaigns in the demo (cannot sign in)."""
        if self._staff is None:
            from loyalty.services.audit import roles_ensure

            User = get_user_model()
            user, created = User.objects.get_or_create(
                username="marketing",
                defaults={"email": "marketing@example.com", "first_name": "Mia", "last_name": "Marketing"},
            )
            if created:
                user.is_staff = True
                user.set_unusable_password()
                user.save()
                if not Group.objects.filter(name="manager").exists():
                    roles_ensure()
                user.groups.add(Group.objects.get(name="manager"))
            self._staff = User.objects.get(pk=user.pk)  # permissions read afresh
        return self._staff

    def do_winback(self, action: Action, now: datetime) -> None:
        """Marketing sends the at-risk list a win-back offer (the dashboard shows who came back)."""
        offer, _ = WinbackOffer.objects.get_or_create(
            program=self.program,
            name="We miss you: 300 points",
            defaults={"kind": WinbackOfferKind.POINTS, "points": 300, "message": "300 points on us, come back soon."},
        )
        WinbackOffer.objects.get_or_create(
            program=self.program,
            name="A free deluxe sample",
            defaults={"kind": WinbackOfferKind.REWARD, "reward_id": self.rewards["Deluxe sample"]},
        )
        at_risk = Member.objects.filter(pk__in=at_risk_member_ids(program=self.program, as_of=now))
        ids = [pk for pk, x in at_risk.values_list("pk", "external_id") if self.ours(int(x.removeprefix("demo-")))]
        ids = ids[:MAX_WINBACK_MEMBERS]  # one campaign's worth
        if not ids:
            return self.skip("winback")
        winback_grant(offer=offer, member_ids=ids, audience="at_risk", staff_user=self.staff, now=now)
        self.result.done["winback_members"] += len(ids)

    def do_pin(self, action: Action, now: datetime) -> None:
        member = Member.objects.filter(program=self.program, external_id=external_id(action.data["member"])).first()
        if member is None or not self.ours(action.data["member"]):
            return self.skip("pin")
        rouge = self.program.tiers.get(code="rouge")
        tier_override_set(
            member=member,
            tier=rouge,
            until=(self.span.end + timedelta(days=90)).date(),
            reason="Beauty creator partnership: Rouge for the season",
            staff_user=self.staff,
            now=now,
        )

    def do_goodwill(self, action: Action, now: datetime) -> None:
        member = Member.objects.filter(program=self.program, external_id=external_id(action.data["member"])).first()
        if member is None or not self.ours(action.data["member"]):
            return self.skip("goodwill")
        points_adjust(member=member, points=150, reason="Goodwill: parcel arrived late", staff_user=self.staff, now=now)


def _nps_group(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def demo_history_seed(
    *,
    program: Program,
    members: int,
    days: int,
    seed: int,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> HistoryResult:
    """Enroll `members` more synthetic members (numbered after those enrolled already) and play
    their `days` of history up to `now`. The same seed, span and numbers give the same history."""
    first = Member.objects.filter(program=program).count()
    span = Span(seed=seed, end=now, days=days)
    return History(program=program, span=span, first=first, count=members).play(progress=progress)
