from __future__ import annotations

from django.apps import AppConfig


class UiConfig(AppConfig):
    """The server-rendered web UI: pages over the services and selectors of the other apps."""

    name = "bedrock.ui"
    label = "ui"
    verbose_name = "Web UI"
