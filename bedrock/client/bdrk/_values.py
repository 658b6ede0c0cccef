"""Checks made at the call, so that a bad value fails where it was logged, not at a later flush."""

import math
import numbers
from typing import Any, Optional

MAX_NAME = 250
MAX_PARAM_VALUE = 6000  # the server refuses the whole request beyond it, metrics included


def check_name(call: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{call}: the name must be a non-empty string, got {name!r}.")
    if len(name) > MAX_NAME:
        raise ValueError(
            f"{call}: the name {name[:40]!r}... is {len(name)} characters long; "
            f"at most {MAX_NAME} are allowed."
        )
    return name


def plain(value: Any) -> Any:
    """A numpy scalar or array, or a pandas Series, as plain Python, by duck typing."""
    if isinstance(value, (str, bytes, int, float)):
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return value


def check_number(call: str, name: str, value: Any, what: str = "value") -> float:
    value = plain(value)
    # bool is an int to Python; numbers.Real also admits Fraction and Decimal-free numerics.
    if not isinstance(value, numbers.Real):
        raise ValueError(f"{call}: {what} of {name!r} must be a finite number, got {value!r}.")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{call}: {what} of {name!r} must be a finite number, got {value!r}.")
    return number


def check_param(call: str, name: str, value: Any) -> str:
    text = str(plain(value))
    if len(text) > MAX_PARAM_VALUE:
        raise ValueError(
            f"{call}: the value of {name!r} is {len(text)} characters long; "
            f"at most {MAX_PARAM_VALUE} are allowed."
        )
    return text


def check_x(call: str, name: str, x: Any) -> Optional[float]:
    if x is None:
        return None
    return check_number(call, name, x, what="x")


def as_list(call: str, what: str, values: Any) -> list:
    values = plain(values)
    try:
        return list(values)
    except TypeError:
        raise ValueError(f"{call}: {what} must be a list of numbers, got {values!r}.") from None
