"""A metric's points, read back from its chunks, whole or thinned out for a chart."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bedrock.tracking.models import Metric, MetricChunk


@dataclass(frozen=True)
class Point:
    x: float
    value: float
    timestamp: float


# What a chunk keeps for charts: its lowest and highest point of each of 250 stretches.
PREVIEW_POINTS = 500


def points(chunks: Iterable[MetricChunk]) -> list[Point]:
    """Every point of the chunks, in the order they were logged."""
    return [
        Point(x, value, timestamp)
        for chunk in chunks
        for x, value, timestamp in zip(chunk.x, chunk.value, chunk.timestamp, strict=True)
    ]


def metric_points(metric: Metric) -> list[Point]:
    return points(metric.chunks.order_by("seq"))


def thinned(series: list[Point], limit: int) -> list[Point]:
    """At most about ``limit`` points that still show the series' shape (see `thinned_indices`)."""
    return [series[at] for at in thinned_indices([point.value for point in series], limit)]


def thinned_indices(values: list[float], limit: int) -> list[int]:
    """The positions of at most about ``limit`` points that still show the series' shape.

    The series is cut into ``limit // 2`` buckets and each keeps its lowest and highest point,
    in order, so that a spike survives; the first and last points are always kept.

    The same points, without making a ``Point`` of each point of the series first: that costs
    about a microsecond a point, 0.1 s of the page for a series of 100,000.
    """
    count = len(values)
    if count <= limit or limit < 4:
        return list(range(count))
    buckets = limit // 2
    size = count / buckets
    kept: list[int] = []
    for index in range(buckets):
        start, end = int(index * size), int((index + 1) * size)
        bucket = values[start:end]
        if bucket:
            low, high = bucket.index(min(bucket)), bucket.index(max(bucket))
            kept.extend(start + at for at in sorted({low, high}))
    if kept[0] != 0:
        kept.insert(0, 0)
    if kept[-1] != count - 1:
        kept.append(count - 1)
    return kept


def preview(x: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    """A chunk's points for charts: at most about ``PREVIEW_POINTS`` of them, chosen as
    `thinned` chooses, so that thinning the previews of a series again keeps its shape."""
    kept = thinned_indices(values, PREVIEW_POINTS)
    return [x[at] for at in kept], [values[at] for at in kept]


def new_chunk(
    metric: Metric, seq: int, x: list[float], value: list[float], timestamp: list[float]
) -> MetricChunk:
    """A chunk of ``metric``'s points with its preview, unsaved."""
    preview_x, preview_value = preview(x, value)
    return MetricChunk(
        metric=metric,
        seq=seq,
        size=len(value),
        x=x,
        value=value,
        timestamp=timestamp,
        preview_x=preview_x,
        preview_value=preview_value,
    )
