"""Token authentication for machine clients, beside the browser's session.

``Authorization: Bearer <token>``, or ``X-Bedrock-Access-Token: <token>`` or
``X-Bedrock-Api-Token: <token>`` as Basis AI's clients sent it (the second from inside runs). A
user's API token (``bdrk_…``) signs the request in as its user. A run's own token (``bdrkrun_…``,
given to its steps as ``BEDROCK_API_TOKEN``) signs in no one: it sets ``request.bedrock_run``,
which the API and the artefact views honour for that run alone, and it stops working when the run
ends. A token that does not work gets a 401, never the anonymous view.

The header is no ambient credential a browser sends by itself, so token requests skip CSRF.

A read-only API token is marked on the request (``request.bedrock_token_read_only``): here every
request that may write (any method but GET, HEAD and OPTIONS) is refused with a 403, except at
/graphql, whose queries come by POST too; there :class:`ReadOnlyTokens` refuses the mutations.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from strawberry.django.views import GraphQLView

from bedrock.accounts.models import hash_token
from bedrock.accounts.services import api_token_use
from bedrock.runs.models import ACTIVE_STATUSES, Run

RUN_TOKEN_PREFIX = "bdrkrun_"  # noqa: S105  (a marker, not a credential)
ACCESS_TOKEN_HEADER = "X-Bedrock-Access-Token"  # noqa: S105  (a header name)
API_TOKEN_HEADER = "X-Bedrock-Api-Token"  # noqa: S105  (a header name)
READ_ONLY_REFUSAL = "This API token is read-only."
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def token_from(request: HttpRequest) -> str | None:
    """The token the request carries, "" for an empty one, or None if it carries none."""
    authorization = request.headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    for header in (ACCESS_TOKEN_HEADER, API_TOKEN_HEADER):
        if header in request.headers:
            return request.headers[header].strip()
    return None


def _unauthorized(message: str) -> JsonResponse:
    response = JsonResponse(
        {"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]}, status=401
    )
    response["WWW-Authenticate"] = 'Bearer realm="bedrock"'
    return response


class TokenAuthenticationMiddleware:
    """Place right after AuthenticationMiddleware: a token replaces the session's user."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = token_from(request)
        user: AuthUser | AnonymousUser | None
        if token is None:
            return self.get_response(request)
        if token.startswith(RUN_TOKEN_PREFIX):
            run = (
                Run.objects.filter(token_hash=hash_token(token), status__in=ACTIVE_STATUSES)
                .exclude(token_hash="")
                .first()
            )
            if run is None:
                return _unauthorized("This run token is unknown, or its run has ended.")
            # Bedrock's own attribute, read with getattr: the stubs' HttpRequest cannot know it.
            request.bedrock_run = run  # type: ignore[attr-defined]  # not in the stubs
            user = AnonymousUser()
        else:
            found = api_token_use(token) if token else None
            if found is None:
                return _unauthorized(
                    "This API token is unknown, revoked or expired, or its user is inactive."
                )
            user = found.user
            request.bedrock_token_read_only = found.read_only  # type: ignore[attr-defined]
        request.user = user

        async def auser():
            return user

        request.auser = auser
        # Django's private flag that CsrfViewMiddleware reads; the stubs leave it out.
        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]  # not in the stubs
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        """Refuse a read-only token's writes, but at /graphql, which tells queries from
        mutations itself."""
        if not token_is_read_only(request) or request.method in SAFE_METHODS:
            return None
        view_class = getattr(view_func, "view_class", None)
        if isinstance(view_class, type) and issubclass(view_class, GraphQLView):
            return None
        return JsonResponse(
            {"errors": [{"message": READ_ONLY_REFUSAL, "extensions": {"code": "PERMISSION"}}]},
            status=403,
        )


def token_is_read_only(request: HttpRequest) -> bool:
    """Whether the request was signed in by a read-only API token."""
    return bool(getattr(request, "bedrock_token_read_only", False))
