from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from bedrock.accounts.models import ApiToken, hash_token
from bedrock.accounts.services import api_token_authenticate, api_token_create, api_token_revoke
from tests import factories

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[1]


def test_createtoken_prints_the_token_alone_on_its_last_line_and_stores_only_its_hash():
    alice = factories.user("alice")
    out, err = io.StringIO(), io.StringIO()

    call_command("createtoken", "alice", stdout=out, stderr=err)

    token = out.getvalue().strip().splitlines()[-1]
    assert token.startswith("bdrk_") and " " not in token
    stored = ApiToken.objects.get(user=alice)
    assert stored.key_hash == hash_token(token)
    assert token not in {stored.key_hash, stored.prefix, stored.name}
    assert api_token_authenticate(token) == alice


def test_createtoken_for_an_unknown_user_fails_naming_the_user():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("createtoken", "nobody")


def test_a_revoked_token_no_longer_authenticates():
    alice = factories.user()
    created = api_token_create(user=alice)
    api_token_revoke(actor=alice, token=created.token)
    assert api_token_authenticate(created.plaintext) is None


def test_a_token_of_an_inactive_user_does_not_authenticate():
    alice = factories.user()
    created = api_token_create(user=alice)
    alice.is_active = False
    alice.save()
    assert api_token_authenticate(created.plaintext) is None


def test_authenticating_records_when_a_token_was_last_used():
    alice = factories.user()
    created = api_token_create(user=alice)
    assert created.token.last_used_at is None
    api_token_authenticate(created.plaintext)
    created.token.refresh_from_db()
    assert created.token.last_used_at is not None


def test_a_user_cannot_revoke_someone_elses_token():
    from django.core.exceptions import PermissionDenied

    created = api_token_create(user=factories.user())
    with pytest.raises(PermissionDenied):
        api_token_revoke(actor=factories.user(), token=created.token)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_bedrock_console_script_runs_the_same_commands_as_manage_py(tmp_path):
    env = {
        "BEDROCK_HOME": str(tmp_path),
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
    }
    bedrock = Path(sys.executable).parent / "bedrock"
    for argv in ([str(bedrock)], [sys.executable, "manage.py"]):
        migrate = subprocess.run(
            [*argv, "migrate", "--noinput"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert migrate.returncode == 0, migrate.stderr
    shell = subprocess.run(
        [
            str(bedrock),
            "shell",
            "-c",
            "from django.contrib.auth.models import User; User.objects.create_user('sched')",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert shell.returncode == 0, shell.stderr
    created = subprocess.run(
        [str(bedrock), "createtoken", "sched"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().splitlines()[-1].startswith("bdrk_")
