"""Filters of a run's metrics, and runs (or model versions, through their training run) filtered
and ordered by a metric's latest value: "the 5 runs with the best auc".

Both read the metric's series row only, through its (name, latest_value) index; no chunk.
"""

from __future__ import annotations

import enum

import strawberry
import strawberry_django
from django.db.models import F, OrderBy, OuterRef, Q, QuerySet, Subquery
from strawberry import UNSET

from bedrock.graphql.filters import FloatFilter, TextFilter
from bedrock.tracking.models import Chart, Metric


@strawberry_django.filter_type(Metric)
class MetricFilter:
    name: TextFilter | None


@strawberry_django.filter_type(Chart)
class ChartFilter:
    name: TextFilter | None


@strawberry.input(description="Keep what has a metric of this name, its latest value compared.")
class MetricValueFilter:
    name: str
    value: FloatFilter | None = UNSET


@strawberry.enum(description="Lowest first (ASC) or highest first (DESC).")
class SortDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.input(
    description="Order by a metric's latest value. What has no metric of that name comes last; "
    "equal values keep the usual order (newest first), so put this entry last in `ordering`."
)
class MetricOrder:
    name: str
    direction: SortDirection = SortDirection.ASC


def with_metric(value: MetricValueFilter, run: str) -> Q:
    """Rows whose run (the lookup path ``run``) has the metric, its latest value compared."""
    metrics = Metric.objects.filter(name=value.name)
    bound = value.value
    if bound:
        comparisons = {"gt": bound.gt, "gte": bound.gte, "lt": bound.lt, "lte": bound.lte}
        metrics = metrics.filter(
            **{
                f"latest_value__{lookup}": limit
                for lookup, limit in comparisons.items()
                if limit is not None and limit is not UNSET
            }
        )
    return Q(**{f"{run}__in": metrics.values("run_id")})


def by_metric(
    queryset: QuerySet, value: MetricOrder, run: str
) -> tuple[QuerySet, list[OrderBy | str]]:
    """``queryset`` ordered by the latest value of its run's metric, missing values last.

    The model's own ordering follows as the tie-break, so that "the best 5" is the same 5 on
    every call when several runs share a value.
    """
    latest = Metric.objects.filter(run=OuterRef(run), name=value.name).values("latest_value")
    alias = f"metric_order_{len(queryset.query.annotations)}"
    queryset = queryset.alias(**{alias: Subquery(latest[:1])})
    if value.direction is SortDirection.DESC:
        key = F(alias).desc(nulls_last=True)
    else:
        key = F(alias).asc(nulls_last=True)
    return queryset, [key, *queryset.model._meta.ordering]
