from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from maps.health import healthz

handler404 = "liqsite.errors.page_not_found"
handler500 = "liqsite.errors.server_error"

admin.site.site_header = "liqsite admin"
admin.site.site_title = "liqsite admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("maps.api_urls")),
    path("", include("accounts.urls")),
    re_path(r"^healthz/?$", healthz, name="healthz"),
    path("", include("maps.urls")),
]
