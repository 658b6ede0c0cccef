from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxLengthValidator, RegexValidator
from django.db import models
from django.utils import timezone

from bedrock.pipelines.models import Project, name_validator


class Model(models.Model):
    """A trained model: the collection of versions its training pipelines publish."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="models")
    name = models.CharField(max_length=100, validators=[name_validator])
    description = models.TextField(blank=True, validators=[MaxLengthValidator(10_000)])
    keep_versions = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=(
            "Retention: keep the newest this many versions, and every version an alias points at "
            "or a run used recently; the reconciler deletes the others. Empty keeps every version."
        ),
    )
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
    ref = models.CharField(
        max_length=255, blank=True, editable=False, help_text="The ref its run was asked for."
    )
    branch = models.CharField(
        max_length=255,
        blank=True,
        editable=False,
        help_text="The branch its run was asked for; empty when the ref was a tag or a commit.",
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # No longer offered for new runs, still downloadable.
    deprecated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Its archive is deleted from storage; the row stays, so that the runs that used it, its
    # number and its history still say what it was.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

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


alias_name_validator = RegexValidator(
    r"^[a-z][a-z0-9_-]{0,62}$",
    "Use lowercase letters, digits, '-' and '_', starting with a letter, at most 63 characters.",
)


class ModelAlias(models.Model):
    """A name, such as ``production``, pointing at one version of a model; moved by admins."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=63, validators=[alias_name_validator])
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "name"], name="modelalias_unique_name"),
        ]
        ordering = ["model", "name"]
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"


class ModelAliasChange(models.Model):
    """One change of an alias: set (no ``from_version``), moved, or removed (no ``to_version``)."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="alias_changes")
    alias = models.CharField(max_length=63)
    from_version = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    to_version = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model", "alias", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.alias} changed at {self.created_at:%Y-%m-%d %H:%M:%S}"
