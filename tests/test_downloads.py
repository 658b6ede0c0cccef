from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from bedrock.models.models import ModelVersion
from bedrock.pipelines.models import Role
from bedrock.runs.models import Run, RunStatus
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def version():
    project = factories.project("churn")
    pipeline = factories.pipeline(project)
    pipeline.model.name = "churn-model"
    pipeline.model.save()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.json", "{}")
    key = default_storage.save("models/test/run-1.zip", ContentFile(buffer.getvalue()))
    run = Run.objects.create(pipeline=pipeline, number=1, ref="main", status=RunStatus.SUCCEEDED)
    return ModelVersion.objects.create(
        model=pipeline.model,
        number=3,
        run=run,
        storage_key=key,
        size=len(buffer.getvalue()),
        sha256="0" * 64,
        file_count=1,
    )


def test_a_member_downloads_a_version_as_a_named_attachment(client, version):
    viewer = factories.user()
    factories.member(version.model.project, viewer, Role.VIEWER)
    client.force_login(viewer)

    response = client.get(f"/model-versions/{version.pk}/download")

    assert response.status_code == 200
    assert 'filename="churn-model-v3.zip"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    assert zipfile.ZipFile(io.BytesIO(body)).namelist() == ["model.json"]


def test_an_outsider_gets_a_404_for_a_version_that_exists(client, version):
    client.force_login(factories.user())
    assert client.get(f"/model-versions/{version.pk}/download").status_code == 404


def test_an_anonymous_visitor_is_sent_to_log_in(client, version):
    response = client.get(f"/model-versions/{version.pk}/download")
    assert response.status_code == 302 and "login" in response["Location"]
