from __future__ import annotations

from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "bedrock.pipelines"
    label = "pipelines"
    verbose_name = "Projects and pipelines"

    def ready(self) -> None:
        from bedrock import checks  # noqa: F401  (registers the system checks)
