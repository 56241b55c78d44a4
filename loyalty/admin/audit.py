"""The audit log: who changed what value or status, from what to what, when and why. Read-only."""

import json

from django.contrib import admin
from django.utils.html import format_html

from loyalty.models import AuditEntry

from .base import ViewOnlyAdmin


@admin.register(AuditEntry)
class AuditEntryAdmin(ViewOnlyAdmin):
    list_display = ("created_at", "actor_label", "action", "object_repr", "change", "reason", "program")
    list_filter = ("action", "program", "created_at")
    list_select_related = ("program",)
    search_fields = ("=object_id", "actor_label", "object_repr", "action")
    search_help_text = "An object's id, the actor, the object's name or the action (e.g. points.adjust)."
    ordering = ("-created_at", "-id")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "actor",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "before_display",
        "after_display",
        "reason",
        "program",
    )
    readonly_fields = ("before_display", "after_display")

    @admin.display(description="before")
    def before_display(self, obj):
        return _pretty(obj.before)

    @admin.display(description="after")
    def after_display(self, obj):
        return _pretty(obj.after)

    @admin.display(description="change")
    def change(self, obj):
        """Each field that changed: `stock: 1000 → 7`."""
        before, after = obj.before or {}, obj.after or {}
        keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
        return "; ".join(f"{k}: {before.get(k, '-')} → {after.get(k, '-')}" for k in keys) or "-"


def _pretty(value):
    if value is None:
        return "-"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))
