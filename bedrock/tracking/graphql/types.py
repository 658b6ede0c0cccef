"""What runs record, in GraphQL: metrics (with their thinned series), parameters and charts.

A metric's latest value, count and extremes are on its series row, so listing runs with their
metrics reads no chunk; only `points` reads them, in one prefetch for every metric listed.
"""

from __future__ import annotations

import enum
import json
from typing import TYPE_CHECKING, Any

import strawberry
import strawberry_django
from django.db.models import Prefetch, QuerySet
from strawberry import Info, auto

from bedrock.graphql.scalars import choices_enum
from bedrock.graphql.types import ScopedType
from bedrock.runs.models import Run
from bedrock.tracking.graphql.filters import ChartFilter, MetricFilter
from bedrock.tracking.models import Chart, ChartKind, Metric, Param
from bedrock.tracking.selectors import charts_for, metrics_for, params_for
from bedrock.tracking.series import Point, points, thinned

if TYPE_CHECKING:
    ChartKindEnum = ChartKind
else:
    ChartKindEnum = choices_enum(ChartKind, "ChartKind", "What a chart's data describes.")

DEFAULT_POINTS = 1000
MAX_POINTS = 10_000
# What the `points` of one request may read, over all the series it asks for: the output is
# thinned, but the stored points are read whole first.
POINTS_READ_PER_REQUEST = 2_000_000


class OwnRunRows:
    """A run's own token reads what its run recorded, as it reads the run itself."""

    @classmethod
    def scope_for_run(cls, queryset: QuerySet[Any], run: Run) -> QuerySet[Any]:
        return queryset.filter(run=run.pk)


@strawberry.type(name="MetricPoint", description="One logged value of a metric.")
class MetricPoint:
    x: float = strawberry.field(description="The step index it was logged at.")
    value: float
    timestamp: float = strawberry.field(description="When it was logged: seconds since the epoch.")


def _spend_points(info: Info, metric: Metric) -> None:
    request = info.context.request
    spent = getattr(request, "_bedrock_points_read", 0) + metric.count
    if spent > POINTS_READ_PER_REQUEST:
        raise ValueError(
            f"This request would read {spent:,} stored points for `points`, past the "
            f"{POINTS_READ_PER_REQUEST:,} one request may: ask for the points of fewer series."
        )
    request._bedrock_points_read = spent


def within(series: list[Point], limit: int) -> list[Point]:
    """At most ``limit`` points of ``series``, its shape kept for a chart.

    ``thinned`` may add the first and last points to the two per bucket it keeps, so it is asked
    for two fewer; below its smallest useful limit the points are picked evenly instead.
    """
    if len(series) <= limit:
        return series
    if limit - 2 >= 4:
        return thinned(series, limit - 2)
    if limit == 1:
        return series[-1:]
    step = (len(series) - 1) / (limit - 1)
    return [series[round(index * step)] for index in range(limit)]


@strawberry_django.type(
    Metric,
    name="Metric",
    description="A metric of a run: every value logged under one name, and its latest value.",
    filters=MetricFilter,
)
class MetricType(OwnRunRows, ScopedType, selector=metrics_for):
    name: auto
    step_name: str = strawberry_django.field(description="The step that logged it last.")
    count: auto
    latest_value: auto
    latest_x: float = strawberry_django.field(description="The step index of the latest value.")
    latest_at: auto
    min: float = strawberry_django.field(field_name="min_value")
    max: float = strawberry_django.field(field_name="max_value")

    @strawberry_django.field(
        description=f"The series in the order logged, thinned to at most `limit` points (at most "
        f"{MAX_POINTS}) that keep each stretch's lowest and highest value. One request reads at "
        f"most {POINTS_READ_PER_REQUEST:,} stored points: ask for fewer series beyond that.",
    )
    def points(self, root: Metric, info: Info, limit: int = DEFAULT_POINTS) -> list[MetricPoint]:
        if not 1 <= limit <= MAX_POINTS:
            raise ValueError(f"limit must be between 1 and {MAX_POINTS}, got {limit}.")
        _spend_points(info, root)
        # Read here, not prefetched: the budget is checked before any chunk is in memory.
        series = within(points(root.chunks.order_by("seq")), limit)
        return [MetricPoint(x=p.x, value=p.value, timestamp=p.timestamp) for p in series]


