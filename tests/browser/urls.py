"""The project's URLs, with the agent's page and the KPI dashboard mounted in the admin namespace.

Until the customer admin's `get_urls()` and crm/urls.py include them, tests
mount them here exactly as those will: inside the admin's own URL list, so
the names are `admin:customers_customer_agent` and `admin:kpi_dashboard`.
"""

from django.contrib import admin
from django.urls import URLResolver, path

from crm.urls import urlpatterns as project_urlpatterns
from customers.agent_page import agent_page_urls

admin_urls = admin.site.get_urls()
names = {getattr(p, "name", None) for p in admin_urls}
for entry in admin_urls:
    if isinstance(entry, URLResolver):
        names |= {getattr(p, "name", None) for p in entry.url_patterns}
extra = []
if "customers_customer_agent" not in names:
    extra.append(path("customers/customer/", (agent_page_urls(), None, None)))
try:
    from crm.dashboard import dashboard_urls
except ImportError:  # pragma: no cover - the dashboard module is part of this change
    dashboard_urls = list
if "kpi_dashboard" not in names:
    extra += dashboard_urls()

urlpatterns = [path("admin/", (extra + admin_urls, "admin", admin.site.name))] + [
    entry for entry in project_urlpatterns if str(entry.pattern) != "admin/"
]
