"""Tiers: staff edit the levels of each program (threshold, earn multiplier, birthday points, perks)."""

from django.contrib import admin

from loyalty.admin.base import SameProgramModelForm, money_currency_error
from tiers.models import Tier


class TierForm(SameProgramModelForm):
    class Meta:
        model = Tier
        fields = ("program", "code", "name", "rank", "threshold", "earn_multiplier", "birthday_points", "perks")

    def clean(self):
        cleaned_data = super().clean()
        program = cleaned_data.get("program") or getattr(self.instance, "program", None)
        if program is not None and (
            error := money_currency_error(cleaned_data.get("threshold"), program.base_currency)
        ):
            self.add_error("threshold", error)
        return cleaned_data


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    form = TierForm
    list_display = ("name", "rank", "code", "threshold", "earn_multiplier", "birthday_points", "program")
    list_filter = ("program",)
    list_select_related = ("program",)
    ordering = ("program", "rank")
    search_fields = ("code", "name")
    fieldsets = (
        (None, {"fields": ("program", "code", "name", "rank")}),
        ("Qualification", {"fields": ("threshold",)}),
        ("Benefits", {"fields": ("earn_multiplier", "birthday_points", "perks")}),
    )
