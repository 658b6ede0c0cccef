from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, RegexValidator
from django.db import models
from django.utils import timezone

from bedrock.envconfig import format_duration

if TYPE_CHECKING:
    from django.contrib.auth.models import User

name_validator = RegexValidator(
    r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$",
    "Use letters, digits, '-', '_' and '.', starting and ending with a letter or digit.",
)


def default_max_run_time() -> timedelta:
    return settings.BEDROCK_DEFAULT_MAX_RUN_TIME


class Role(models.TextChoices):
    """A member's role in a project. Each role can do everything the ones before it can."""

    VIEWER = "viewer", "Viewer"
    DEVELOPER = "developer", "Developer"
    ADMIN = "admin", "Admin"

    @classmethod
    def rank(cls, role: str) -> int:
        order: list[str] = [cls.VIEWER, cls.DEVELOPER, cls.ADMIN]
        return order.index(role)


class Project(models.Model):
    """A team. Pipelines and models belong to a project; members hold a role in it."""

    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    description = models.TextField(blank=True, validators=[MaxLengthValidator(10_000)])
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    members: models.ManyToManyField[User, Membership] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in one project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user"),
        ]
        ordering = ["project__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.project}"


class PipelineKind(models.TextChoices):
    TRAINING = "training", "Training"
    BATCH_SCORING = "batch_scoring", "Batch scoring"

    @property
    def stanza(self) -> str:
        """The bedrock.hcl stanza a pipeline of this kind runs."""
        return {"training": "train", "batch_scoring": "batch_score"}[self.value]


class DatedInstalls(models.TextChoices):
    """Whether a pipeline's step installs resolve packages as of its run's commit date."""

    DEFAULT = "default", "The server's default"
    ON = "on", "As of the commit's date"
    OFF = "off", "The latest releases"


class PublishPolicy(models.TextChoices):
    """Which runs of a training pipeline publish model versions."""

    BRANCH = "branch", "Runs of the pipeline's branch"
    ANY = "any", "Runs of any ref"


class Pipeline(models.Model):
    """A Git repository and the bedrock.hcl in it, run as training or batch scoring."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="pipelines")
    name = models.CharField(max_length=100, validators=[name_validator])
    git_url = models.CharField(
        "Git URL",
        max_length=500,
        help_text="https:// or ssh:// (or user@host:path) URL of the repository.",
    )
    branch = models.CharField(max_length=255, default="main")
    config_path = models.CharField(max_length=255, default="bedrock.hcl")
    kind = models.CharField(max_length=16, choices=PipelineKind.choices)
    model = models.ForeignKey(
        "models.Model",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="training_pipelines",
        help_text="The model a training pipeline publishes versions of.",
    )
    publish_policy = models.CharField(
        max_length=8,
        choices=PublishPolicy.choices,
        default=PublishPolicy.BRANCH,
        help_text=(
            "Which runs publish a model version. A run of another ref still runs and keeps its "
            "archive as a download of its own."
        ),
    )
    max_run_time = models.DurationField(
        default=default_max_run_time,
        help_text="Runs past this are stopped and failed. Only site administrators may raise it.",
    )
    dated_installs = models.CharField(
        max_length=8,
        choices=DatedInstalls.choices,
        default=DatedInstalls.DEFAULT,
        help_text=(
            "Resolve the steps' pip installs as of the run's commit date, so that the unpinned "
            "dependencies of old requirement files get the releases of their day."
        ),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    archived_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="pipeline_unique_name"),
        ]
        ordering = ["project__name", "name"]

    def __str__(self) -> str:
        return f"{self.project}/{self.name}"

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    @property
    def stanza(self) -> str:
        return PipelineKind(self.kind).stanza

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.kind == PipelineKind.TRAINING and self.model_id is None:
            errors["model"] = "A training pipeline needs the model its runs publish versions of."
        if self.kind == PipelineKind.BATCH_SCORING and self.model_id is not None:
            errors["model"] = (
                "A batch scoring pipeline publishes no model; choose the model version per run."
            )
        if (
            self.model_id
            and self.model is not None
            and self.project_id
            and self.model.project_id != self.project_id
        ):
            errors["model"] = f"The model must belong to the project {self.project}."
        cap = settings.BEDROCK_MAX_RUN_TIME_CAP
        if self.max_run_time is not None:
            if self.max_run_time <= timedelta(0):
                errors["max_run_time"] = "The maximum run time must be positive."
            elif self.max_run_time > cap:
                errors["max_run_time"] = (
                    f"The maximum run time may not exceed the site's cap of "
                    f"{format_duration(cap)} (BEDROCK_MAX_RUN_TIME_CAP)."
                )
        if self.git_url:
            from bedrock.pipelines.git import GitError, validate_repo_url

            try:
                validate_repo_url(self.git_url)
            except GitError as exc:
                errors["git_url"] = str(exc)
        if self.branch:
            from bedrock.pipelines.git import GitError, validate_ref

            try:
                validate_ref(self.branch)
            except GitError as exc:
                errors["branch"] = str(exc)
        if self.config_path and (
            self.config_path.startswith(("/", "-")) or ".." in self.config_path.split("/")
        ):
            errors["config_path"] = "Give a path inside the repository, such as bedrock.hcl."
        if errors:
            raise ValidationError(errors)


class PipelineConfigSnapshot(models.Model):
    """A pipeline's config file as last read at one commit of a ref, kept so that pages render
    from it instead of waiting on Git.

    One row per pipeline, ref, path and commit. ``commit_sha`` is empty for a read that failed
    before any commit was known; ``read_at`` is empty for a row that only marks a queued read.
    ``refresh_queued_at`` says a read of the ref is waiting in the task queue.
    """

    pipeline = models.ForeignKey(
        Pipeline, on_delete=models.CASCADE, related_name="config_snapshots"
    )
    ref = models.CharField(max_length=255)
    config_path = models.CharField(max_length=500)
    commit_sha = models.CharField(max_length=40, blank=True)
    text = models.TextField(blank=True)
    error = models.TextField(blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    refresh_queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "ref", "config_path", "commit_sha"],
                name="config_snapshot_unique_per_commit",
            )
        ]
        indexes = [models.Index(fields=["pipeline", "ref", "config_path", "-read_at"])]

    def __str__(self) -> str:
        return f"{self.config_path} at {self.ref} ({self.commit_sha[:7] or 'no commit'})"