@strawberry.enum(description="Where a parameter comes from.")
class ParamSource(enum.Enum):
    RUN = strawberry.enum_value("RUN", description="The run's effective parameters.")
    STEP = strawberry.enum_value("STEP", description="Logged by a step while it ran.")


@strawberry.type(name="Param", description="A parameter of a run, and where it comes from.")
class ParamType:
    name: str
    value: str
    source: ParamSource
    step_name: str | None = strawberry.field(description="The step that logged it; null for RUN.")


class LoggedParams(OwnRunRows, ScopedType, selector=params_for):
    """The logged parameters a caller may read: not a GraphQL type, since `Param` mixes them
    with the run's own, but scoped the same way as one."""


def logged_params_prefetch(info: Info) -> Prefetch[Any]:
    return Prefetch("logged_params", queryset=LoggedParams.get_queryset(Param.objects.all(), info))


def _text(value: object) -> str:
    # Run parameters are mostly strings already; anything else reads as it was written.
    return value if isinstance(value, str) else json.dumps(value)


def run_params(run: Run) -> list[ParamType]:
    """The run's parameters by name, then the logged ones by name, a name possibly in both."""
    own = [
        ParamType(name=name, value=_text(value), source=ParamSource.RUN, step_name=None)
        for name, value in sorted(run.parameters.items())
    ]
    logged = [
        ParamType(
            name=param.name,
            value=param.value,
            source=ParamSource.STEP,
            step_name=param.step_name,
        )
        for param in run.logged_params.all()
    ]
    return own + logged


def _ratios(numerators: list[int], denominators: list[int]) -> list[float | None]:
    return [
        numerator / denominator if denominator else None
        for numerator, denominator in zip(numerators, denominators, strict=False)
    ]


def _sums(first: list[int], second: list[int]) -> list[int]:
    return [a + b for a, b in zip(first, second, strict=False)]


def _series(chart: Chart, key: str) -> list[Any]:
    found = chart.data.get(key) if isinstance(chart.data, dict) else None
    return found if isinstance(found, list) else []


@strawberry_django.type(
    Chart,
    name="Chart",
    description="Chart data a step logged. A binary classifier's is a confusion matrix at each "
    "threshold; precision, recall and false positive rate are derived from it, null where their "
    "denominator is 0.",
    filters=ChartFilter,
)
class ChartType(OwnRunRows, ScopedType, selector=charts_for):
    name: auto
    kind: ChartKindEnum
    step_name: auto

    @strawberry_django.field(only=["data"])
    def thresholds(self, root: Chart) -> list[float]:
        return _series(root, "thresholds")

    @strawberry_django.field(only=["data"], description="True positives at each threshold.")
    def tp(self, root: Chart) -> list[int]:
        return _series(root, "tp")

    @strawberry_django.field(only=["data"], description="False positives at each threshold.")
    def fp(self, root: Chart) -> list[int]:
        return _series(root, "fp")

    @strawberry_django.field(only=["data"], description="True negatives at each threshold.")
    def tn(self, root: Chart) -> list[int]:
        return _series(root, "tn")

    @strawberry_django.field(only=["data"], description="False negatives at each threshold.")
    def fn(self, root: Chart) -> list[int]:
        return _series(root, "fn")

    @strawberry_django.field(only=["data"], description="tp / (tp + fp) at each threshold.")
    def precision(self, root: Chart) -> list[float | None]:
        tp = _series(root, "tp")
        return _ratios(tp, _sums(tp, _series(root, "fp")))

    @strawberry_django.field(only=["data"], description="tp / (tp + fn) at each threshold.")
    def recall(self, root: Chart) -> list[float | None]:
        tp = _series(root, "tp")
        return _ratios(tp, _sums(tp, _series(root, "fn")))

    @strawberry_django.field(only=["data"], description="fp / (fp + tn) at each threshold.")
    def false_positive_rate(self, root: Chart) -> list[float | None]:
        fp = _series(root, "fp")
        return _ratios(fp, _sums(fp, _series(root, "tn")))
