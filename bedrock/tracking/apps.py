from __future__ import annotations

from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "bedrock.tracking"
    label = "tracking"
    verbose_name = "Tracking"
