"""Privacy: a member's data as JSON (export), and the right to be forgotten (erase).

Erasure replaces every personal value the system holds about the member and keeps every amount:
- the member: e-mail -> a unique placeholder (`erased-<id>@erased.invalid`), names, birth date,
  locale, country blanked, marketing consent off, status `closed`;
- orders: payment fingerprint, device id and the shop's metadata cleared (totals, spend and points
  stay, so the books verify and metrics still count the orders);
- referrals: the fingerprint, device and address sent at enrollment cleared; the referral code
  retired (never valid again, never reissued);
- free text that may name the member (ledger references and memos, refund reasons, tier notes,
  audit entries, stored idempotent answers, domain event properties) has the personal values
  replaced; the properties of custom events (anything the shop sent) and survey comments are
  dropped (survey scores stay, so NPS, CSAT and CES still count them);
- the portal account: deactivated, renamed, password unusable, every session ended.
The external id stays: it is the shop's own key, needed to tell the shop (the `member.erased`
webhook) and to keep refusing a second enrollment under it. Shops should not use e-mails as ids.
"""

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from djmoney.money import Money

from loyalty.models import (
    ApiKey,
    AuditEntry,
    Event,
    IdempotencyRecord,
    Member,
    MemberStatus,
    Order,
    Refund,
    Transaction,
)
from loyalty.models.gamification import BadgeAward, ChallengeProgress
from loyalty.models.metrics import SurveyResponse, SurveySend, WinbackGrant
from loyalty.selectors.members import member_balances, member_expiring, member_transactions
from loyalty.services.audit import audit_record, staff_require
from loyalty.services.ledger import Book
from loyalty.services.locks import members_lock

ERASED = "[erased]"
ERASE_PERMISSION = "loyalty.erase_member"


def erased_email(member: Member) -> str:
    return f"erased-{member.pk}@erased.invalid"


