"""Program rules edited by staff (the program's settings, currencies and FX rates, point currencies,
earn rules and promotions, rewards and their stock, tiers and the tier policy, badges, challenges,
webhook endpoints): every add, change and delete is checked against the staff member's permissions
and written to the audit log with the fields before and after, in one transaction.

The admin saves through these functions, so a `support` user is refused here as well as there."""

from datetime import date, datetime
from decimal import Decimal

from django.db import models, transaction
from django.utils import timezone
from djmoney.models.fields import MoneyField
from djmoney.money import Money
from djmoney.utils import get_currency_field_name

from loyalty.models import Program
from loyalty.services.audit import audit_record, staff_require


def _plain(value):
    """A field value as JSON: money as "350.00 USD", decimals and dates as strings."""
    if isinstance(value, Money):
        return f"{value.amount} {value.currency}"
    if isinstance(value, Decimal | date | datetime):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    return value


def config_snapshot(obj: models.Model, names) -> dict:
    out = {}
    for name in names:
        try:
            field = obj._meta.get_field(name)
        except Exception:
            continue
        if not getattr(field, "concrete", False) or field.auto_created:
            continue
        out[name] = _plain(getattr(obj, field.attname if field.is_relation else name))
    return out


def _program_of(obj: models.Model) -> Program | None:
    if isinstance(obj, Program):
        return obj
    return getattr(obj, "program", None)


def _perm(obj: models.Model, verb: str) -> str:
    return f"{obj._meta.app_label}.{verb}_{obj._meta.model_name}"


def _fields(obj: models.Model) -> list[str]:
    return [f.name for f in obj._meta.concrete_fields if not f.primary_key]


def config_save(
    *, obj: models.Model, staff_user, changed: list[str] | None = None, reason: str = "", now: datetime | None = None
) -> models.Model:
    """Add or change one rule row as `staff_user`: -> the saved row. A change writes only the
    `changed` fields (so a concurrent claim's stock decrement is not overwritten) and records them
    before and after; an add records every field."""
    adding = obj._state.adding or obj.pk is None
    verb = "add" if adding else "change"
    staff_require(staff_user, _perm(obj, verb), f"{verb} {obj._meta.verbose_name}")
    model = type(obj)
    with transaction.atomic():
        if adding:
            obj.save()
            before, after = None, config_snapshot(model._default_manager.get(pk=obj.pk), _fields(obj))
        else:
            names = [n for n in (changed if changed is not None else _fields(obj)) if n in set(_fields(obj))]
            if not names:
                return obj
            stored = model._default_manager.select_for_update().get(pk=obj.pk)
            before = config_snapshot(stored, names)
            update_fields = []
            for name in names:
                field = obj._meta.get_field(name)
                update_fields.append(field.name)
                if isinstance(field, MoneyField):  # and django-money's companion currency column
                    update_fields.append(get_currency_field_name(field.name, field))
            update_fields += [f.name for f in obj._meta.concrete_fields if getattr(f, "auto_now", False)]
            obj.save(update_fields=update_fields)
            after = config_snapshot(model._default_manager.get(pk=obj.pk), names)  # as stored (1.3 -> 1.300)
        audit_record(
            actor=staff_user,
            action=f"{obj._meta.model_name}.{'create' if adding else 'change'}",
            obj=obj,
            program=_program_of(obj),
            before=before,
            after=after,
            reason=reason,
            now=now or timezone.now(),
        )
    return obj


def config_delete(*, obj: models.Model, staff_user, reason: str = "", now: datetime | None = None) -> None:
    """Delete one rule row as `staff_user`, keeping what it was in the audit log."""
    staff_require(staff_user, _perm(obj, "delete"), f"delete {obj._meta.verbose_name}")
    with transaction.atomic():
        before = config_snapshot(obj, _fields(obj))
        program = _program_of(obj)
        audit_record(
            actor=staff_user,
            action=f"{obj._meta.model_name}.delete",
            obj=obj,
            program=program,
            before=before,
            after=None,
            reason=reason,
            now=now or timezone.now(),
        )
        obj.delete()
