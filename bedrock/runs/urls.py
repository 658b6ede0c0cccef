from __future__ import annotations

from django.urls import path

from bedrock.runs import views

urlpatterns = [
    path("runs/<int:pk>/artefact", views.run_artefact_upload, name="run_artefact_upload"),
    path("runs/<int:pk>/source", views.run_source, name="run_source"),
    path(
        "runs/<int:pk>/steps/<str:name>/artefact",
        views.run_step_artefact,
        name="run_step_artefact",
    ),
]
