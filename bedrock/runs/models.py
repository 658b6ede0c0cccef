from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from bedrock.pipelines.models import Pipeline, default_max_run_time


class RunStatus(models.TextChoices):
    """Bedrock's run statuses, used for runs and their steps alike."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    UNKNOWN = "Unknown"


# `Unknown` is active: the run may still hold resources until the reconciler learns its fate.
ACTIVE_STATUSES = frozenset(
    {
        RunStatus.ACCEPTED,
        RunStatus.QUEUED,
        RunStatus.RUNNING,
        RunStatus.STOPPING,
        RunStatus.UNKNOWN,
    }
)
TERMINAL_STATUSES = frozenset(
    {RunStatus.REJECTED, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED}
)
assert set(RunStatus) == ACTIVE_STATUSES | TERMINAL_STATUSES
assert not ACTIVE_STATUSES & TERMINAL_STATUSES


class Trigger(models.TextChoices):
    UI = "ui", "Web UI"
    API = "api", "API"
    CLI = "cli", "Command line"
    SCHEDULE = "schedule", "Schedule"


class Run(models.Model):
    """One execution of a pipeline at one exact commit, with the config read at that commit."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="runs")
    number = models.PositiveIntegerField(editable=False, help_text="Counts from 1 per pipeline.")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.ACCEPTED)
    ref = models.CharField(max_length=255, help_text="The branch, tag or SHA asked for.")
    branch = models.CharField(
        max_length=255,
        blank=True,
        help_text="The branch the ref named at creation; empty for a tag or a commit.",
    )
    commit_sha = models.CharField("commit SHA", max_length=40, blank=True)
    config_text = models.TextField(blank=True, help_text="bedrock.hcl as read at the commit.")
    parameters = models.JSONField(
        default=dict, blank=True, help_text="The file's defaults overridden by the run's."
    )
    installs_as_of = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The date the steps' pip installs resolved packages as of; empty: the latest.",
    )
    input_model_version = models.ForeignKey(
        "models.ModelVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="scoring_runs",
    )
    input_model_alias = models.CharField(
        # model@alias: a model's name (100) and an alias (63).
        max_length=164,
        blank=True,
        help_text="The alias asked for; input_model_version is the version it named then.",
    )
    # A training run whose ref may not publish (the pipeline's publish policy) keeps its archive
    # here instead, and says why in unpublished_reason.
    output_archive_key = models.CharField(max_length=600, blank=True, editable=False)
    output_archive_size = models.BigIntegerField(null=True, blank=True, editable=False)
    output_archive_sha256 = models.CharField(
        "output archive SHA-256", max_length=64, blank=True, editable=False
    )
    unpublished_reason = models.TextField(blank=True, editable=False)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.UI)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # NULL, not "", for "no key": the unique constraint must ignore runs started without one.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    # What the request that created the run asked for, so that a key reused for a different
    # request is refused rather than answered with this run (see run_create).
    request_digest = models.CharField(max_length=64, blank=True, editable=False)
    max_run_time = models.DurationField(default=default_max_run_time)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    # The supervisor process executing the run, and its last sign of life.
    runner = models.CharField(max_length=200, blank=True, help_text="host:pid of the supervisor.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Supervisors started for the run before one claimed it, and when the last was started: the
    # reconciler retries with backoff a bounded number of times, then fails the run.
    supervisor_attempts = models.PositiveIntegerField(default=0, editable=False)
    supervisor_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The run's own API token (BEDROCK_API_TOKEN); only its hash, and only while the run is active.
    token_hash = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    # Something the run left outside the database (a Nomad job, a stage archive) could not be
    # removed when it ended; the reconciler tries again until it is gone.
    cleanup_pending = models.BooleanField(default=False, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "number"], name="run_unique_number"),
            models.UniqueConstraint(
                fields=["pipeline", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="run_unique_idempotency_key",
            ),
        ]
        ordering = ["-created_at", "-id"]
        # Lists show runs in that order, a page at a time: with an index in the same order the
        # database reads one page of rows however many runs there are, rather than sorting them
        # all. One per filter the lists offer (a pipeline, a status, both); each also serves its
        # leading columns alone, as the reconciler's reads of active runs by status.
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="run_newest"),
            models.Index(fields=["pipeline", "-created_at", "-id"], name="run_pipeline_newest"),
            models.Index(fields=["status", "-created_at", "-id"], name="run_status_newest"),
            models.Index(
                fields=["pipeline", "status", "-created_at", "-id"],
                name="run_pipeline_status_newest",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline} run {self.number}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def deadline(self) -> datetime | None:
        """When the run must be over: its start plus its maximum run time."""
        if self.started_at is None:
            return None
        return self.started_at + self.max_run_time

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class RunStep(models.Model):
    """One step of a run's DAG, with its attempts, times and where its log is kept."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=512)
    position = models.PositiveIntegerField(help_text="Order in the run plan (dependency order).")
    depends_on = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.ACCEPTED)
    attempts = models.PositiveIntegerField(default=0)
    retry_limit = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    log_key = models.CharField(max_length=500, blank=True, help_text="Storage key of the log.")
    # The step's /artefact as it ended, kept while the run lasts for the steps that depend on it
    # (see bedrock.runs.stages); empty when the step stored none.
    artefact_key = models.CharField(max_length=600, blank=True, editable=False)
    artefact_sha256 = models.CharField(
        "artefact SHA-256", max_length=64, blank=True, editable=False
    )
    artefact_size = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "name"], name="runstep_unique_name"),
        ]
        ordering = ["run", "position"]

    def __str__(self) -> str:
        return f"{self.run} step {self.name}"
