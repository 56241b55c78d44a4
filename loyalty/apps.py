from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = "Loyalty program"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_migrate

        from loyalty.portal.services import portal_session_on_login
        from loyalty.services.audit import roles_ensure

        post_migrate.connect(roles_ensure, dispatch_uid="loyalty_roles")
        user_logged_in.connect(portal_session_on_login, dispatch_uid="loyalty_portal_sessions")
