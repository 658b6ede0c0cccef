"""Reads scoped to a user. Views, GraphQL and commands all ask here what a user may see."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db.models import OuterRef, QuerySet, Subquery, Value

from bedrock.pipelines.models import Membership, Pipeline, Project, Role

User = AuthUser | AnonymousUser


def role_in(user: User, project: Project) -> str | None:
    """The user's role in a project; site administrators act as project admins everywhere."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    read = getattr(project, "_roles_read", {})
    if user.pk in read:  # read with the project, earlier in this request
        return read[user.pk]
    memberships = Membership.objects.filter(project=project, user=user).order_by()
    return memberships.values_list("role", flat=True).first()


def remember_role(project: Project, user: User, role: str | None) -> None:
    """Keep the role read with ``project`` on it, so checks later in the request ask no more."""
    project.__dict__.setdefault("_roles_read", {})[user.pk] = role


def role_allows(held: str | None, needed: str) -> bool:
    """Whether a role read once (``role_in``, ``pipeline_with_role``) grants ``needed``."""
    return held is not None and Role.rank(held) >= Role.rank(needed)


def has_role(user: User, project: Project, role: str) -> bool:
    return role_allows(role_in(user, project), role)


def role_of(user: User, project_path: str) -> Value | Subquery:
    """The user's role in the project at ``project_path``, as an annotation of the same query."""
    if not user.is_authenticated or not user.is_active:
        return Value(None)
    if user.is_superuser:
        return Value(Role.ADMIN)
    # One row at most (a user holds one role per project): without the model's ordering, which
    # would join the project and the user into the subquery only to sort that one row.
    memberships = Membership.objects.filter(project=OuterRef(project_path), user=user).order_by()
    return Subquery(memberships.values("role")[:1])


def projects_for(user: User) -> QuerySet[Project]:
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def pipelines_for(user: User, *, include_archived: bool = False) -> QuerySet[Pipeline]:
    pipelines = Pipeline.objects.select_related("project", "model").filter(
        project__in=projects_for(user)
    )
    if not include_archived:
        pipelines = pipelines.filter(archived_at__isnull=True)
    return pipelines


def pipeline_with_role(user: User, pk: int) -> tuple[Pipeline, str] | None:
    """A pipeline the user may see, archived or not, and their role in its project, in one read."""
    pipeline = (
        pipelines_for(user, include_archived=True)
        .annotate(caller_role=role_of(user, "project"))
        .filter(pk=pk)
        .first()
    )
    if pipeline is None:
        return None
    remember_role(pipeline.project, user, pipeline.caller_role)
    return pipeline, pipeline.caller_role


def memberships_for(user: User) -> QuerySet[Membership]:
    """Who holds which role in the user's projects: every member may see the others."""
    return Membership.objects.select_related("user").filter(project__in=projects_for(user))
