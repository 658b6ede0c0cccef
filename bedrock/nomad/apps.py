from __future__ import annotations

from django.apps import AppConfig


class NomadConfig(AppConfig):
    name = "bedrock.nomad"
    label = "nomad"
    verbose_name = "Nomad"
