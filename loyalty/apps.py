from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = "Loyalty program"

    def ready(self):
        from django.db.models.signals import post_migrate

        from loyalty.services.audit import roles_ensure

        post_migrate.connect(roles_ensure, dispatch_uid="loyalty_roles")
