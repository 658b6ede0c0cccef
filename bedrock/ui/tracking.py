"""What the run, model and compare pages show of the metrics, parameters and charts runs record.

A page reads the metric rows (each keeps its latest value, count and extremes) and the chunks of
only the series it charts, at most ``CHARTED_SERIES`` of them, each thinned to about
``CHART_POINTS`` points: a run with a million points costs the page a few queries and a chart of
a thousand points, not a million rows. The charts' data goes to the page as one ``json_script``
object, keyed by the ids of the figures that draw it (``static/ui/charts.js``); the tables beside
them carry every number, so the page needs no JavaScript to be read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db.models import Max, OuterRef, Subquery, Sum

from bedrock.pipelines.models import Pipeline
from bedrock.runs.models import Run
from bedrock.tracking.models import Chart, ChartKind, Metric, MetricChunk, Param
from bedrock.tracking.series import thinned_indices

CHART_POINTS = 1000
CHARTED_SERIES = 20
# The points a page reads for its charts, at most: ~0.3 s a million. A run holds at most
# BEDROCK_TRACKING_MAX_POINTS_PER_RUN (1M) but ten runs compared could hold ten times that.
CHART_READ_POINTS = 2_000_000
COMPARE_MIN = 2
COMPARE_MAX = 10
# The columns of a binary classifier's chart data, one value per threshold.
CONFUSION = ("tp", "fp", "tn", "fn")

ChartData = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Figure:
    """A chart the page draws: ``id`` keys its data in the page's chart data."""

    id: str
    title: str


@dataclass(frozen=True)
class ParamRow:
    name: str
    value: str
    logged: bool = False
    step_name: str = ""


@dataclass(frozen=True)
class ThresholdRow:
    threshold: float
    tp: float
    fp: float
    tn: float
    fn: float
    precision: float | None
    recall: float | None


@dataclass
class Classifier:
    """A binary classifier's chart: a row per threshold, or why its data cannot be shown."""

    name: str
    step_name: str
    rows: list[ThresholdRow] = field(default_factory=list)
    problem: str = ""
    figure: Figure | None = None


@dataclass(kw_only=True)
class Charted:
    """Metrics in a table, the first of them by name also charted (see ``to_chart``)."""

    metrics: list[Any]
    figures: list[Figure]
    chart_data: dict[str, ChartData]
    single_points: int = 0  # metrics of one point (in every run): a chart would draw no line

    @property
    def uncharted_note(self) -> str:
        """What the page says of the metrics it does not chart; empty when it charts them all."""
        notes = []
        if len(self.figures) + self.single_points < len(self.metrics):
            notes.append(
                f"Charted: the first {len(self.figures)} metrics by name; a page draws at most"
                f" {CHARTED_SERIES} charts, from {CHART_READ_POINTS:,} points in all."
            )
        if self.single_points:
            notes.append("A metric of a single point is in the table only.")
        return " ".join(notes)


def to_chart(items: Iterable[tuple[T, int]]) -> list[T]:
    """The items to chart, each with the points charting it reads, in order: at most
    ``CHARTED_SERIES`` of them, reading ``CHART_READ_POINTS`` together at most (one that would
    read more is passed over for the next)."""
    chosen: list[T] = []
    budget = CHART_READ_POINTS
    for item, cost in items:
        if len(chosen) == CHARTED_SERIES:
            break
        if cost <= budget:
            chosen.append(item)
            budget -= cost
    return chosen


@dataclass(kw_only=True)
class RunTracking(Charted):
    params: list[ParamRow]
    classifiers: list[Classifier]
    state: str = ""


# --- series --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """A metric's points as two arrays, read without their timestamps: a chart draws none."""

    x: list[float]
    value: list[float]


def _line(label: str, series: Series, limit: int, colour: int = 0) -> dict[str, Any]:
    """A line of a chart; ``colour`` indexes the palette, so a run keeps its colour everywhere."""
    kept = thinned_indices(series.value, limit)
    # uPlot draws x in ascending order; a step that logged its x out of order still gets a line.
    kept.sort(key=series.x.__getitem__)
    return {
        "label": label,
        "colour": colour,
        "x": [series.x[at] for at in kept],
        "y": [series.value[at] for at in kept],
    }


