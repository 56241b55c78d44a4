"""Shared pieces of the staff admin: view-only admins for append-only rows, display helpers, and
forms that keep a program's configuration inside that program."""

from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.html import format_html
from djmoney.money import Money


class ViewOnlyMixin:
    """Rows written only by services (the ledger, orders, events): staff may look, never touch.

    With `has_change_permission` False Django renders the view-only page and answers 403 to any
    POST on the change, add or delete URL; without delete permission the bulk delete action is
    gone too."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ViewOnlyAdmin(ViewOnlyMixin, admin.ModelAdmin):
    show_full_result_count = False  # no second COUNT(*) over a big table on every search


class ViewOnlyTabularInline(ViewOnlyMixin, admin.TabularInline):
    extra = 0
    show_change_link = True


# --- display ------------------------------------------------------------------------------------
def points(value: int | None, *, signed: bool = False) -> str:
    """Whole points with thousands separators (1,250), signed for movements (+250 / -1,000)."""
    if value is None:
        return "-"
    text = number_format(abs(value), decimal_pos=0, force_grouping=True)
    if value < 0:
        return f"-{text}"
    return f"+{text}" if signed and value > 0 else text


def money(value: Money | None) -> str:
    """Money in the currency's own format ($1,250.00, €9.99, ¥500), as django-money renders it."""
    return "-" if value is None else str(value)


def admin_link(obj, text: str | None = None) -> str:
    """A link to an object's admin change page ("-" when there is no object)."""
    if obj is None:
        return "-"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


def changelist_url(model, **filters) -> str:
    """The admin changelist of `model`, filtered (e.g. `member__id__exact=3`)."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


# --- a program's configuration stays inside the program -----------------------------------------
def same_program_errors(cleaned_data: dict, program, fields: tuple[str, ...]) -> dict[str, str]:
    """{field: message} for every chosen object (tier, asset) that belongs to another program."""
    if program is None:
        return {}
    return {
        name: f"{cleaned_data[name]} belongs to another program."
        for name in fields
        if cleaned_data.get(name) is not None and cleaned_data[name].program_id != program.pk
    }


class SameProgramModelForm(forms.ModelForm):
    """A row of a program (earn rule, reward, tier...) may only point at that program's assets and tiers."""

    program_scoped_fields: tuple[str, ...] = ()

    def clean(self):
        cleaned_data = super().clean()
        program = cleaned_data.get("program") or getattr(self.instance, "program", None)
        for name, message in same_program_errors(cleaned_data, program, self.program_scoped_fields).items():
            self.add_error(name, message)
        return cleaned_data


class ProgramScopedInlineFormSet(forms.BaseInlineFormSet):
    """Inline rows under a program offer only that program's assets and tiers.

    The choices are read once for the formset instead of once per row (no N+1 on a page with many
    rules)."""

    program_scoped_fields: tuple[str, ...] = ("asset", "tier")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._scoped_choices: dict[str, list] = {}

    def add_fields(self, form, index):
        super().add_fields(form, index)
        for name in self.program_scoped_fields:
            field = form.fields.get(name)
            if field is None or not hasattr(field, "queryset"):
                continue
            field.queryset = field.queryset.filter(program=self.instance)
            if name not in self._scoped_choices:
                self._scoped_choices[name] = list(field.choices)
            field.choices = self._scoped_choices[name]


def disable_on_existing(form: forms.ModelForm, *names: str) -> None:
    """Fields that identify a row (a currency code, an asset code) are fixed once it exists."""
    if form.instance.pk:
        for name in names:
            if name in form.fields:
                form.fields[name].disabled = True
                form.fields[name].help_text = "Fixed once created."


def money_currency_error(value: Money | None, currency: str) -> ValidationError | None:
    if value is not None and str(value.currency) != currency:
        return ValidationError(f"Use the program's base currency ({currency}).")
    return None


# --- program rules: saved through the config service (permission checked, audited) -------------
class AuditedConfigMixin:
    """Adds, changes and deletes of program rules go through loyalty.services.config: the staff
    member's permission is checked again there and each write lands in the audit log with the
    fields before and after. Inline rows (FX rates, point currencies, earn rules) too."""

    def save_model(self, request, obj, form, change):
        from loyalty.services.config import config_save

        config_save(obj=obj, staff_user=request.user, changed=list(form.changed_data) if change else None)

    def delete_model(self, request, obj):
        from loyalty.services.config import config_delete

        config_delete(obj=obj, staff_user=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    def save_formset(self, request, form, formset, change):
        from loyalty.services.config import config_delete, config_save

        formset.save(commit=False)
        for obj in formset.deleted_objects:
            config_delete(obj=obj, staff_user=request.user)
        for obj in formset.new_objects:
            config_save(obj=obj, staff_user=request.user)
        for obj, changed in formset.changed_objects:
            config_save(obj=obj, staff_user=request.user, changed=list(changed))
        formset.save_m2m()
