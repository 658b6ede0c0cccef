from __future__ import annotations

from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "bedrock.runs"
    label = "runs"
    verbose_name = "Runs"
