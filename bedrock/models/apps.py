from __future__ import annotations

from django.apps import AppConfig


class ModelsConfig(AppConfig):
    name = "bedrock.models"
    label = "models"
    verbose_name = "Models and versions"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from bedrock.models.services import run_archive_release

        # A run deleted (in the Django admin) takes the archive it kept with it.
        post_delete.connect(run_archive_release, sender="runs.Run", dispatch_uid="run-archive")