# --- export --------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """Any value of ours -> JSON types (ISO dates, decimal strings, money as {amount, currency})."""
    if isinstance(value, Money):
        return {"amount": f"{value.amount:.2f}", "currency": str(value.currency)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _masked(member: Member | None) -> str | None:
    if member is None:
        return None
    from loyalty.selectors.gamification import masked

    return masked(member)


def member_export(*, member: Member, now: datetime | None = None) -> dict:
    """Everything held about the member, as JSON-able data (the member's copy of their data).

    Other people appear only as a masked name (`Anna K.`). A fixed number of queries whatever the
    member's history (each relation is read once)."""
    from referrals.models import Referral, ReferralCode
    from tiers.models import BirthdayGift, TierChange

    now = now or timezone.now()
    program = member.program
    orders = Order.objects.filter(member=member).prefetch_related("lines", "refunds").order_by("placed_at", "id")
    transactions = member_transactions(member=member).order_by("id")
    data = {
        "exported_at": now,
        "program": {"code": program.code, "name": program.name},
        "profile": {
            "external_id": member.external_id,
            "email": member.email,
            "first_name": member.first_name,
            "last_name": member.last_name,
            "birth_date": member.birth_date,
            "locale": member.locale,
            "country": member.country,
            "marketing_opt_in": member.marketing_opt_in,
            "status": member.status,
            "enrolled_at": member.enrolled_at,
            "closed_at": member.closed_at,
            "last_activity_at": member.last_activity_at,
            "portal_account": bool(member.user_id),
        },
        "tier": {
            "earned": member.tier.code if member.tier_id else None,
            "valid_until": member.tier_valid_until,
            "pinned": member.tier_override.code if member.tier_override_id else None,
            "pinned_until": member.tier_override_until,
        },
        "balances": member_balances(member=member, now=now),
        "expiring": member_expiring(member=member, now=now),
        "orders": [
            {
                "external_id": o.external_id,
                "status": o.status,
                "placed_at": o.placed_at,
                "merchandise": o.merchandise,
                "shipping": o.shipping,
                "tax": o.tax,
                "total": o.total,
                "points_payment": o.points_payment,
                "refunded": o.refunded,
                "points_earned": o.points_earned,
                "points_reversed": o.points_reversed,
                "available_at": o.available_at,
                "payment_fingerprint": o.payment_fingerprint,
                "device_id": o.device_id,
                "metadata": o.metadata,
                "lines": [
                    {
                        "sku": line.sku,
                        "category": line.category,
                        "quantity": line.quantity,
                        "unit_price": line.unit_price,
                        "discount": line.discount,
                        "refunded_quantity": line.refunded_quantity,
                    }
                    for line in o.lines.all()
                ],
                "refunds": [
                    {
                        "external_id": r.external_id,
                        "kind": r.kind,
                        "amount": r.amount,
                        "points_reversed": r.points_reversed,
                        "reason": r.reason,
                        "created_at": r.created_at,
                    }
                    for r in o.refunds.all()
                ],
            }
            for o in orders
        ],
        "ledger": [
            {
                "id": t.pk,
                "kind": t.kind,
                "points": sum(e.amount for e in t.member_entries),
                "entries": [
                    {"currency": e.account.asset.code, "bucket": e.account.kind, "points": e.amount}
                    for e in t.member_entries
                ],
                "reference": t.reference,
                "memo": t.memo,
                "order": t.order.external_id if t.order_id else None,
                "effective_at": t.effective_at,
            }
            for t in transactions
        ],
        "lots": list(
            member.lots.order_by("earned_at", "id").values(
                "id", "asset__code", "amount", "remaining", "state", "earned_at", "matures_at", "expires_at"
            )
        ),
        "redemptions": list(
            member.redemptions.order_by("created_at", "id").values(
                "id", "asset__code", "points", "status", "order_external_id", "created_at", "expires_at", "settled_at"
            )
        ),
        "reward_claims": [
            {"reward": c.reward.name, "coupon_code": c.coupon_code, "points": c.points, "claimed_at": c.claimed_at}
            for c in member.reward_claims.select_related("reward").order_by("claimed_at", "id")
        ],
        "birthday_gifts": list(
            BirthdayGift.objects.filter(member=member)
            .order_by("year")
            .values("year", "choice", "points", "coupon_code", "taken_at")
        ),
        "referral_codes": list(
            ReferralCode.objects.filter(member=member)
            .order_by("created_at", "id")
            .values("code", "created_at", "retired_at")
        ),
        "referred_by": None,
        "referrals": [
            {
                "friend": _masked(r.referee),
                "status": r.status,
                "reason": r.reason,
                "points": r.referrer_points,
                "created_at": r.created_at,
                "decided_at": r.decided_at,
            }
            for r in Referral.objects.filter(referrer=member).select_related("referee").order_by("created_at", "id")
        ],
        "badges": [
            {"code": a.badge.code, "name": a.badge.name, "awarded_at": a.awarded_at, "source": a.source}
            for a in BadgeAward.objects.filter(member=member).select_related("badge").order_by("awarded_at", "id")
        ],
        "challenges": [
            {
                "code": p.challenge.code,
                "name": p.challenge.name,
                "period_start": p.period_start,
                "joined_at": p.joined_at,
                "value": p.value,
                "completed_at": p.completed_at,
            }
            for p in ChallengeProgress.objects.filter(member=member)
            .select_related("challenge")
            .order_by("period_start", "id")
        ],
        "tier_history": [
            {
                "from": c.from_tier.code if c.from_tier_id else None,
                "to": c.to_tier.code,
                "reason": c.reason,
                "note": c.note,
                "valid_until": c.valid_until,
                "changed_at": c.changed_at,
            }
            for c in TierChange.objects.filter(member=member)
            .select_related("from_tier", "to_tier")
            .order_by("changed_at", "id")
        ],
        "surveys": {
            "sent": list(
                SurveySend.objects.filter(member=member)
                .order_by("sent_at", "id")
                .values("kind", "survey_id", "sent_at")
            ),
            "answers": list(
                SurveyResponse.objects.filter(member=member)
                .order_by("responded_at", "id")
                .values("kind", "score", "comment", "survey_id", "responded_at")
            ),
        },
        "winback_offers": [
            {"offer": g.offer.name, "points": g.points, "granted_at": g.granted_at}
            for g in WinbackGrant.objects.filter(member=member).select_related("offer").order_by("granted_at", "id")
        ],
        "events": list(
            Event.objects.filter(member=member)
            .order_by("occurred_at", "id")
            .values("type", "occurred_at", "properties", "custom")
        ),
    }
    upstream = Referral.objects.filter(referee=member).select_related("referrer").first()
    if upstream is not None:
        data["referred_by"] = {
            "friend": _masked(upstream.referrer),
            "status": upstream.status,
            "points": upstream.referee_points,
            "created_at": upstream.created_at,
            "payment_fingerprint": upstream.payment_fingerprint,
            "device_id": upstream.device_id,
            "ip_address": upstream.ip_address,
        }
    return _plain(data)


# --- erase ---------------------------------------------------------------------------------------
def _scrub(value: Any, personal: list[str]) -> Any:
    """`value` with every personal string replaced (inside strings too), recursively."""
    if isinstance(value, str):
        for needle in personal:
            if needle in value:
                value = value.replace(needle, ERASED)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, personal) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, personal) for v in value]
    return value


def _scrub_rows(rows, fields: tuple[str, ...], personal: list[str]) -> None:
    changed = []
    for row in rows:
        before = [getattr(row, f) for f in fields]
        after = [_scrub(v, personal) for v in before]
        if after != before:
            for name, value in zip(fields, after, strict=True):
                setattr(row, name, value)
            changed.append(row)
    if changed:
        type(changed[0]).objects.bulk_update(changed, list(fields))


def _personal_values(member: Member) -> list[str]:
    """The strings that identify the member, longest first (a full name before its parts)."""
    from referrals.models import Referral

    values = {member.email, member.email.lower(), member.display_name, member.first_name, member.last_name}
    if member.birth_date:
        values.add(member.birth_date.isoformat())
    for fingerprint, device in member.orders.values_list("payment_fingerprint", "device_id"):
        values.update((fingerprint, device))
    for fingerprint, device, ip in Referral.objects.filter(referee=member).values_list(
        "payment_fingerprint", "device_id", "ip_address"
    ):
        values.update((fingerprint, device, ip or ""))
    values.discard(member.external_id)  # the shop's key is kept (see the module's docstring)
    return sorted((v for v in values if v and len(v) >= 2), key=len, reverse=True)


