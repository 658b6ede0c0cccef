"""The short-lived ``bedrock_client.bdrk`` module of 2020, on the current implementation.

Its ``init`` took a server, a token and a project for runs started from a laptop; on Bedrock the
run comes from the environment, so those arguments are accepted and ignored.
"""

from typing import Any

import bdrk
from bdrk import _http


def init(*args: Any, **kwargs: Any) -> None:
    bdrk.init()


def start_run(*args: Any, **kwargs: Any) -> bdrk.RunContext:
    return bdrk.start_run()


def log_param(key: str, value: Any) -> None:
    bdrk.log_param(key, value)


def log_metric(key: str, value: Any, x: Any = None) -> None:
    bdrk.log_metric(key, value, x)


def log_chart_data(actual: Any, probability: Any) -> None:
    bdrk.log_classifier_chart("log_chart_data", actual, probability)


def log_model(path: str) -> str:
    return bdrk.log_model(path)


def download_model(model: Any, version: Any, path: str = "", log_dependency: bool = True) -> str:
    return bdrk.download_model(model, version, path)


def log_model_dependency(model: Any = None, version: Any = None, **kwargs: Any) -> None:
    """Accepted and ignored: this client records no upstream models."""
    _http.console(f"log_model_dependency: {model} version {version} (not recorded).")
