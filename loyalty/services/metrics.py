"""Metrics writes: survey sends and answers, win-back grants through the ledger, nightly snapshots."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from loyalty import errors
from loyalty.models import (
    SCORE_RANGE,
    AccountKind,
    Member,
    MemberStatus,
    MetricSnapshot,
    Program,
    Reward,
    RewardClaim,
    SurveyKind,
    SurveyResponse,
    SurveySend,
    TransactionKind,
    WinbackGrant,
    WinbackOffer,
    WinbackOfferKind,
)
from loyalty.selectors import metrics as selectors
from loyalty.selectors.members import member_get
from loyalty.selectors.metrics import Period
from loyalty.services.audit import audit_record, staff_require
from loyalty.services.ledger import Book
from loyalty.services.locks import members_lock
from loyalty.services.points import points_credit
from loyalty.services.rewards import coupon_code_generate

MAX_SURVEY_BATCH = 1000
MAX_WINBACK_MEMBERS = 20_000
SNAPSHOT_DAYS = selectors.DEFAULT_DAYS
SNAPSHOT_BACKFILL_DAYS = 7  # a night the job missed is filled in by the next runs


# --- errors -------------------------------------------------------------------------------------
class SurveyAlreadyAnswered(errors.Conflict):
    code, title = "survey_already_answered", "The member already answered this survey"


class ScoreOutOfRange(errors.InvalidInput):
    code, title = "score_out_of_range", "The score is outside the survey kind's scale"


class WinbackOfferInactive(errors.LoyaltyError):
    code, title = "winback_offer_inactive", "This win-back offer is not active"


class WinbackTooMany(errors.InvalidInput):
    code, title = "winback_too_many", "Too many members for one win-back action"


# --- surveys --------------------------------------------------------------------------------------
def survey_kind_validate(kind: str) -> None:
    if kind not in SurveyKind.values:
        raise errors.InvalidInput(
            f"kind must be one of {', '.join(SurveyKind.values)}",
            errors=[{"field": "kind", "message": "unknown survey kind", "code": "invalid_choice"}],
        )


def survey_score_validate(*, kind: str, score: int) -> None:
    survey_kind_validate(kind)
    low, high = SCORE_RANGE[SurveyKind(kind)]
    if not low <= score <= high:
        raise ScoreOutOfRange(
            f"A {kind} score is {low} to {high}; got {score}",
            errors=[{"field": "score", "message": f"{kind} scores are {low} to {high}", "code": "score_out_of_range"}],
        )


@dataclass
class SendsRecorded:
    recorded: int = 0
    already: int = 0
    unknown: list[str] = field(default_factory=list)


def survey_sends_record(
    *,
    program: Program,
    kind: str,
    member_external_ids: list[str],
    survey_id: str = "",
    sent_at: datetime | None = None,
    now: datetime | None = None,
) -> SendsRecorded:
    """Record that a survey was sent to members (the response rate's denominator). With a
    `survey_id`, sending the same survey to a member twice is recorded once."""
    now = now or timezone.now()
    survey_kind_validate(kind)
    ids = list(dict.fromkeys(member_external_ids))
    if not ids or len(ids) > MAX_SURVEY_BATCH:
        raise errors.InvalidInput(
            f"Send 1 to {MAX_SURVEY_BATCH} members at a time",
            errors=[{"field": "members", "message": f"1 to {MAX_SURVEY_BATCH} members", "code": "invalid"}],
        )
    found = dict(Member.objects.filter(program=program, external_id__in=ids).values_list("external_id", "pk"))
    result = SendsRecorded(unknown=[x for x in ids if x not in found])
    with transaction.atomic():
        sends = [
            SurveySend(program=program, member_id=found[x], kind=kind, survey_id=survey_id, sent_at=sent_at or now)
            for x in ids
            if x in found
        ]
        if survey_id:
            seen = set(
                SurveySend.objects.filter(member_id__in=found.values(), kind=kind, survey_id=survey_id).values_list(
                    "member_id", flat=True
                )
            )
            result.already = len(seen)
            sends = [s for s in sends if s.member_id not in seen]
        # a concurrent call with the same survey: the unique constraint decides
        created = SurveySend.objects.bulk_create(sends, ignore_conflicts=bool(survey_id))
        result.recorded = len(created)
    return result


def survey_response_record(
    *,
    program: Program,
    member_external_id: str,
    kind: str,
    score: int,
    comment: str = "",
    survey_id: str = "",
    responded_at: datetime | None = None,
    now: datetime | None = None,
) -> SurveyResponse:
    """Record an answer. It answers the survey sent with that `survey_id`, or without one the
    member's latest unanswered survey of the kind; a survey sent is answered once."""
    now = now or timezone.now()
    survey_score_validate(kind=kind, score=score)
    member = member_get(program=program, external_id=member_external_id)
    if member.status == MemberStatus.CLOSED:
        raise errors.MemberClosed()
    responded_at = responded_at or now
    try:
        with transaction.atomic():
            members_lock(member_ids=[member.pk])  # answers of one member are decided one at a time
            sends = SurveySend.objects.filter(member=member, kind=kind)
            if survey_id:
                send = sends.filter(survey_id=survey_id).first()
            else:
                send = (
                    sends.filter(response__isnull=True, sent_at__lte=responded_at).order_by("-sent_at", "-id").first()
                )
            if send is not None and SurveyResponse.objects.filter(send=send).exists():
                raise SurveyAlreadyAnswered(f"{member.external_id} already answered survey {survey_id or send.pk}")
            return SurveyResponse.objects.create(
                program=program,
                member=member,
                kind=kind,
                score=score,
                comment=comment,
                survey_id=survey_id,
                send=send,
                responded_at=responded_at,
            )
    except IntegrityError:
        raise SurveyAlreadyAnswered(f"{member.external_id} already answered survey {survey_id}")


# --- win-back -------------------------------------------------------------------------------------
@dataclass
class WinbackResult:
    offer: WinbackOffer
    audience: str
    granted: int = 0
    already: int = 0
    closed: int = 0
    points: int = 0


def winback_grant(
    *,
    offer: WinbackOffer,
    member_ids: list[int],
    audience: str,
    staff_user,
    now: datetime | None = None,
) -> WinbackResult:
    """Give `offer` to members in one atomic action: bonus points through the ledger (the `winback`
    system account) or a free reward with its coupon. A member gets an offer once: members who have
    it already are skipped (decided under their row locks, and held by a unique constraint).
    Audited; a `winback.granted` event goes out per member."""
    now = now or timezone.now()
    staff_require(staff_user, "loyalty.grant_winback", "grant win-back offers")
    program = offer.program
    if not offer.active:
        raise WinbackOfferInactive(f"{offer.name} is not active")
    ids = sorted(set(member_ids))
    if not ids:
        raise errors.InvalidInput("Nobody to grant the offer to", errors=[{"field": "members", "message": "empty"}])
    if len(ids) > MAX_WINBACK_MEMBERS:
        raise WinbackTooMany(f"At most {MAX_WINBACK_MEMBERS:,} members at once ({len(ids):,} selected)")
    result = WinbackResult(offer=offer, audience=audience)
    with transaction.atomic(durable=True):
        members = [m for m in members_lock(member_ids=ids) if m.program_id == program.pk]
        have = set(WinbackGrant.objects.filter(offer=offer, member_id__in=ids).values_list("member_id", flat=True))
        result.already = len(have)
        result.closed = sum(1 for m in members if m.status == MemberStatus.CLOSED and m.pk not in have)
        todo = [m for m in members if m.pk not in have and m.status != MemberStatus.CLOSED]
        book = Book(program=program, now=now)
        grants = []
        if offer.kind == WinbackOfferKind.POINTS:
            asset = offer.asset or program.primary_asset
            book.preload(todo)
            for member in todo:
                lot = points_credit(
                    book,
                    member=member,
                    asset=asset,
                    amount=offer.points,
                    kind=TransactionKind.WINBACK,
                    source=AccountKind.WINBACK,
                    reference=f"Win-back: {offer.name}"[:200],
                    memo=f"Win-back offer #{offer.pk} to {audience}",
                    created_by=staff_user,
                )
                grants.append((member, lot.transaction, None))
                book.emit("winback.granted", member, {"offer": offer.pk, "name": offer.name, "points": offer.points})
            result.points = offer.points * len(todo)
        else:
            reward = Reward.objects.select_for_update().get(pk=offer.reward_id)
            if not reward.active:
                raise errors.RewardUnavailable(f"{reward.name} is not available: nothing was granted")
            if reward.stock is not None and todo:
                if reward.stock < len(todo):
                    raise errors.OutOfStock(
                        f"{reward.name} has {reward.stock} left for {len(todo)} members: nothing was granted"
                    )
                Reward.objects.filter(pk=reward.pk).update(stock=F("stock") - len(todo))
            claims = RewardClaim.objects.bulk_create(
                RewardClaim(
                    reward=reward,
                    member=member,
                    coupon_code=coupon_code_generate(reward.coupon_prefix),
                    points=0,
                    claimed_at=now,
                )
                for member in todo
            )
            for member, claim in zip(todo, claims, strict=True):
                grants.append((member, None, claim))
                book.emit(
                    "winback.granted",
                    member,
                    {"offer": offer.pk, "name": offer.name, "reward": reward.pk, "coupon_code": claim.coupon_code},
                )
        book.commit()
        WinbackGrant.objects.bulk_create(
            WinbackGrant(
                program=program,
                offer=offer,
                member=member,
                audience=audience[:40],
                points=offer.points or 0,
                transaction=row,
                reward_claim=claim,
                granted_by=staff_user,
                granted_at=now,
            )
            for member, row, claim in grants
        )
        result.granted = len(grants)
        audit_record(
            actor=staff_user,
            action="winback.grant",
            obj=offer,
            program=program,
            after={
                "audience": audience,
                "granted": result.granted,
                "already": result.already,
                "closed": result.closed,
                "members": [m.pk for m, _, _ in grants],
            },
            reason=f"Win-back offer {offer.name} to {audience}",
            now=now,
        )
    return result


# --- snapshots ------------------------------------------------------------------------------------
def metrics_snapshot_take(
    *, program: Program, period: Period, full: bool = True, now: datetime | None = None
) -> MetricSnapshot:
    """Compute and store the metrics of a period (replacing an earlier snapshot of it). `full` adds
    the cohort matrix and points by month of the 12 months to its end, RFM segments and at-risk."""
    now = now or timezone.now()
    began = time.perf_counter()
    summary = selectors.metrics_summary(program=program, period=period, now=now)
    summary["source"] = "snapshot"
    extra = {"cohorts": None, "segments": None, "flows": None, "at_risk": None}
    if full:
        months = selectors.months_to(program, period.end_date, 12)
        extra = {
            "cohorts": selectors.cohort_matrix(program=program, period=months, now=now),
            "segments": selectors.segment_counts(program=program, as_of=period.end),
            "flows": selectors.points_by_month(program=program, period=months),
            "at_risk": selectors.at_risk_count(program=program, as_of=period.end),
        }
    snapshot, _ = MetricSnapshot.objects.update_or_create(
        program=program,
        start=period.start_date,
        end=period.end_date,
        defaults={**extra, "summary": summary, "computed_at": now, "seconds": time.perf_counter() - began},
    )
    return snapshot


def metrics_snapshots_run(now: datetime) -> int:
    """The nightly job: per program, the full snapshot of the last 30 whole days, the 30 days
    before them (the dashboard's "previous period"), and any of the last week's daily snapshots a
    missed night left out (the time series). Idempotent: what exists is not computed again."""
    done = 0
    for program in Program.objects.all():
        end = selectors.today(program, now)
        wanted = [(Period(end - timedelta(days=SNAPSHOT_DAYS), end, program.timezone), True)]
        wanted.append((wanted[0][0].previous(), False))
        for back in range(1, SNAPSHOT_BACKFILL_DAYS + 1):
            day = end - timedelta(days=back)
            wanted.append((Period(day - timedelta(days=SNAPSHOT_DAYS), day, program.timezone), False))
        existing = set(
            MetricSnapshot.objects.filter(program=program, end__gte=end - timedelta(days=2 * SNAPSHOT_DAYS))
            .filter(cohorts__isnull=False)
            .values_list("start", "end")
        )
        partial = set(
            MetricSnapshot.objects.filter(
                program=program, end__gte=end - timedelta(days=2 * SNAPSHOT_DAYS)
            ).values_list("start", "end")
        )
        for period, full in wanted:
            key = (period.start_date, period.end_date)
            if key in existing or (not full and key in partial):
                continue
            metrics_snapshot_take(program=program, period=period, full=full, now=now)
            done += 1
    return done


def metrics_snapshots_backfill(*, program: Program, days: int, now: datetime | None = None) -> int:
    """The daily trailing-30-day summaries of the last `days` days (the retention time series of a
    new installation); the last one is full. -> how many were computed."""
    now = now or timezone.now()
    end = selectors.today(program, now)
    done = 0
    have = set(MetricSnapshot.objects.filter(program=program).values_list("start", "end"))
    for back in range(days - 1, -1, -1):
        day = end - timedelta(days=back)
        period = Period(day - timedelta(days=SNAPSHOT_DAYS), day, program.timezone)
        if (period.start_date, period.end_date) in have and back:
            continue
        metrics_snapshot_take(program=program, period=period, full=back == 0, now=now)
        done += 1
    return done
