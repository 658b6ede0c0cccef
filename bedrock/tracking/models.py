"""What runs record about themselves: metric series, logged parameters and charts.

A metric is a series: every value logged under one name in one run, in order. Its points are kept
in chunks (one row per batch a step sent, the batch's values as arrays), so that a loop of 100,000
``log_metric`` calls costs a few rows, not 100,000; the series row keeps the latest value, the
count and the extremes, so that listing runs with their latest metrics, or ordering runs by one,
reads no chunk at all.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from bedrock.runs.models import Run


class Metric(models.Model):
    """One metric of a run: its latest value, how many points it has, and their extremes."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=250)
    step_name = models.CharField(
        max_length=512, blank=True, help_text="The step that logged it last."
    )
    count = models.PositiveIntegerField(default=0)
    latest_value = models.FloatField()
    latest_x = models.FloatField(help_text="The step index of the latest point.")
    latest_at = models.DateTimeField(default=timezone.now)
    min_value = models.FloatField()
    max_value = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "name"], name="metric_unique_name"),
        ]
        # "The runs with the best auc": the value, looked up by name.
        indexes = [models.Index(fields=["name", "latest_value"], name="metric_name_latest")]
        ordering = ["run", "name"]

    def __str__(self) -> str:
        return f"{self.run} {self.name}"


class MetricChunk(models.Model):
    """A batch of a metric's points, in the order logged: three arrays of one length."""

    metric = models.ForeignKey(Metric, on_delete=models.CASCADE, related_name="chunks")
    seq = models.PositiveIntegerField(help_text="Counts from 0 per metric.")
    size = models.PositiveIntegerField()
    x = models.JSONField(default=list)
    value = models.JSONField(default=list)
    timestamp = models.JSONField(default=list, help_text="Seconds since the epoch, UTC.")
    # The chunk thinned for charts (bedrock.tracking.series.preview): a page charting a long
    # series reads these, a few hundred points a chunk, not every point.
    preview_x = models.JSONField(default=list)
    preview_value = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["metric", "seq"], name="metricchunk_unique_seq"),
        ]
        ordering = ["metric", "seq"]

    def __str__(self) -> str:
        return f"{self.metric} chunk {self.seq}"


class Param(models.Model):
    """A parameter a step logged (the run's own parameters are on the run)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="logged_params")
    name = models.CharField(max_length=250)
    value = models.TextField()
    step_name = models.CharField(max_length=512, blank=True)
    logged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "name"], name="param_unique_name"),
        ]
        ordering = ["run", "name"]

    def __str__(self) -> str:
        return f"{self.run} {self.name}={self.value[:40]}"


class ChartKind(models.TextChoices):
    BINARY_CLASSIFIER = "binary_classifier", "Binary classifier"


class Chart(models.Model):
    """Chart data a step logged; a binary classifier's confusion matrices at thresholds."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="charts")
    name = models.CharField(max_length=250)
    kind = models.CharField(max_length=32, choices=ChartKind.choices)
    data = models.JSONField(default=dict)
    step_name = models.CharField(max_length=512, blank=True)
    logged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "name"], name="chart_unique_name"),
        ]
        ordering = ["run", "name"]

    def __str__(self) -> str:
        return f"{self.run} chart {self.name}"
