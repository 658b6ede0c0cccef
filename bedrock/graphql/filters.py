"""The comparisons every app's filters use.

They are our own rather than strawberry-django's lookups, which offer regular expressions: a
client could send one that keeps the database busy.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import UNSET


@strawberry.input(description="Compare an id.")
class IDFilter:
    exact: strawberry.ID | None = UNSET
    in_list: list[strawberry.ID] | None = UNSET


@strawberry.input(description="Compare a whole number.")
class IntFilter:
    exact: int | None = UNSET
    in_list: list[int] | None = UNSET
    gt: int | None = UNSET
    gte: int | None = UNSET
    lt: int | None = UNSET
    lte: int | None = UNSET


@strawberry.input(description="Compare text; case-insensitive unless `exact` or `inList`.")
class TextFilter:
    exact: str | None = UNSET
    i_exact: str | None = UNSET
    i_contains: str | None = UNSET
    i_starts_with: str | None = UNSET
    in_list: list[str] | None = UNSET


@strawberry.input(description="Compare a time; give a time zone, as in 2025-01-31T12:00:00Z.")
class DateTimeFilter:
    gt: datetime | None = UNSET
    gte: datetime | None = UNSET
    lt: datetime | None = UNSET
    lte: datetime | None = UNSET
    is_null: bool | None = UNSET


@strawberry.input(description="Compare a number.")
class FloatFilter:
    gt: float | None = UNSET
    gte: float | None = UNSET
    lt: float | None = UNSET
    lte: float | None = UNSET
