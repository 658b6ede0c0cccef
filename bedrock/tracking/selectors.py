"""Reads of what runs record, scoped to a user: the rows of the runs they may see."""

from __future__ import annotations

from django.db.models import QuerySet

from bedrock.pipelines.selectors import User
from bedrock.runs.selectors import runs_for
from bedrock.tracking.models import Chart, Metric, Param


def metrics_for(user: User) -> QuerySet[Metric]:
    return Metric.objects.filter(run__in=runs_for(user).values("pk"))


def params_for(user: User) -> QuerySet[Param]:
    return Param.objects.filter(run__in=runs_for(user).values("pk"))


def charts_for(user: User) -> QuerySet[Chart]:
    return Chart.objects.filter(run__in=runs_for(user).values("pk"))
