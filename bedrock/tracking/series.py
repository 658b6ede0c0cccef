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
    """At most about ``limit`` points that still show the series' shape.

    The series is cut into ``limit // 2`` buckets and each keeps its lowest and highest point,
    in order, so that a spike survives; the first and last points are always kept.
    """
    if len(series) <= limit or limit < 4:
        return list(series)
    buckets = limit // 2
    size = len(series) / buckets
    kept: list[Point] = []
    for index in range(buckets):
        bucket = series[int(index * size) : int((index + 1) * size)]
        if not bucket:
            continue
        low = min(bucket, key=lambda point: point.value)
        high = max(bucket, key=lambda point: point.value)
        kept.extend(sorted({id(low): low, id(high): high}.values(), key=bucket.index))
    if kept[0] is not series[0]:
        kept.insert(0, series[0])
    if kept[-1] is not series[-1]:
        kept.append(series[-1])
    return kept