def _series_of(metrics: Iterable[Metric]) -> dict[int, Series]:
    """The chunks' previews of the given metrics, read in one query (a metric without any,
    none): thinned again for a chart, they keep what thinning the whole series would."""
    ids = [metric.pk for metric in metrics]
    by_metric: dict[int, Series] = defaultdict(lambda: Series([], []))
    chunks = MetricChunk.objects.filter(metric_id__in=ids).order_by("metric_id", "seq")
    # Each chunk's preview, not its points: a series of 100,000 points reads a few thousand.
    for metric_id, x, value in chunks.values_list("metric_id", "preview_x", "preview_value"):
        by_metric[metric_id].x.extend(x)
        by_metric[metric_id].value.extend(value)
    return by_metric


def _metric_chart(title: str, lines: list[dict[str, Any]]) -> ChartData:
    return {"title": title, "x_label": "step", "lines": lines}


# --- parameters and charts -----------------------------------------------------------------------
def _params(run: Run, logged: Iterable[Param]) -> list[ParamRow]:
    own = [ParamRow(name, str(value)) for name, value in sorted((run.parameters or {}).items())]
    return own + [ParamRow(p.name, p.value, logged=True, step_name=p.step_name) for p in logged]


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _threshold_rows(data: dict[str, Any]) -> list[ThresholdRow]:
    """The rows of a binary classifier's data; ValueError says what is wrong with it."""
    columns: dict[str, list] = {}
    for key in ("thresholds", *CONFUSION):
        values = data.get(key)
        if not isinstance(values, list):
            raise ValueError(f"its data has no list {key!r}")
        columns[key] = values
    if len({len(values) for values in columns.values()}) != 1:
        raise ValueError("its lists thresholds, tp, fp, tn and fn differ in length")
    rows = []
    for threshold, tp, fp, tn, fn in zip(*columns.values(), strict=True):
        tp, fp, tn, fn = (float(tp), float(fp), float(tn), float(fn))
        rows.append(
            ThresholdRow(float(threshold), tp, fp, tn, fn, _ratio(tp, tp + fp), _ratio(tp, tp + fn))
        )
    return rows


def _classifier(chart: Chart, index: int) -> tuple[Classifier, ChartData | None]:
    classifier = Classifier(name=chart.name, step_name=chart.step_name)
    try:
        classifier.rows = _threshold_rows(chart.data if isinstance(chart.data, dict) else {})
    except (TypeError, ValueError) as exc:
        classifier.problem = f"The chart {chart.name} cannot be shown: {exc}."
        return classifier, None
    classifier.figure = Figure(f"classifier-{index}", chart.name)
    thresholds = [row.threshold for row in classifier.rows]
    lines = [
        {
            "label": label,
            "colour": colour,
            "x": thresholds,
            "y": [getattr(row, label) for row in classifier.rows],
        }
        for colour, label in enumerate(("precision", "recall"))
    ]
    data = {"title": chart.name, "x_label": "threshold", "y_range": [0, 1], "lines": lines}
    return classifier, data


# --- the run page --------------------------------------------------------------------------------
def tracking_state(run_id: int) -> str:
    """A value that changes whenever the run's steps log anything, read in one query: the run
    page, following a running run, fetches its metrics again when it does."""
    mine = {"run": OuterRef("pk")}
    points = Metric.objects.filter(**mine).values("run").annotate(v=Sum("count")).values("v")
    params = Param.objects.filter(**mine).values("run").annotate(v=Max("logged_at")).values("v")
    charts = Chart.objects.filter(**mine).values("run").annotate(v=Max("logged_at")).values("v")
    row = (
        Run.objects.filter(pk=run_id)
        .values_list(Subquery(points), Subquery(params), Subquery(charts))
        .first()
    )
    return "" if row is None else " ".join(str(value or 0) for value in row)


def run_tracking(run: Run) -> RunTracking:
    """The run's metrics, parameters and charts, with the data of the charts the page draws."""
    # Read first: what is logged while the rest is read makes the page fetch it all once more.
    state = tracking_state(run.pk)
    metrics = list(Metric.objects.filter(run=run).order_by("name"))
    drawable = [metric for metric in metrics if metric.count > 1]
    charted = to_chart((metric, metric.count) for metric in drawable)
    series = _series_of(charted)
    chart_data: dict[str, ChartData] = {}
    figures = []
    for index, metric in enumerate(charted):
        figure = Figure(f"metric-{index}", metric.name)
        line = _line(metric.name, series[metric.pk], CHART_POINTS)
        chart_data[figure.id] = _metric_chart(metric.name, [line])
        figures.append(figure)
    classifiers = []
    charts = Chart.objects.filter(run=run, kind=ChartKind.BINARY_CLASSIFIER).order_by("name")
    for index, chart in enumerate(charts):
        classifier, data = _classifier(chart, index)
        if classifier.figure is not None and data is not None:
            chart_data[classifier.figure.id] = data
        classifiers.append(classifier)
    return RunTracking(
        metrics=metrics,
        params=_params(run, Param.objects.filter(run=run).order_by("name")),
        classifiers=classifiers,
        figures=figures,
        chart_data=chart_data,
        single_points=len(metrics) - len(drawable),
        state=state,
    )


