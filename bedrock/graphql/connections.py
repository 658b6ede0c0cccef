"""The connection of lists that grow without bound, such as runs.

strawberry-django answers a root list's ``totalCount`` with ``COUNT(1) OVER ()`` on the page's own
query, which makes the database read and keep every matching row, with every selected column,
before it can return the first fifty: at 100,000 runs that is most of the request. Here the page
is read along the index of its order, and ``totalCount``, only when it is asked for, is a
``COUNT`` subquery of the page's query: it does not depend on the row, so the database counts
once, from an index, without reading the rows, and the request makes no more queries than before.
"""

from __future__ import annotations

import inspect
from typing import Any, Self

import strawberry
from django.db.models import Func, IntegerField, QuerySet, Subquery
from strawberry import Info, relay
from strawberry.relay.types import NodeIterableType
from strawberry.types.nodes import FragmentSpread, InlineFragment, Selection
from strawberry.utils.await_maybe import AwaitableOrValue
from strawberry_django.queryset import get_queryset_config
from strawberry_django.relay import DjangoListConnection

# The name strawberry-django reads a page's total from, on its first node.
TOTAL = "_strawberry_total_count"


def _selects(selection: Selection, name: str) -> bool:
    if not isinstance(selection, InlineFragment) and selection.name == name:
        return True
    if isinstance(selection, InlineFragment | FragmentSpread):
        return any(_selects(inner, name) for inner in selection.selections)
    return False


def _asks_for_total(info: Info) -> bool:
    return any(
        _selects(selection, "totalCount")
        for field in info.selected_fields
        for selection in field.selections
    )


def _counted_apart(nodes: NodeIterableType[Any], last: int | None, before: str | None) -> bool:
    """Whether the page can be read without the window: a root list, not a prefetched nested one
    (whose windows count each parent's rows in the same query), nor ``last`` without ``before``
    (which strawberry-django reads with a window of its own)."""
    if not isinstance(nodes, QuerySet):
        return False
    if get_queryset_config(nodes).optimized_by_prefetching:
        return False
    return not ((last or 0) > 0 and before is None)


def with_total(nodes: QuerySet[Any]) -> QuerySet[Any]:
    """``nodes``, each row carrying the count of them all, counted once by the database."""
    # Func rather than Count: an aggregate would make Django group the subquery by its columns.
    # COUNT(*), not COUNT(id): PostgreSQL then counts from an index alone (index-only scan).
    count = Func(template="COUNT(*)", output_field=IntegerField())
    every = nodes.order_by().annotate(total=count).values("total")
    return nodes.annotate(**{TOTAL: Subquery(every)})


@strawberry.type(name="Connection", description="A connection to a list of items.")
class CountedConnection(DjangoListConnection[relay.NodeType]):
    @classmethod
    def resolve_connection(
        cls,
        nodes: NodeIterableType[relay.NodeType],
        *,
        info: Info,
        before: str | None = None,
        after: str | None = None,
        first: int | None = None,
        last: int | None = None,
        **kwargs: Any,
    ) -> AwaitableOrValue[Self]:
        if not _counted_apart(nodes, last, before):
            return super().resolve_connection(
                nodes, info=info, before=before, after=after, first=first, last=last, **kwargs
            )
        assert isinstance(nodes, QuerySet)
        page = with_total(nodes) if _asks_for_total(info) else nodes
        # relay's own slicing of the queryset, without strawberry-django's window.
        conn = super(DjangoListConnection, cls).resolve_connection(
            page, info=info, before=before, after=after, first=first, last=last, **kwargs
        )
        if inspect.isawaitable(conn):

            async def resolved() -> Self:
                done = await conn
                done.nodes = nodes
                return done

            return resolved()
        conn.nodes = nodes
        return conn
