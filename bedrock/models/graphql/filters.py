"""Filters and orderings of models and model versions; a version by its training run's metrics."""

from __future__ import annotations

import strawberry_django
from django.db.models import OrderBy, Q, QuerySet
from strawberry import auto

from bedrock.graphql.filters import DateTimeFilter, IDFilter, TextFilter
from bedrock.models.models import Model, ModelVersion
from bedrock.tracking.graphql.filters import MetricOrder, MetricValueFilter, by_metric, with_metric


@strawberry_django.filter_type(Model)
class ModelFilter:
    id: IDFilter | None
    project_id: IDFilter | None
    name: TextFilter | None


@strawberry_django.order_type(Model)
class ModelOrder:
    id: auto
    name: auto
    created_at: auto


@strawberry_django.filter_type(ModelVersion)
class ModelVersionFilter:
    id: IDFilter | None
    created_at: DateTimeFilter | None

    @strawberry_django.filter_field(
        description="Versions whose training run has this metric, its latest value compared."
    )
    def metric(self, value: MetricValueFilter, prefix: str) -> Q:
        return with_metric(value, f"{prefix}run")

    @strawberry_django.filter_field(
        description="true: the versions offered for new runs (neither deprecated nor deleted); "
        "false: the others."
    )
    def offered(self, value: bool, prefix: str) -> Q:
        offered = Q(**{f"{prefix}deprecated_at__isnull": True, f"{prefix}deleted_at__isnull": True})
        return offered if value else ~offered


@strawberry_django.order_type(ModelVersion)
class ModelVersionOrder:
    number: auto
    created_at: auto

    @strawberry_django.order_field(
        description="By a metric of the version's training run; equal values newest first."
    )
    def metric(
        self, queryset: QuerySet[ModelVersion], value: MetricOrder, prefix: str
    ) -> tuple[QuerySet[ModelVersion], list[OrderBy | str]]:
        return by_metric(queryset, value, f"{prefix}run")
