from __future__ import annotations

from django.urls import path

from bedrock.models import views

urlpatterns = [
    path(
        "model-versions/<int:pk>/download",
        views.model_version_download,
        name="model_version_download",
    ),
    path("model-versions/<int:pk>/file", views.model_version_file, name="model_version_file"),
    path("runs/<int:pk>/output/download", views.run_output_download, name="run_output_download"),
    path(
        "api/models/<str:model>/versions/<int:number>/archive",
        views.model_version_archive,
        name="model_version_archive",
    ),
]