def _may_erase(actor, member: Member) -> None:
    """Staff need `loyalty.erase_member`; a member may close their own account; an API key was
    checked for its `privacy` scope by the API; the system (None) may."""
    if actor is None or isinstance(actor, ApiKey):
        return
    if member.user_id is not None and getattr(actor, "pk", None) == member.user_id:
        return
    staff_require(actor, ERASE_PERMISSION, "erase members' personal data")


def member_erase(*, member: Member, actor=None, reason: str = "", now: datetime | None = None) -> Member:
    """Erase the member's personal data, keeping every amount (see the module's docstring).

    Erasing an erased member changes nothing and returns it as it is."""
    from loyalty.portal.services import portal_sessions_end
    from referrals.models import Referral, ReferralCode
    from tiers.models import TierChange

    now = now or timezone.now()
    _may_erase(actor, member)
    with transaction.atomic():
        # events before the member, the order event processing locks them in (no deadlock with it)
        list(Event.objects.select_for_update().filter(member=member).values_list("pk", flat=True))
        [member] = members_lock(member_ids=[member.pk])
        if member.status == MemberStatus.CLOSED:
            return member
        program = member.program
        personal = _personal_values(member)
        referrals = list(Referral.objects.filter(Q(referee=member) | Q(referrer=member)))
        counterpart_txns = [
            pk for r in referrals for pk in (r.referrer_transaction_id, r.referee_transaction_id) if pk is not None
        ]

        # free text about the member, then the member's own fields
        _scrub_rows(
            Transaction.objects.filter(Q(member=member) | Q(pk__in=counterpart_txns)), ("reference", "memo"), personal
        )
        _scrub_rows(Refund.objects.filter(order__member=member), ("reason",), personal)
        _scrub_rows(TierChange.objects.filter(member=member), ("note",), personal)
        _scrub_rows(Event.objects.filter(member=member, custom=False), ("properties",), personal)
        Event.objects.filter(member=member, custom=True).exclude(properties={}).update(properties={})
        # survey comments are the member's own words: dropped; the scores stay for NPS, CSAT, CES
        SurveyResponse.objects.filter(member=member).exclude(comment="").update(comment="")
        referral_ids = [str(r.pk) for r in referrals]
        _scrub_rows(
            AuditEntry.objects.filter(
                Q(object_type=Member._meta.label, object_id=str(member.pk))
                | Q(object_type=Referral._meta.label, object_id__in=referral_ids)
            ),
            ("object_repr", "before", "after", "reason"),
            personal,
        )
        _scrub_idempotent_answers(program, member, personal)
        Order.objects.filter(member=member).update(payment_fingerprint="", device_id="", metadata={})
        for r in referrals:
            if r.referee_id == member.pk:
                r.payment_fingerprint, r.device_id, r.ip_address = "", "", None
            r.note = _scrub(r.note, personal)
        if referrals:
            Referral.objects.bulk_update(referrals, ["payment_fingerprint", "device_id", "ip_address", "note"])
        ReferralCode.objects.filter(member=member, retired_at__isnull=True).update(retired_at=now)

        before = {"status": member.status}
        member.email = erased_email(member)
        member.first_name = member.last_name = member.locale = member.country = ""
        member.birth_date = None
        member.marketing_opt_in = False
        member.status, member.closed_at = MemberStatus.CLOSED, now
        member.save(
            update_fields=[
                "email",
                "first_name",
                "last_name",
                "locale",
                "country",
                "birth_date",
                "marketing_opt_in",
                "status",
                "closed_at",
            ]
        )
        if member.user_id:
            user = member.user
            user.username = f"erased-member-{member.pk}"
            user.email = user.first_name = user.last_name = ""
            user.is_active = False
            user.set_unusable_password()  # also invalidates every session's auth hash
            user.save()
            portal_sessions_end(user=user)
        audit_record(
            actor=actor,
            action="member.erase",
            obj=member,
            program=program,
            before=before,
            after={"status": member.status},
            reason=reason,
            now=now,
        )
        book = Book(program=program, now=now)
        book.emit("member.erased", member, {"external_id": member.external_id, "erased_at": now.isoformat()})
        book.commit()
    return member


def _scrub_idempotent_answers(program, member: Member, personal: list[str]) -> None:
    """Stored first answers (replayed to retries) that show the member's profile."""
    if not member.email:
        return
    for record in IdempotencyRecord.objects.filter(program=program, body__contains=member.email):
        try:
            body = json.loads(record.body)
        except ValueError:
            record.body = _scrub(record.body, personal)
        else:
            record.body = json.dumps(_scrub(body, personal), ensure_ascii=False, separators=(",", ":"))
        record.save(update_fields=["body"])
