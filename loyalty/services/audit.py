"""The audit log, and who may do what.

Roles are Django groups, kept in shape after every migrate (loyalty/apps.py):
- `support`: sees everything; adjusts points up to the program's `staff_adjust_limit` per adjustment;
  changes no program rule.
- `manager`: everything in the program: rules, tiers, rewards, pins, referral decisions, unlimited
  adjustments, exports and erasure.
- superusers: everything.
Services check the permissions themselves, so the admin, the API and scripts obey the same rules.
"""

from datetime import datetime

from django.db.models import Model
from django.utils import timezone

from loyalty import errors
from loyalty.models import AuditEntry, Program


class Forbidden(errors.LoyaltyError):
    code, status, title = "forbidden", 403, "Your role does not allow this"


class AdjustmentOverLimit(Forbidden):
    code, title = "adjustment_over_limit", "The adjustment is over what your role may move at once"


def staff_require(user, perm: str, what: str) -> None:
    if user is None or not getattr(user, "is_active", False) or not user.has_perm(perm):
        raise Forbidden(f"{user or 'Nobody'} may not {what}")


def audit_record(
    *,
    actor,
    action: str,
    obj: Model,
    program: Program | None = None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> AuditEntry:
    """Append an entry (inside the caller's transaction: it commits with the change or not at all)."""
    is_user = actor is not None and getattr(actor, "pk", None) is not None and hasattr(actor, "get_username")
    return AuditEntry.objects.create(
        program=program,
        actor=actor if is_user else None,
        actor_label=str(actor or "system")[:120],
        action=action,
        object_type=obj._meta.label,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
        reason=reason,
        created_at=now or timezone.now(),
    )


ROLES = {
    "support": {"view": "all", "extra": ["loyalty.adjust_points"]},
    "manager": {
        "view": "all",
        "all": True,
        "extra": [
            "loyalty.adjust_points",
            "loyalty.adjust_points_unlimited",
            "loyalty.pin_tier",
            "loyalty.erase_member",
            "referrals.decide_referral",
            "loyalty.grant_winback",
        ],
    },
}
APPS = ("loyalty", "tiers", "referrals")
NEVER_FOR_MANAGERS = {  # the ledger and what checkout writes are never edited by hand, by anyone
    "loyalty": {
        "account",
        "transaction",
        "entry",
        "lot",
        "lotmovement",
        "order",
        "orderline",
        "refund",
        "redemption",
        "event",
        "idempotencyrecord",
        "auditentry",
        "badgeaward",
        "challengeprogress",
        "rewardclaim",
        "webhookdelivery",
        "surveysend",
        "surveyresponse",
        "winbackgrant",
        "metricsnapshot",
    },
    "tiers": {"tierchange", "tierevaluation", "birthdaygift"},
    "referrals": {"referral", "referralcode"},  # decided through the referrals service, not edited
}


def roles_ensure(**kwargs) -> None:
    """Create or refresh the `support` and `manager` groups (a post_migrate handler)."""
    from django.contrib.auth.models import Group, Permission

    perms = Permission.objects.filter(content_type__app_label__in=APPS).select_related("content_type")
    for name, spec in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        chosen = {p for p in perms if p.codename.startswith("view_")}
        if spec.get("all"):
            chosen |= {
                p
                for p in perms
                if p.codename.split("_", 1)[0] in ("add", "change", "delete")
                and p.content_type.model not in NEVER_FOR_MANAGERS.get(p.content_type.app_label, set())
            }
        chosen |= {p for p in perms if f"{p.content_type.app_label}.{p.codename}" in spec["extra"]}
        group.permissions.set(chosen)
