"""The base of every GraphQL type backed by a model: its rows are only ever what a selector lets
the caller see.

strawberry-django asks a type's ``get_queryset`` wherever the type is listed or reached: a root
field, a connection, a nested list, and a foreign key (which it then prefetches instead of joining).
So scoping here, once, covers every path to a row, including ones added later; a type cannot be
declared without naming its selector. A type whose lists grow large also names its selector's
condition (``scope=``), which filters the list in place: the default, ``pk IN (the selector's
rows)``, reads every row the caller may see before the database can return the first page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet
from strawberry import Info

from bedrock.graphql.viewer import viewer_of
from bedrock.pipelines.selectors import User

if TYPE_CHECKING:
    from bedrock.runs.models import Run

Selector = Callable[[User], QuerySet[Any]]
Scope = Callable[[User], Q]


class ScopedType:
    """Subclass with the model's selector: ``class RunType(ScopedType, selector=runs_for)``.

    A run's own token signs in no one, so it sees nothing unless the type says which of its run's
    rows it may read, in :meth:`scope_for_run`.
    """

    selector: Selector
    scope: Scope | None = None

    def __init_subclass__(
        cls, *, selector: Selector | None = None, scope: Scope | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if scope is not None:
            cls.scope = staticmethod(scope)
        if selector is not None:
            cls.selector = staticmethod(selector)
        elif not hasattr(cls, "selector"):
            raise TypeError(
                f"{cls.__name__} has no selector: declare it as "
                f"class {cls.__name__}(ScopedType, selector=<model>s_for)."
            )

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: Info, **kwargs: Any) -> QuerySet[Any]:
        viewer = viewer_of(info)
        if viewer.run is not None:
            return cls.scope_for_run(queryset, viewer.run)
        if cls.scope is not None:
            return queryset.filter(cls.scope(viewer.user))
        return queryset.filter(pk__in=cls.selector(viewer.user).values("pk"))

    @classmethod
    def scope_for_run(cls, queryset: QuerySet[Any], run: Run) -> QuerySet[Any]:
        """The rows a run's own token may read; none unless the type says otherwise."""
        return queryset.none()
