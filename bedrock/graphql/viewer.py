"""Who is asking: a signed-in user (session or API token), a run's own token, or nobody.

``bedrock.accounts.middleware`` sets ``request.user`` for API tokens, and ``request.bedrock_run``
for a run's token, leaving the user anonymous: a run token reads only what its own run needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.core.exceptions import PermissionDenied
from strawberry import Info

from bedrock.pipelines.selectors import User

if TYPE_CHECKING:
    from bedrock.runs.models import Run


@dataclass(frozen=True)
class Viewer:
    user: User
    run: Run | None  # set only for a request carrying a run's own token

    @property
    def signed_in(self) -> bool:
        return self.user.is_authenticated and self.user.is_active


def viewer_of(info: Info) -> Viewer:
    request = info.context.request
    return Viewer(user=request.user, run=getattr(request, "bedrock_run", None))


def acting_user(info: Info) -> AuthUser:
    """The signed-in user a mutation acts for; anyone else is refused with a PERMISSION error."""
    viewer = viewer_of(info)
    if viewer.run is not None:
        raise PermissionDenied("A run's token may only read its own run; it changes nothing.")
    # A signed-in user is never anonymous; the isinstance says so to the type checker.
    if not viewer.signed_in or isinstance(viewer.user, AnonymousUser):
        raise PermissionDenied("Sign in, or send an API token as 'Authorization: Bearer <token>'.")
    return viewer.user
