from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from loyalty.health import healthz

public = {"permission_classes": [AllowAny], "authentication_classes": []}

urlpatterns = [
    path("healthz", healthz),
    path("admin/metrics/", include("loyalty.admin.dashboard")),  # the retention dashboard (staff)
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(**public), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", **public), name="api-docs"),
    path("api/v1/", include("loyalty.api.urls")),
    path("api/v1/", include("tiers.urls")),
    path("api/v1/", include("referrals.urls")),
    path("portal/", include("loyalty.portal.urls")),
]

handler404 = "loyalty.api.errors.api_not_found"
