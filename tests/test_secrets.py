from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from bedrock.actors import SYSTEM
from bedrock.pipelines.models import Role
from bedrock.secrets.crypto import SecretDecryptionError
from bedrock.secrets.models import Secret
from bedrock.secrets.services import secret_delete, secret_set, secret_values_for
from tests import factories

pytestmark = pytest.mark.django_db

VALUE = "s3cr3t-value-that-must-never-leak"


def raw_value(secret: Secret) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM secrets_secret WHERE id = %s", [secret.pk])
        return cursor.fetchone()[0]


def test_the_database_column_holds_only_ciphertext():
    pipeline = factories.pipeline(factories.project())
    secret = secret_set(actor=SYSTEM, pipeline=pipeline, name="DB_PASSWORD", value=VALUE)

    stored = raw_value(secret)

    assert VALUE not in stored
    assert stored.startswith("gAAAAA")  # a Fernet token
    assert Secret.objects.get(pk=secret.pk).value == VALUE


def test_setting_a_secret_twice_replaces_its_value():
    pipeline = factories.pipeline(factories.project())
    secret_set(actor=SYSTEM, pipeline=pipeline, name="TOKEN", value="first")
    secret_set(actor=SYSTEM, pipeline=pipeline, name="TOKEN", value="second")

    assert secret_values_for(pipeline=pipeline, names=["TOKEN"]) == {"TOKEN": "second"}
    assert Secret.objects.filter(pipeline=pipeline).count() == 1


def test_a_viewer_may_not_set_or_delete_a_secret():
    project = factories.project()
    pipeline = factories.pipeline(project)
    viewer = factories.user()
    factories.member(project, viewer, Role.VIEWER)
    secret_set(actor=SYSTEM, pipeline=pipeline, name="TOKEN", value="first")

    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        secret_set(actor=viewer, pipeline=pipeline, name="TOKEN", value="second")
    with pytest.raises(PermissionDenied):
        secret_delete(actor=viewer, pipeline=pipeline, name="TOKEN")
    assert secret_values_for(pipeline=pipeline, names=["TOKEN"]) == {"TOKEN": "first"}


def test_a_secret_name_must_be_an_environment_variable_name():
    from django.core.exceptions import ValidationError

    pipeline = factories.pipeline(factories.project())
    with pytest.raises(ValidationError) as excinfo:
        secret_set(actor=SYSTEM, pipeline=pipeline, name="1-bad name", value="x")
    assert "name" in excinfo.value.message_dict
    assert not Secret.objects.exists()


def test_rotation_reencrypts_with_the_newest_key_and_old_keys_still_decrypt(settings):
    old_key = settings.BEDROCK_SECRET_KEYS[0]
    pipeline = factories.pipeline(factories.project())
    secret = secret_set(actor=SYSTEM, pipeline=pipeline, name="API_KEY", value=VALUE)
    before = raw_value(secret)

    new_key = Fernet.generate_key().decode()
    settings.BEDROCK_SECRET_KEYS = [new_key, old_key]
    assert Secret.objects.get(pk=secret.pk).value == VALUE  # old ciphertext, new key list

    out = io.StringIO()
    call_command("rotatesecrets", stdout=out)
    assert "Re-encrypted 1 secret(s)" in out.getvalue()
    after = raw_value(secret)
    assert after != before
    assert Fernet(new_key).decrypt(after.encode()).decode() == VALUE

    settings.BEDROCK_SECRET_KEYS = [new_key]  # the old key can now be dropped
    assert Secret.objects.get(pk=secret.pk).value == VALUE


def test_a_value_no_key_opens_raises_instead_of_returning_ciphertext(settings):
    pipeline = factories.pipeline(factories.project())
    secret = secret_set(actor=SYSTEM, pipeline=pipeline, name="API_KEY", value=VALUE)
    settings.BEDROCK_SECRET_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(SecretDecryptionError, match="rotatesecrets"):
        Secret.objects.get(pk=secret.pk)


def test_repr_and_str_of_a_secret_do_not_show_its_value():
    pipeline = factories.pipeline(factories.project())
    secret = secret_set(actor=SYSTEM, pipeline=pipeline, name="API_KEY", value=VALUE)
    assert VALUE not in repr(secret)
    assert VALUE not in str(secret)
