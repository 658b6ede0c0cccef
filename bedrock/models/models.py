from __future__ import annotations

from django.db import models
from django.utils import timezone

from bedrock.pipelines.models import Project, name_validator


class Model(models.Model):
    """A trained model: the collection of versions its training pipelines publish."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="models")
    name = models.CharField(max_length=100, validators=[name_validator])
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="model_unique_name"),
        ]
        ordering = ["project__name", "name"]

    def __str__(self) -> str:
        return f"{self.project}/{self.name}"


class ModelVersion(models.Model):
    """One published /artefact archive. It exists only once its upload is complete and verified."""

    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField(editable=False)
    run = models.OneToOneField(
        "runs.Run",
        on_delete=models.PROTECT,
        related_name="output_model_version",
        editable=False,
        help_text="The training run that produced this version.",
    )
    storage_key = models.CharField(max_length=500, editable=False)
    size = models.PositiveBigIntegerField(editable=False, help_text="Archive size in bytes.")
    sha256 = models.CharField("SHA-256", max_length=64, editable=False)
    file_count = models.PositiveIntegerField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="modelversion_unique_number"),
        ]
        ordering = ["model", "-number"]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"

    @property
    def filename(self) -> str:
        """The name a download is saved under, such as ``churn-model-v3.zip``."""
        return f"{self.model.name}-v{self.number}.zip"


class ArchiveUpload(models.Model):
    """An archive being written to storage and not yet named by a model version or a stage.

    Recorded before the first byte is written and removed in the transaction that names the
    archive (or when the upload fails), so a row that outlives its upload marks an object that a
    killed process left behind; the reconciler deletes those (``archives_reconcile``).
    """

    storage_key = models.CharField(max_length=600, unique=True, editable=False)
    run = models.ForeignKey(
        "runs.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["started_at"]

    def __str__(self) -> str:
        return self.storage_key
