"""``BedrockApi(logger)``: the first generation's entry point for metrics and charts."""

import logging
from typing import Any, Optional

import bdrk
from bdrk import _http


class BedrockApi:
    """Logs to the run this step belongs to; the logger is kept for callers that read it."""

    def __init__(self, logger: Optional[logging.Logger] = None, *args: Any, **kwargs: Any) -> None:
        self.logger = logger or logging.getLogger(__name__)

    @property
    def has_api_settings(self) -> bool:
        return _http.on_bedrock()

    def log_metric(self, key: str, value: Any, x: Any = None) -> None:
        bdrk.log_metric(key, value, x)

    def log_chart_data(self, actual: Any, probability: Any) -> None:
        """The binary classifier chart, from 0/1 labels and predicted probabilities."""
        bdrk.log_classifier_chart("log_chart_data", actual, probability)
