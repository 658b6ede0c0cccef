"""Filters and orderings of models and model versions."""

from __future__ import annotations

import strawberry_django
from strawberry import auto

from bedrock.graphql.filters import DateTimeFilter, IDFilter, TextFilter
from bedrock.models.models import Model, ModelVersion


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


@strawberry_django.order_type(ModelVersion)
class ModelVersionOrder:
    number: auto
    created_at: auto
