from __future__ import annotations

from django.urls import path

from bedrock.runs import views

urlpatterns = [
    path("runs/<int:pk>/artefact", views.run_artefact_upload, name="run_artefact_upload"),
]
