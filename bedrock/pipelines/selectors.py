"""Reads scoped to a user. Views, GraphQL and commands all ask here what a user may see."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from bedrock.pipelines.models import Membership, Pipeline, Project, Role

User = AbstractBaseUser | AnonymousUser


def role_in(user: User, project: Project) -> str | None:
    """The user's role in a project; site administrators act as project admins everywhere."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def has_role(user: User, project: Project, role: str) -> bool:
    held = role_in(user, project)
    return held is not None and Role.rank(held) >= Role.rank(role)


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
