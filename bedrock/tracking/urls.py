from __future__ import annotations

from django.urls import path

from bedrock.tracking import views

urlpatterns = [
    path("api/tracking", views.tracking_batch, name="tracking_batch"),
]
