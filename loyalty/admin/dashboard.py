"""The retention dashboard for staff, under /admin/metrics/ (wired in config/urls.py).

- the dashboard: a period picker; headline numbers with their change against the previous period;
  charts (retention and churn over time from the nightly snapshots, tier mix, points earned vs
  redeemed vs expired, RFM segments) drawn in the browser by Chart.js from our own static files;
  the cohort heatmap; win-back offers and how many came back;
- the members of an RFM segment, and the at-risk list, each with a win-back action that grants an
  offer to the whole list (or the members ticked) in one atomic, audited step.

Staff with the `view_metricsnapshot` permission see it (the support and manager roles do); granting
a win-back offer needs `grant_winback` (managers), checked again by the service.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode

from loyalty.dates import start_of_day
from loyalty.errors import LoyaltyError
from loyalty.models import Member, Program, WinbackOffer
from loyalty.selectors import metrics as m
from loyalty.services.metrics import winback_grant

from .base import changelist_url

VIEW_PERM = "loyalty.view_metricsnapshot"
GRANT_PERM = "loyalty.grant_winback"
PAGE = 50
PRESETS = [("30", "Last 30 days"), ("90", "Last 90 days"), ("365", "Last 365 days"), ("custom", "Custom")]

# (key, label, kind, lower is better)
HEADLINES = [
    ("customers_at_end", "Active customers", "count", False),
    ("retention_rate", "Retention rate", "pct", False),
    ("churn_rate", "Churn rate", "pct", True),
    ("new_customers", "New customers", "count", False),
    ("revenue", "Revenue", "money", False),
    ("average_order_value", "Average order value", "money", False),
    ("repeat_purchase_rate", "Repeat purchase rate", "pct", False),
    ("purchase_frequency", "Orders per buyer", "number", False),
    ("clv", "Customer lifetime value", "money", False),
    ("active_members", "Active members", "pct", False),
    ("redemption_rate", "Redemption rate", "pct", False),
    ("breakage", "Breakage", "pct", True),
    ("referral_rate", "Referral rate", "pct", False),
    ("nps", "NPS", "number", False),
    ("csat", "CSAT", "pct", False),
    ("survey_response_rate", "Survey response rate", "pct", False),
]


class PeriodForm(forms.Form):
    program = forms.ChoiceField(required=False)
    preset = forms.ChoiceField(choices=PRESETS, required=False, label="Period")
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="The day after the last (exclusive)."
    )

    def __init__(self, *args, programs, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["program"].choices = [(p.code, p.name) for p in programs]

    def clean(self):
        data = super().clean()
        if data.get("preset") == "custom":
            start, end = data.get("start"), data.get("end")
            if not start or not end:
                raise forms.ValidationError("A custom period needs a start and an end.")
            if start >= end:
                raise forms.ValidationError("The start must be before the end (the end is exclusive).")
            if (end - start).days > m.MAX_PERIOD_DAYS:
                raise forms.ValidationError(f"At most {m.MAX_PERIOD_DAYS} days.")
        return data


class WinbackForm(forms.Form):
    offer = forms.ModelChoiceField(queryset=WinbackOffer.objects.none(), empty_label=None)
    scope = forms.ChoiceField(
        choices=[("all", "Everyone in this list"), ("selected", "Only the members ticked below")],
        widget=forms.RadioSelect,
        initial="all",
    )
    members = forms.TypedMultipleChoiceField(coerce=int, required=False)

    def __init__(self, *args, program, **kwargs):
        super().__init__(*args, **kwargs)
        offers = WinbackOffer.objects.filter(program=program, active=True).select_related("reward", "asset")
        self.fields["offer"].queryset = offers
        self.fields["offer"].choices = [(o.pk, f"{o.name} ({o.description})") for o in offers]

    def clean(self):
        data = super().clean()
        if data.get("scope") == "selected" and not data.get("members"):
            raise forms.ValidationError("Tick the members to grant the offer to, or choose everyone in the list.")
        return data


# --- helpers -------------------------------------------------------------------------------------
def _require(request, perm: str = VIEW_PERM) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _program(request) -> tuple[Program, list[Program]]:
    programs = list(Program.objects.order_by("code"))
    if not programs:
        raise Http404("No program yet")
    code = request.GET.get("program") or request.POST.get("program")
    chosen = next((p for p in programs if p.code == code), programs[0])
    return chosen, programs


def _period(request, program: Program, programs) -> tuple[m.Period, PeriodForm, m.MetricSnapshot | None]:
    """The period asked for; else (or when the form has errors, shown on it) the newest nightly
    snapshot's period (instant), or the last 30 days."""
    latest = m.snapshot_latest(program=program)
    bound = PeriodForm(request.GET, programs=programs) if request.GET.get("preset") else None
    if bound is not None and bound.is_valid():
        preset = bound.cleaned_data["preset"]
        if preset == "custom":
            period = m.Period(bound.cleaned_data["start"], bound.cleaned_data["end"], program.timezone)
        else:
            period = m.period_default(program, days=int(preset))
        return period, bound, latest
    period = m.Period(latest.start, latest.end, program.timezone) if latest else m.period_default(program)
    form = bound or PeriodForm(
        initial={"program": program.code, "preset": "30", "start": period.start_date, "end": period.end_date},
        programs=programs,
    )
    return period, form, latest


