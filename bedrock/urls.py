from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Bedrock administration"
admin.site.site_title = "Bedrock"
admin.site.index_title = "Projects, pipelines, runs and models"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("bedrock.models.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
