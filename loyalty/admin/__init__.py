"""The staff admin: members and their ledger, orders, redemptions, program configuration, API keys.

Every write goes through a service (points_adjust, member_update, program_create, api_key_create,
api_key_revoke); ledger rows, orders, redemptions and events are view-only."""

from django.contrib import admin

from . import (  # noqa: F401 (each module registers its admins)
    access,
    audit,
    dashboard,
    gamification,
    ledger,
    members,
    metrics,
    orders,
    program,
    webhooks,
)

admin.site.site_header = "Loyalty administration"
admin.site.site_title = "Loyalty admin"
admin.site.index_title = "Program, members and ledger"
