from __future__ import annotations

from django.apps import AppConfig


class ModelsConfig(AppConfig):
    name = "bedrock.models"
    label = "models"
    verbose_name = "Models and versions"