# --- the compare page ----------------------------------------------------------------------------
class CompareError(ValueError):
    """The runs asked for cannot be compared; the message says why and what to tick instead."""


@dataclass(frozen=True)
class CompareRow:
    """One parameter or metric across the runs compared: a value per run, None where it has none."""

    name: str
    values: list[Any]
    logged: bool = False

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


@dataclass(kw_only=True)
class Comparison(Charted):
    runs: list[Run]
    params: list[CompareRow]


def compared_numbers(pipeline: Pipeline, asked: Sequence[str]) -> list[int]:
    """The run numbers of a compare request, checked: whole numbers, 2 to 10 of them."""
    numbers: list[int] = []
    for text in asked:
        try:
            number = int(text.strip().lstrip("#"))
        except ValueError:
            raise CompareError(f"{text!r} is not a run number.") from None
        if number not in numbers:
            numbers.append(number)
    if not COMPARE_MIN <= len(numbers) <= COMPARE_MAX:
        raise CompareError(
            f"Tick between {COMPARE_MIN} and {COMPARE_MAX} runs of {pipeline.name} to compare "
            f"them; {len(numbers)} {'was' if len(numbers) == 1 else 'were'} ticked."
        )
    return sorted(numbers)


def _runs(pipeline: Pipeline, numbers: list[int]) -> list[Run]:
    runs = list(pipeline.runs.filter(number__in=numbers).order_by("number"))
    missing = sorted(set(numbers) - {run.number for run in runs})
    if missing:
        listed = ", ".join(f"#{number}" for number in missing)
        raise CompareError(f"{pipeline.name} has no run {listed}.")
    return runs


def _param_rows(runs: list[Run]) -> list[CompareRow]:
    own = sorted({name for run in runs for name in (run.parameters or {})})
    rows = [CompareRow(name, [(run.parameters or {}).get(name) for run in runs]) for name in own]
    logged: dict[str, dict[int, str]] = defaultdict(dict)
    for param in Param.objects.filter(run__in=runs):
        logged[param.name][param.run_id] = param.value
    for name in sorted(logged):
        rows.append(CompareRow(name, [logged[name].get(run.pk) for run in runs], logged=True))
    return rows


def compare_runs(pipeline: Pipeline, asked: Sequence[str]) -> Comparison:
    """The runs of the pipeline numbered in ``asked``, side by side; CompareError if they cannot."""
    runs = _runs(pipeline, compared_numbers(pipeline, asked))
    by_name: dict[str, dict[int, Metric]] = defaultdict(dict)
    for metric in Metric.objects.filter(run__in=runs):
        by_name[metric.name][metric.run_id] = metric
    names = sorted(by_name)
    metric_rows = [
        CompareRow(name, [getattr(by_name[name].get(run.pk), "latest_value", None) for run in runs])
        for name in names
    ]
    counts = {name: [metric.count for metric in by_name[name].values()] for name in names}
    drawable = [name for name in names if max(counts[name]) > 1]
    charted = to_chart((name, sum(counts[name])) for name in drawable)
    series = _series_of(metric for name in charted for metric in by_name[name].values())
    # Each run's line is thinner the more runs share the chart, so a chart stays ~2,000 points.
    limit = max(200, 2 * CHART_POINTS // len(runs))
    figures, chart_data = [], {}
    for index, name in enumerate(charted):
        figure = Figure(f"metric-{index}", name)
        lines = [
            _line(f"#{run.number}", series[by_name[name][run.pk].pk], limit, colour)
            for colour, run in enumerate(runs)
            if run.pk in by_name[name]
        ]
        chart_data[figure.id] = _metric_chart(name, lines)
        figures.append(figure)
    return Comparison(
        runs=runs,
        params=_param_rows(runs),
        metrics=metric_rows,
        figures=figures,
        chart_data=chart_data,
        single_points=len(names) - len(drawable),
    )
