from __future__ import annotations

from django.apps import AppConfig


class SecretsConfig(AppConfig):
    name = "bedrock.secrets"
    label = "secrets"
    verbose_name = "Secrets"
