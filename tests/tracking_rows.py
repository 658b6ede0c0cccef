"""Tracking rows made with the ORM, as the tracking endpoint stores them: a metric's summary row
with its latest value and extremes and its points in chunks; a binary classifier's chart."""

from __future__ import annotations

from bedrock.runs.models import Run
from bedrock.tracking.models import Chart, ChartKind, Metric, MetricChunk

THRESHOLDS = [round(0.05 * i, 2) for i in range(20)]


def add_metric(
    run: Run,
    name: str,
    values: list[float],
    *,
    xs: list[float] | None = None,
    step: str = "train",
    chunk_size: int = 1000,
) -> Metric:
    """A metric as the tracking endpoint stores it: the summary row and chunks of points."""
    xs = list(range(len(values))) if xs is None else xs
    metric = Metric.objects.create(
        run=run,
        name=name,
        step_name=step,
        count=len(values),
        latest_value=values[-1],
        latest_x=xs[-1],
        min_value=min(values),
        max_value=max(values),
    )
    starts = range(0, len(values), chunk_size)
    MetricChunk.objects.bulk_create(
        MetricChunk(
            metric=metric,
            seq=seq,
            size=len(values[start : start + chunk_size]),
            x=xs[start : start + chunk_size],
            value=values[start : start + chunk_size],
            timestamp=[
                1764600000.0 + i for i in range(start, min(start + chunk_size, len(values)))
            ],
        )
        for seq, start in enumerate(starts)
    )
    return metric


def add_classifier(run: Run, name: str = "binary_classifier", **data) -> Chart:
    columns = {
        "thresholds": THRESHOLDS,
        "tp": [40 - 2 * i for i in range(20)],
        "fp": [60 - 3 * i for i in range(20)],
        "tn": [3 * i for i in range(20)],
        "fn": [2 * i for i in range(20)],
    }
    columns.update(data)
    return Chart.objects.create(
        run=run,
        name=name,
        kind=ChartKind.BINARY_CLASSIFIER,
        data={"kind": "binary_classifier", **columns},
        step_name="evaluate",
    )
