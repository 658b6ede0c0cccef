"""Who a service acts for: a person, the platform itself, or staff in the Django admin.

Every service takes ``actor`` and asks here whether it may act, so that skipping the project-role
check is always written out (``actor=SYSTEM``) and never the accident of passing ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied

from bedrock.pipelines.models import Project
from bedrock.pipelines.selectors import User, has_role


@dataclass(frozen=True)
class System:
    """The platform on its own behalf: tasks, management commands, ``bedrock up``, fixtures."""

    def __repr__(self) -> str:
        return "SYSTEM"


SYSTEM = System()


@dataclass(frozen=True)
class Staff:
    """A person in the Django admin, whose write Django's model permissions already allowed.

    No project role is asked, but the person is recorded as who made the change and is held to
    the site-wide rules that depend on who someone is (only a site administrator raises a
    pipeline's maximum run time).
    """

    user: User


Actor = User | System | Staff


def _checked(actor: object) -> Actor:
    if not isinstance(actor, System | Staff | User):
        raise TypeError(
            f"actor must be a user, Staff(user) or SYSTEM, not {actor!r}: "
            "pass SYSTEM where the platform acts on its own behalf"
        )
    return actor


def require_role(actor: Actor, project: Project, role: str, refusal: str) -> None:
    """Raise PermissionDenied(``refusal``) unless ``actor`` holds ``role`` in ``project``."""
    checked = _checked(actor)
    if isinstance(checked, System | Staff):
        return
    if not has_role(checked, project, role):
        raise PermissionDenied(refusal)


def person(actor: Actor) -> User | None:
    """The signed-in person to record as who made a change, or None for the platform itself."""
    actor = _checked(actor)
    if isinstance(actor, System):
        return None
    user = actor.user if isinstance(actor, Staff) else actor
    return user if user.is_authenticated else None


def is_site_administrator(actor: Actor) -> bool:
    """The platform itself, or a superuser: exempt from the limits set for everyone else."""
    if isinstance(_checked(actor), System):
        return True
    user = actor.user if isinstance(actor, Staff) else actor
    return bool(getattr(user, "is_superuser", False))
