"""API keys: created through `api_key_create` with the secret shown once, on the page that answers
the save (never stored, never put in a cookie or a message); revoked, never deleted."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from loyalty.models import KEY_PREFIX, ApiKey, Scope
from loyalty.services.access import api_key_create, api_key_revoke


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="What the integration may do. Grant only what it needs.",
    )

    class Meta:
        model = ApiKey
        fields = ("program", "name", "scopes")


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("name",)


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "key_display", "scopes_display", "active", "created_at", "last_used_at", "program")
    list_filter = (StatusFilter, "program")
    list_select_related = ("program",)
    search_fields = ("name", "=prefix")
    search_help_text = "The key's name, or its prefix (the 8 characters after lk_)."
    ordering = ("-id",)
    actions = ("revoke",)
    fields = (
        "program",
        "name",
        "key_display",
        "scopes_display",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = ("program", "key_display", "scopes_display", "created_at", "last_used_at", "revoked_at")
    add_fields = ("program", "name", "scopes")

    def has_delete_permission(self, request, obj=None):
        return False  # a key is revoked, so that its history stays readable

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    @admin.display(description="key")
    def key_display(self, obj):
        return format_html("<code>{}{}_…</code>", KEY_PREFIX, obj.prefix)

    @admin.display(description="scopes")
    def scopes_display(self, obj):
        return ", ".join(obj.scopes) or "-"

    @admin.display(description="active", boolean=True, ordering="revoked_at")
    def active(self, obj):
        return obj.is_active

    # --- create: through the service, secret shown once --------------------------------------
    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        key, raw = api_key_create(
            program=form.cleaned_data["program"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            actor=request.user,
        )
        for name in ("pk", "prefix", "hashed", "scopes", "created_at"):
            setattr(obj, name, getattr(key, name))
        obj._state.adding, obj._state.db = False, key._state.db
        obj._raw_key = raw  # lives only as long as this request: response_add shows it once

    def response_add(self, request, obj, post_url_continue=None):
        raw = getattr(obj, "_raw_key", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "subtitle": None,
            "opts": self.opts,
            "original": obj,
            "raw_key": raw,
            "change_url": reverse("admin:loyalty_apikey_change", args=[obj.pk]),
            "changelist_url": reverse("admin:loyalty_apikey_changelist"),
        }
        # admin_view marks every admin response never_cache (no-store): no browser or proxy keeps it
        return TemplateResponse(request, "admin/loyalty/apikey/created.html", context)

    # --- revoke ------------------------------------------------------------------------------
    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request, queryset):
        active = queryset.filter(revoked_at__isnull=True)
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Revoke API keys",
                "subtitle": None,
                "opts": self.opts,
                "keys": list(active.select_related("program")),
                "selected": queryset.values_list("pk", flat=True),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "media": self.media,
            }
            return TemplateResponse(request, "admin/loyalty/apikey/revoke_confirmation.html", context)
        revoked = 0
        for key in active:
            api_key_revoke(key=key, actor=request.user)
            self.log_change(request, key, "Revoked")
            revoked += 1
        self.message_user(
            request,
            f"Revoked {revoked} API key{'s' if revoked != 1 else ''}: integrations using them are refused from now on.",
            messages.SUCCESS,
        )
        return None