def _summary(program: Program, period: m.Period) -> dict:
    snapshot = m.snapshot_get(program=program, period=period)
    return snapshot.summary if snapshot else m.metrics_summary(program=program, period=period)


def _number(value) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return Decimal(value["amount"])
    return Decimal(str(value))


def _display(value, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "money":
        return f"{Decimal(value['amount']):,.2f} {value['currency']}"
    if kind == "pct":
        return f"{value:,.1f} %"
    if kind == "count":
        return f"{value:,}"
    return f"{value:,.2f}"


def headline_cards(current: dict, previous: dict) -> list[dict]:
    cards = []
    for key, label, kind, lower_better in HEADLINES:
        now, before = _number(current.get(key)), _number(previous.get(key))
        change, direction = None, "flat"
        if now is not None and before is not None:
            if kind == "pct":
                delta = now - before
                change = f"{delta:+.1f} pp"
            elif before:
                delta = (now - before) / abs(before) * 100
                change = f"{delta:+.1f} %"
            else:
                delta = now - before
                change = "new" if delta else None
            if delta:
                direction = "up" if delta > 0 else "down"
        good = {"up": not lower_better, "down": lower_better, "flat": None}[direction]
        cards.append(
            {
                "key": key,
                "label": label,
                "value": _display(current.get(key), kind),
                "previous": _display(previous.get(key), kind),
                "change": change,
                "direction": direction,
                "good": good,
            }
        )
    return cards


def heat(value) -> str:
    """The cohort cell's background: deeper for higher retention."""
    if value is None:
        return ""
    alpha = 0.08 + 0.82 * min(max(float(value), 0.0), 100.0) / 100
    return f"background-color: rgba(47, 110, 186, {alpha:.2f}); color: {'#fff' if alpha > 0.5 else 'inherit'}"


def _urls(program: Program) -> dict:
    query = urlencode({"program": program.code})
    return {
        "dashboard": f"{reverse('loyalty_metrics_dashboard')}?{query}",
        "at_risk": f"{reverse('loyalty_metrics_at_risk')}?{query}",
        "segment": lambda key: f"{reverse('loyalty_metrics_segment', args=[key])}?{query}",
    }


# --- the dashboard -------------------------------------------------------------------------------
def dashboard_view(request):
    _require(request)
    program, programs = _program(request)
    period, form, latest = _period(request, program, programs)
    current = _summary(program, period)
    previous = _summary(program, period.previous())
    urls = _urls(program)
    if latest is not None and latest.end == period.end_date:
        cohorts, segments, flows, at_risk = latest.cohorts, latest.segments, latest.flows, latest.at_risk
        extras_source = "snapshot"
    else:
        months = m.months_to(program, period.end_date, 12)
        cohorts = m.cohort_matrix(program=program, period=months)
        segments = m.segment_counts(program=program, as_of=period.end)
        flows = m.points_by_month(program=program, period=months)
        at_risk = m.at_risk_count(program=program, as_of=period.end)
        extras_source = "live"
    series = m.snapshot_series(program=program, until=period.end_date, days=365)
    for segment in segments:
        segment["url"] = urls["segment"](segment["segment"])
    charts = {
        "series": series,
        "tierMix": current["tier_mix"],
        "flows": flows,
        "segments": segments,
    }
    context = {
        **admin.site.each_context(request),
        "title": f"Retention dashboard: {program.name}",
        "subtitle": None,
        "program": program,
        "form": form,
        "period": period,
        "last_day": period.end_date - timedelta(days=1),
        "previous": period.previous(),
        "summary": current,
        "cards": headline_cards(current, previous),
        "cohorts": [
            {**c, "cells": [{"value": v, "style": heat(v)} for v in c["retention"]]} for c in cohorts["cohorts"]
        ],
        "cohort_months": cohorts["months"],
        "segments": segments,
        "at_risk": at_risk,
        "charts": charts,
        "winback": m.winback_results(program=program, now=timezone.now()),
        "winback_days": m.WINBACK_DAYS,
        "extras_source": extras_source,
        "snapshot": latest,
        "urls": urls,
        "can_grant": request.user.has_perm(GRANT_PERM),
        "offers_url": changelist_url(WinbackOffer),
    }
    return TemplateResponse(request, "admin/loyalty/dashboard/index.html", context)


# --- member lists with the win-back action -------------------------------------------------------
def segment_view(request, segment: str):
    _require(request)
    if segment not in m.SEGMENTS:
        raise Http404("No such segment")
    program, _ = _program(request)
    as_of = start_of_day(m.today(program), program.timezone)

    def page(after):
        return m.segment_members(program=program, as_of=as_of, segment=segment, after=after, limit=PAGE)

    def everyone():
        return m.segment_member_ids(program=program, as_of=as_of, segment=segment)

    return _members_page(
        request,
        program,
        title=f"{m.SEGMENTS[segment]}: {m.SEGMENT_HELP[segment]}",
        audience=f"segment:{segment}",
        page=page,
        everyone=everyone,
        columns="segment",
        as_of=as_of,
    )


def at_risk_view(request):
    _require(request)
    program, _ = _program(request)
    as_of = timezone.now()

    def page(after):
        return m.at_risk_members(program=program, as_of=as_of, after=after, limit=PAGE)

    def everyone():
        return m.at_risk_member_ids(program=program, as_of=as_of)

    return _members_page(
        request,
        program,
        title="Members at risk",
        audience="at_risk",
        page=page,
        everyone=everyone,
        columns="at_risk",
        as_of=as_of,
    )


def _members_page(request, program, *, title, audience, page, everyone, columns, as_of):
    try:
        after = m.cursor_decode(request.GET.get("cursor"))
    except LoyaltyError:
        after = None
    rows = page(after)
    form = WinbackForm(request.POST if request.method == "POST" else None, program=program)
    form.fields["members"].choices = [(r["id"], r["member"]) for r in rows]  # the ones ticked on this page
    if request.method == "POST":
        _require(request, GRANT_PERM)
        if form.is_valid():
            ids = everyone()
            if form.cleaned_data["scope"] == "selected":
                ids = sorted(set(ids) & set(form.cleaned_data["members"]))  # still in the list, now
            offer = form.cleaned_data["offer"]
            try:
                result = winback_grant(offer=offer, member_ids=ids, audience=audience, staff_user=request.user)
            except LoyaltyError as error:
                messages.error(request, f"Nothing was granted: {error.message}")
            else:
                parts = [f"{offer.name} granted to {result.granted:,} member{'s' if result.granted != 1 else ''}"]
                if result.already:
                    parts.append(f"{result.already:,} already had it")
                if result.closed:
                    parts.append(f"{result.closed:,} closed accounts skipped")
                messages.success(request, "; ".join(parts) + ".")
                return HttpResponseRedirect(request.get_full_path())
    for row in rows:
        row["url"] = reverse("admin:loyalty_member_change", args=[row["id"]])
    query = {"program": program.code}
    next_url = None
    if len(rows) == PAGE:
        next_url = f"{request.path}?{urlencode({**query, 'cursor': m.cursor_encode(rows[-1]['id'])})}"
    context = {
        **admin.site.each_context(request),
        "title": title,
        "subtitle": None,
        "program": program,
        "rows": rows,
        "columns": columns,
        "as_of": as_of,
        "form": form,
        "can_grant": request.user.has_perm(GRANT_PERM),
        "has_offers": form.fields["offer"].queryset.exists(),
        "offers_url": changelist_url(WinbackOffer),
        "add_offer_url": reverse("admin:loyalty_winbackoffer_add"),
        "next_url": next_url,
        "first_url": f"{request.path}?{urlencode(query)}" if after is not None else None,
        "dashboard_url": _urls(program)["dashboard"],
        "members_url": changelist_url(Member),
    }
    return TemplateResponse(request, "admin/loyalty/dashboard/members.html", context)


urlpatterns = [
    path("", admin.site.admin_view(dashboard_view), name="loyalty_metrics_dashboard"),
    path("at-risk/", admin.site.admin_view(at_risk_view), name="loyalty_metrics_at_risk"),
    path("segments/<slug:segment>/", admin.site.admin_view(segment_view), name="loyalty_metrics_segment"),
]

# The admin's home page links to the dashboard.
admin.site.index_template = "admin/loyalty/dashboard/admin_index.html"
