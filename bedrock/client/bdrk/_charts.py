"""The binary classifier chart: confusion matrices over a range of decision thresholds."""

import bisect
from typing import Any, Dict, List, Optional

from bdrk import _http, _values

NAME = "binary_classifier"
THRESHOLDS = [round(step * 0.05, 2) for step in range(20)]  # 0, 0.05, ..., 0.95


def binary_classifier(call: str, actual: Any, probability: Any) -> Optional[Dict[str, Any]]:
    """The chart's data, or None (with the reason printed) when the inputs cannot make one.

    Basis AI's client warned and went on when labels or probabilities were out of range, so a
    script that ran there keeps running here; a value that is not a finite number still raises.
    """
    labels = _values.as_list(call, "actual", actual)
    scores = [
        _values.check_number(call, "probability", value)
        for value in _values.as_list(call, "probability", probability)
    ]
    problem = _problem(labels, scores)
    if problem:
        _http.console(f"{call}: {problem}; the chart was not logged.")
        return None
    positives = sorted(score for label, score in zip(labels, scores) if label == 1)
    negatives = sorted(score for label, score in zip(labels, scores) if label == 0)
    chart = {"kind": NAME, "thresholds": list(THRESHOLDS), "tp": [], "fp": [], "tn": [], "fn": []}
    for threshold in THRESHOLDS:
        # Predicted positive when the probability reaches the threshold.
        fn = bisect.bisect_left(positives, threshold)
        tn = bisect.bisect_left(negatives, threshold)
        _append(chart, tp=len(positives) - fn, fp=len(negatives) - tn, tn=tn, fn=fn)
    return chart


def _problem(labels: List[Any], scores: List[float]) -> str:
    if len(labels) != len(scores):
        return f"{len(labels)} actual values but {len(scores)} probabilities"
    if not labels:
        return "no values"
    wrong = [label for label in labels if _values.plain(label) not in (0, 1)]
    if wrong:
        return f"actual values must be 0 or 1, got {wrong[0]!r}"
    outside = [score for score in scores if not 0.0 <= score <= 1.0]
    if outside:
        return f"probabilities must be between 0 and 1, got {outside[0]!r}"
    return ""


def _append(chart: Dict[str, Any], **counts: int) -> None:
    for key, count in counts.items():
        chart[key].append(count)
