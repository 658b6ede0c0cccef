"""Moving API tokens to the accounts app keeps every token working."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from bedrock.accounts.models import TOKEN_PREFIX, hash_token
from bedrock.accounts.services import api_token_authenticate

BEFORE_THE_MOVE = [("secrets", "0001_initial")]


def migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


@pytest.mark.django_db(transaction=True)
def test_a_token_created_before_the_move_still_authenticates_after_it():
    executor = migrate(BEFORE_THE_MOVE)
    old = executor.loader.project_state(BEFORE_THE_MOVE).apps
    user = old.get_model("auth", "User").objects.create(username="sched", is_active=True)
    plaintext = TOKEN_PREFIX + "kept-across-the-move-0123456789abcdefghijkl"
    old.get_model("secrets", "ApiToken").objects.create(
        user=user, name="scheduler", prefix=plaintext[:11], key_hash=hash_token(plaintext)
    )

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    authenticated = api_token_authenticate(plaintext)
    assert authenticated is not None and authenticated.username == "sched"
