from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import IsAuthenticated

from crm.dashboard import dashboard_urls
from crm.views import health

api_v1 = [
    path("", include("customers.api.urls")),
    path("", include("interactions.api.urls")),
    path("", include("integrations.api.urls")),
    path("", include("metrics.api.urls")),
    path("", include("standards.api.urls")),
]

urlpatterns = [
    # The KPI dashboard lives inside the admin (its login, its namespace: admin:kpi_dashboard).
    path("admin/", (dashboard_urls() + admin.site.get_urls(), "admin", admin.site.name)),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[IsAuthenticated]), name="api-docs"),
    path("api-auth/", include("rest_framework.urls")),
    path("webhooks/", include("interactions.api.webhook_urls")),
    path("health/", health, name="health"),
]
