"""A read-only API token runs queries only: every mutation is refused here, in one place.

The middleware marks the request (``request.bedrock_token_read_only``); this extension answers
each root mutation field with a PERMISSION ``OperationInfo`` instead of running its resolver, so
a mutation added later is refused without remembering to ask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo, get_named_type
from graphql.type import GraphQLUnionType
from strawberry.extensions import SchemaExtension
from strawberry_django.fields.types import OperationInfo, OperationMessage

from bedrock.accounts.middleware import READ_ONLY_REFUSAL, token_is_read_only


class ReadOnlyTokens(SchemaExtension):
    def resolve(
        self, _next: Callable, root: Any, info: GraphQLResolveInfo, *args: str, **kwargs: Any
    ) -> Any:
        if info.parent_type is not info.schema.mutation_type:
            return _next(root, info, *args, **kwargs)
        if not token_is_read_only(info.context.request):
            return _next(root, info, *args, **kwargs)
        if _answers_operation_info(info):
            message = OperationMessage(
                kind=OperationMessage.Kind.PERMISSION, message=READ_ONLY_REFUSAL, code="read_only"
            )
            return OperationInfo(messages=[message])
        raise GraphQLError(READ_ONLY_REFUSAL, extensions={"code": "PERMISSION"})


def _answers_operation_info(info: GraphQLResolveInfo) -> bool:
    """Whether the field's type lets it answer an OperationInfo (handle_django_errors)."""
    named = get_named_type(info.return_type)
    if isinstance(named, GraphQLUnionType):
        return any(member.name == "OperationInfo" for member in named.types)
    return named.name == "OperationInfo"
