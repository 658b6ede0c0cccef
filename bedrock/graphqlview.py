"""How /graphql receives a request: bounded in size, and answered in GraphQL's JSON every time.

Strawberry's Django view answers what it refuses before execution (an unreadable body, an
unknown ``operationName``) with plain text, and Django answers a body over
``DATA_UPLOAD_MAX_MEMORY_SIZE`` with an HTML page; a GraphQL client can show neither. Here every
refusal is ``{"errors": [{"message": …}]}``. :class:`RequestChecks` refuses, before anything
runs, what graphql-core or the relay code would otherwise turn into a confusing message: a
document of several operations without ``operationName``, and a cursor this API never returned.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

from cross_web import HTTPException
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from graphql import ArgumentNode, GraphQLError, OperationDefinitionNode, VariableNode, visit
from graphql.language import Visitor
from strawberry.django.views import GraphQLView
from strawberry.extensions import SchemaExtension

from bedrock.envconfig import format_size

# strawberry's list connections encode an offset; a bigger one than this is no page of ours
# (and overflows SQLite's integers at 2**63).
_CURSOR = re.compile(r"arrayconnection:(\d{1,10})")
_MAX_OFFSET = 2**31
_CURSOR_ARGUMENTS = ("after", "before")


def errors_response(status: int, message: str) -> JsonResponse:
    return JsonResponse({"errors": [{"message": message}]}, status=status)


def _too_large(length: int, limit: int) -> JsonResponse:
    return errors_response(
        413,
        f"The request body is larger than {limit} bytes ({format_size(limit)}, "
        f"BEDROCK_MAX_REQUEST_BYTES); it is {length} bytes.",
    )


class BedrockGraphQLView(GraphQLView):
    """Strawberry's view, with a bounded body and JSON errors for whatever it refuses."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        limit = settings.BEDROCK_MAX_REQUEST_BYTES
        length = _content_length(request)
        if length is None:
            return errors_response(400, "The Content-Length header is not a number.")
        if length > limit:  # refused before a byte of the body is read
            return _too_large(length, limit)
        try:
            return self.run(request=request)
        except HTTPException as exc:
            return errors_response(exc.status_code, exc.reason)
        except RequestDataTooBig:
            return _too_large(length, limit)


def _content_length(request: HttpRequest) -> int | None:
    raw = request.META.get("CONTENT_LENGTH") or "0"
    return int(raw) if raw.isdigit() and len(raw) < 20 else None


class RequestChecks(SchemaExtension):
    """Refuse, before execution, documents and arguments that would fail in a confusing way."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            # strawberry's operation_name falls back to the first operation; the client's is this.
            _check_operation_name(document, context._provided_operation_name)
            _check_cursors(document, context.variables or {})
        yield


def _check_operation_name(document: Any, operation_name: str | None) -> None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) > 1 and not operation_name:
        names = ", ".join(op.name.value if op.name else "(unnamed)" for op in operations)
        raise GraphQLError(
            f"The document holds {len(operations)} operations ({names}); say which one to run "
            "with operationName."
        )


def _check_cursors(document: Any, variables: dict[str, Any]) -> None:
    arguments: list[ArgumentNode] = []

    class Collect(Visitor):
        def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
            if node.name.value in _CURSOR_ARGUMENTS:
                arguments.append(node)

    visit(document, Collect())
    for node in arguments:
        if isinstance(node.value, VariableNode):
            value = variables.get(node.value.name.value)
        else:
            value = getattr(node.value, "value", None)
        if value is not None and not is_cursor(value):
            shown = value if isinstance(value, str) and len(value) <= 60 else "the value given"
            raise GraphQLError(
                f"{node.name.value}: {shown!r} is not a cursor this API returned; pass a "
                "pageInfo.endCursor or an edge's cursor unchanged.",
                nodes=[node],
            )


def is_cursor(value: object) -> bool:
    """Whether ``value`` is a cursor of strawberry's list connections (base64 of an offset)."""
    if not isinstance(value, str) or len(value) > 64:
        return False
    try:
        text = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return False
    match = _CURSOR.fullmatch(text)
    return match is not None and int(match.group(1)) < _MAX_OFFSET
