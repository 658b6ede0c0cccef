"""Storing what a run's steps log: one batch at a time, whole or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Sum
from django.utils import timezone

from bedrock.runs.models import Run
from bedrock.tracking.batch import Batch, BatchError, Series
from bedrock.tracking.models import Chart, ChartKind, Metric, MetricChunk, Param
from bedrock.tracking.series import new_chunk


@dataclass(frozen=True)
class Recorded:
    points: int
    params: int
    charts: int

    def as_dict(self) -> dict[str, int]:
        return {"points": self.points, "params": self.params, "charts": self.charts}


def tracking_record(*, run: Run, batch: Batch) -> Recorded:
    """Store ``batch`` for ``run``, or raise BatchError and store nothing.

    The run's row is locked for the batch, so two steps logging at once cannot both pass a
    per-run limit; on SQLite every write transaction is exclusive already (IMMEDIATE).
    """
    with transaction.atomic():
        locked = Run.objects.select_for_update().filter(pk=run.pk)
        if not locked.exists():
            raise BatchError(f"There is no run {run.pk}.")
        if batch.step and not run.steps.filter(name=batch.step).exists():
            raise BatchError(f"step: {batch.step!r} is not a step of this run.")
        if batch.metrics:
            _record_metrics(run, batch.step, batch.metrics)
        if batch.params:
            _record_named(run, batch.step, Param, batch.params, "params")
        if batch.charts:
            _record_named(run, batch.step, Chart, batch.charts, "charts")
    return Recorded(batch.points, len(batch.params), len(batch.charts))


def _check_run_limits(run: Run, metrics: dict[str, Series], existing: dict[str, Metric]) -> None:
    held = Metric.objects.filter(run=run).aggregate(points=Sum("count"), metrics=Count("pk"))
    points = (held["points"] or 0) + sum(len(series) for series in metrics.values())
    limit = settings.BEDROCK_TRACKING_MAX_POINTS_PER_RUN
    if points > limit:
        raise BatchError(f"metrics: the run would hold {points} points; the limit is {limit}.")
    count = held["metrics"] + len(set(metrics) - set(existing))
    limit = settings.BEDROCK_TRACKING_MAX_METRICS_PER_RUN
    if count > limit:
        raise BatchError(f"metrics: the run would hold {count} metrics; the limit is {limit}.")


def _record_metrics(run: Run, step: str, metrics: dict[str, Series]) -> None:
    existing = {metric.name: metric for metric in Metric.objects.filter(run=run, name__in=metrics)}
    _check_run_limits(run, metrics, existing)
    next_seq = {
        row["metric"]: row["last"] + 1
        for row in MetricChunk.objects.filter(metric__in=existing.values())
        .values("metric")
        .annotate(last=Max("seq"))
    }
    now = timezone.now().timestamp()
    fresh: list[Metric] = []
    filled: list[tuple[Metric, list[float], list[float], list[float]]] = []
    for name, series in metrics.items():
        metric = existing.get(name)
        start = metric.count if metric else 0
        x = series.x if series.x is not None else list(range(start, start + len(series)))
        stamps = series.timestamp if series.timestamp is not None else [now] * len(series)
        if metric is None:
            metric = Metric(run=run, name=name, min_value=min(series.value))
            metric.max_value = max(series.value)
            fresh.append(metric)
        else:
            metric.min_value = min(metric.min_value, min(series.value))
            metric.max_value = max(metric.max_value, max(series.value))
        metric.count = start + len(series)
        metric.step_name = step
        metric.latest_value, metric.latest_x = series.value[-1], x[-1]
        metric.latest_at = datetime.fromtimestamp(stamps[-1], tz=UTC)
        filled.append((metric, x, series.value, stamps))
    Metric.objects.bulk_create(fresh)
    fields = ["count", "step_name", "latest_value", "latest_x", "latest_at", "min_value"]
    Metric.objects.bulk_update(list(existing.values()), [*fields, "max_value"])
    MetricChunk.objects.bulk_create(
        new_chunk(metric, next_seq.get(metric.pk, 0), x, values, stamps)
        for metric, x, values, stamps in filled
    )


def _record_named(run: Run, step: str, model: Any, items: dict[str, Any], key: str) -> None:
    """Logged parameters and charts: a name logged again replaces its value."""
    existing = {row.name: row for row in model.objects.filter(run=run, name__in=items)}
    count = model.objects.filter(run=run).count() + len(set(items) - set(existing))
    limit = (
        settings.BEDROCK_TRACKING_MAX_PARAMS_PER_RUN
        if model is Param
        else settings.BEDROCK_TRACKING_MAX_CHARTS_PER_RUN
    )
    if count > limit:
        raise BatchError(f"{key}: the run would hold {count} {key}; the limit is {limit}.")
    now = timezone.now()
    rows: list[Param | Chart] = []
    for name, value in items.items():
        row = existing.get(name) or model(run=run, name=name)
        if isinstance(row, Param):
            row.value = value
        else:
            row.kind, row.data = ChartKind.BINARY_CLASSIFIER, value
        row.step_name, row.logged_at = step, now
        rows.append(row)
    model.objects.bulk_create([row for row in rows if row.pk is None])
    changed = ["value"] if model is Param else ["kind", "data"]
    model.objects.bulk_update([row for row in rows if row.pk], [*changed, "step_name", "logged_at"])
