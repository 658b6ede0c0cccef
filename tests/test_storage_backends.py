"""Model versions on the local filesystem, S3 and GCS: stored in parts, downloaded by signed URL or
by byte ranges, browsed by ranged reads of the archive's central directory.

S3 and GCS are the real protocols over HTTP: moto's server and gcp-storage-emulator, each in a
thread of the test process (tests/buckets.py). Each backend runs the whole path once: train,
publish, download, browse, batch score.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import os
import random
import re
import secrets
import subprocess
import sys
import threading
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.storage import storages
from django.test import Client

from bedrock import settings as bedrock_settings
from bedrock.accounts.models import hash_token
from bedrock.actors import SYSTEM
from bedrock.models.archive import packing
from bedrock.models.artefacts import (
    SigningUnavailableError,
    artefact_download_url,
    artefact_store,
)
from bedrock.models.models import ModelVersion
from bedrock.models.services import model_version_publish
from bedrock.pipelines.models import PipelineKind, Role
from bedrock.runs.models import Run, RunStatus
from bedrock.runs.services import run_create
from tests import factories
from tests.repos import EXAMPLE, make_repo
from tests.runflow import pipeline_for, step_log, wait_until_done

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]


# --- Endpoints ------------------------------------------------------------------------------------


# --- Data -----------------------------------------------------------------------------------------


@pytest.fixture
def artefact(tmp_path: Path) -> Path:
    """24 MiB of weights that do not compress, a CSV that does, and two small files."""
    rng = random.Random(5)
    root = tmp_path / "artefact"
    (root / "config").mkdir(parents=True)
    (root / "weights.bin").write_bytes(rng.randbytes(24 << 20))
    rows = (f"{i},{rng.choice(['a', 'bb', 'ccc'])},{rng.random():.4f}\n" for i in range(100_000))
    (root / "metrics.csv").write_text("".join(rows))
    (root / "README").write_text("churn model\n")
    (root / "config" / "params.json").write_text('{"epochs": 100}\n')
    return root


def published(directory: Path, *, model_name: str = "churn-model") -> ModelVersion:
    project = factories.project()
    pipeline = factories.pipeline(project, model=factories.model(project, model_name))
    run = Run.objects.create(pipeline=pipeline, number=1, ref="main", status=RunStatus.SUCCEEDED)
    return model_version_publish(run=run, directory=directory)


def member_of(version: ModelVersion) -> Client:
    viewer = factories.user()
    factories.member(version.model.project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


def outsider() -> Client:
    client = Client()
    client.force_login(factories.user())
    return client


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def gql(client: Client, query: str, **variables) -> dict:
    response = client.post(
        "/graphql", {"query": query, "variables": variables}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


FILES = """query($id: ID!, $offset: Int!, $limit: Int!) { modelVersion(id: $id) {
    downloadUrl files(offset: $offset, limit: $limit) {
      totalCount items { name size compressedSize url } } } }"""


def files_of(client: Client, version: ModelVersion, offset: int = 0, limit: int = 100) -> dict:
    answer = gql(client, FILES, id=str(version.pk), offset=offset, limit=limit)
    assert "errors" not in answer, answer["errors"]
    return answer["data"]["modelVersion"]["files"]


def stored_location() -> str:
    return storages["default"].location


def url_path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- Local storage: streamed downloads with Range -------------------------------------------------


def test_a_local_download_is_streamed_whole_with_its_checksum(artefact: Path):
    version = published(artefact)
    response = member_of(version).get(f"/model-versions/{version.pk}/download")
    assert response.status_code == 200
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Disposition"] == 'attachment; filename="churn-model-v1.zip"'
    assert response["X-Bedrock-SHA256"] == version.sha256
    data = body(response)
    assert int(response["Content-Length"]) == len(data) == version.size
    assert hashlib.sha256(data).hexdigest() == version.sha256


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, None),
        ("bytes=-500", -500, None),
        ("bytes=5-999999999999", 5, None),
    ],
)
def test_a_local_download_serves_the_byte_range_asked_for(artefact: Path, header, start, end):
    version = published(artefact)
    whole = (Path(stored_location()) / version.storage_key).read_bytes()
    expected = whole[start : None if end is None else end + 1]
    response = member_of(version).get(f"/model-versions/{version.pk}/download", HTTP_RANGE=header)
    assert response.status_code == 206
    first = start % len(whole)
    assert response["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(whole)}"
    assert int(response["Content-Length"]) == len(expected)
    assert body(response) == expected
    assert "X-Bedrock-SHA256" not in response  # the hash is of the whole archive


def test_a_range_past_the_end_is_unsatisfiable(artefact: Path):
    version = published(artefact)
    client = member_of(version)
    for header in (f"bytes={version.size}-", "bytes=-0"):
        response = client.get(f"/model-versions/{version.pk}/download", HTTP_RANGE=header)
        assert response.status_code == 416
        assert response["Content-Range"] == f"bytes */{version.size}"


def test_a_range_for_another_version_of_the_file_gets_the_whole_file(artefact: Path):
    version = published(artefact)
    client = member_of(version)
    url = f"/model-versions/{version.pk}/download"
    stale = client.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"0123"')
    assert stale.status_code == 200 and int(stale["Content-Length"]) == version.size
    current = client.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=f'"{version.sha256}"')
    assert current.status_code == 206
    data = body(current)
    assert len(data) == 10 and data.startswith(b"PK\x03\x04")
    several = client.get(url, HTTP_RANGE="bytes=0-9,20-29")
    assert several.status_code == 200


def test_an_outsider_gets_404_for_the_download_the_file_list_and_a_file(artefact: Path):
    version = published(artefact)
    client = outsider()
    for url in (
        f"/model-versions/{version.pk}/download",
        f"/model-versions/{version.pk}/files/",
        f"/model-versions/{version.pk}/file?name=README",
    ):
        assert client.get(url).status_code == 404, url
    answer = gql(client, FILES, id=str(version.pk), offset=0, limit=10)
    assert answer["data"] == {"modelVersion": None}


def test_an_anonymous_visitor_is_sent_to_log_in_for_the_file_list_and_a_file(artefact: Path):
    version = published(artefact)
    for url in (f"/model-versions/{version.pk}/files/", f"/model-versions/{version.pk}/file"):
        response = Client().get(url + "?name=README")
        assert response.status_code == 302 and "login" in response["Location"], url


# --- Browsing ------------------------------------------------------------------------------------


def test_the_file_list_shows_each_files_size_and_compressed_size(artefact: Path):
    version = published(artefact)
    client = member_of(version)
    files = files_of(client, version)
    with zipfile.ZipFile(Path(stored_location()) / version.storage_key) as archive:
        expected = [
            (i.filename, i.file_size, i.compress_size) for i in archive.infolist() if not i.is_dir()
        ]
    assert [(f["name"], f["size"], f["compressedSize"]) for f in files["items"]] == expected
    assert files["totalCount"] == version.file_count == 4
    metrics = next(f for f in files["items"] if f["name"] == "metrics.csv")
    assert metrics["compressedSize"] < metrics["size"] / 2  # deflated, and reported so

    page = client.get(f"/model-versions/{version.pk}/files/")
    assert page.status_code == 200
    html = page.content.decode()
    for name, _, _ in expected:
        assert f"<code>{name}</code>" in html
    assert "?name=config%2Fparams.json" in html
    assert (
        client.get(f"/models/{version.model_id}/")
        .content.decode()
        .count(f"/model-versions/{version.pk}/files/")
    )


def test_the_file_list_pages_by_offset_and_limit(artefact: Path):
    version = published(artefact)
    client = member_of(version)
    every = [f["name"] for f in files_of(client, version)["items"]]
    pages = [files_of(client, version, offset, 3) for offset in (0, 3)]
    assert [f["name"] for p in pages for f in p["items"]] == every
    assert [len(p["items"]) for p in pages] == [3, 1]
    answer = gql(client, FILES, id=str(version.pk), offset=0, limit=5000)
    assert "limit must be between 1 and 1000" in answer["errors"][0]["message"]


def test_the_file_list_page_shows_a_hundred_files_a_page(tmp_path: Path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(105):
        (root / f"part-{i:03}.txt").write_text(f"{i}\n")
    version = published(root)
    client = member_of(version)
    url = f"/model-versions/{version.pk}/files/"
    first, second = (client.get(url, {"page": n}).content.decode() for n in (1, 2))
    assert "Page 1 of 2" in first and "Page 2 of 2" in second
    assert first.count("<code>part-") == 100 and second.count("<code>part-") == 5
    assert "<code>part-099.txt</code>" in first and "<code>part-100.txt</code>" in second
    assert 'href="?page=2">Next →</a>' in first and '"disabled">← Previous<' in first
    assert 'href="?page=1">← Previous</a>' in second


def test_one_file_is_fetched_alone_under_its_base_name(artefact: Path):
    version = published(artefact)
    client = member_of(version)
    items = {f["name"]: f for f in files_of(client, version)["items"]}
    for name in ("config/params.json", "metrics.csv", "weights.bin"):
        response = client.get(url_path(items[name]["url"]))
        assert response.status_code == 200, name
        base = name.rsplit("/", 1)[-1]
        assert response["Content-Disposition"] == f'attachment; filename="{base}"'
        assert response["Content-Type"] == "application/octet-stream"
        assert int(response["Content-Length"]) == (artefact / name).stat().st_size
        pieces = list(response.streaming_content)
        assert b"".join(pieces) == (artefact / name).read_bytes()
        assert len(pieces) > 1 or len(pieces[0]) < 1 << 20  # streamed in pieces of about 1 MiB
        assert max(len(p) for p in pieces) < 2 << 20


def test_a_file_that_is_not_in_the_archive_is_a_404_and_no_name_is_a_400(artefact: Path):
    version = published(artefact)
    client = member_of(version)
    assert client.get(f"/model-versions/{version.pk}/file?name=nope.txt").status_code == 404
    assert client.get(f"/model-versions/{version.pk}/file?name=config").status_code == 404
    response = client.get(f"/model-versions/{version.pk}/file")
    assert response.status_code == 400 and b"?name=PATH" in response.content


def test_a_version_whose_archive_is_gone_shows_why(artefact: Path):
    version = published(artefact)
    storages["default"].delete(version.storage_key)
    client = member_of(version)
    assert client.get(f"/model-versions/{version.pk}/download").status_code == 404
    assert client.get(f"/model-versions/{version.pk}/file?name=README").status_code == 404
    page = client.get(f"/model-versions/{version.pk}/files/")
    assert b"missing from storage" in page.content
    answer = gql(client, FILES, id=str(version.pk), offset=0, limit=10)
    assert "missing from storage" in answer["errors"][0]["message"]


# --- Publishing one run twice at once -------------------------------------------------------------


def training_run() -> Run:
    project = factories.project()
    pipeline = factories.pipeline(project, model=factories.model(project, "churn-model"))
    return Run.objects.create(pipeline=pipeline, number=1, ref="main", status=RunStatus.RUNNING)


def model_folder(storage, run: Run) -> list[str]:
    """Every object under the run's model's folder of the storage."""
    return storage.listdir(f"models/{run.pipeline.model_id}")[1]


def two_archives(tmp_path: Path) -> tuple[Path, Path]:
    """Two /artefact directories with different content, so their archives' SHA-256 differ."""
    first, second = tmp_path / "first", tmp_path / "second"
    for root, weights in ((first, b"\x01" * 70_000), (second, b"\x02" * 90_000)):
        root.mkdir()
        (root / "weights.bin").write_bytes(weights)
        (root / "README").write_text("churn model\n")
    return first, second


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["local_storage", "s3_storage"])
def test_overlapping_publishes_of_one_run_leave_one_version_and_its_archive_alone(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A step retries its upload while the first one is still storing: the first stores, the
    retry stores, the first records its version, and only then does the retry try to record."""
    from django.db import connections

    from bedrock.models import services

    storage = request.getfixturevalue(backend)
    run = training_run()
    first, second = two_archives(tmp_path)
    real_store = services.artefact_store
    retry_stored, first_recorded = threading.Event(), threading.Event()
    retry_outcome: dict[str, object] = {}

    def publish_retry() -> None:
        try:
            retry_outcome["version"] = model_version_publish(
                run=Run.objects.get(pk=run.pk), directory=second
            )
        except BaseException as exc:
            retry_outcome["error"] = exc
        finally:
            retry_stored.set()  # never leave the first attempt waiting
            connections.close_all()

    retry = threading.Thread(target=publish_retry)

    def overlapping_store(directory: Path, key: str, **kwargs):
        stored = real_store(directory, key, **kwargs)
        if directory == first:
            retry.start()  # the retry finds no version yet: the first has not recorded one
            assert retry_stored.wait(30), "the retry never stored its archive"
        else:
            retry_stored.set()
            assert first_recorded.wait(30), "the first attempt never recorded its version"
        return stored

    monkeypatch.setattr(services, "artefact_store", overlapping_store)
    version = model_version_publish(run=run, directory=first)
    first_recorded.set()
    retry.join(30)
    assert not retry.is_alive()
    assert "error" not in retry_outcome, retry_outcome

    assert retry_outcome["version"] == version
    assert list(ModelVersion.objects.filter(run=run)) == [version]
    assert re.fullmatch(
        rf"models/{run.pipeline.model_id}/run-{run.pk}-[0-9a-f]{{12}}\.zip", version.storage_key
    )
    with storage.open(version.storage_key, "rb") as stored:
        data = stored.read()
    assert hashlib.sha256(data).hexdigest() == version.sha256 and len(data) == version.size
    assert model_folder(storage, run) == [version.storage_key.rsplit("/", 1)[1]]


def test_a_publish_that_cannot_record_its_version_deletes_its_archive_and_says_why(
    local_storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from django.db import IntegrityError

    run = training_run()
    first, _ = two_archives(tmp_path)

    def collide(**fields):
        raise IntegrityError("UNIQUE constraint failed: models_modelversion.number")

    monkeypatch.setattr(ModelVersion.objects, "create", collide)
    with pytest.raises(IntegrityError, match="UNIQUE constraint failed"):
        model_version_publish(run=run, directory=first)
    assert not ModelVersion.objects.filter(run=run).exists()
    assert model_folder(local_storage, run) == []


# --- S3 -------------------------------------------------------------------------------------------


def s3_bytes_sent(storage) -> list[int]:
    """Bytes of every GetObject answer the endpoint sent, as its Content-Length says."""
    sent: list[int] = []

    def count(http_response, **kwargs):
        sent.append(int(http_response.headers.get("Content-Length", 0)))

    storage.connection.meta.client.meta.events.register("after-call.s3.GetObject", count)
    return sent


def test_s3_download_redirects_to_a_short_lived_signed_url_named_as_the_version(
    s3_storage, artefact: Path
):
    version = published(artefact)
    response = member_of(version).get(f"/model-versions/{version.pk}/download")
    assert response.status_code == 302
    assert "no-store" in response["Cache-Control"]
    location = response["Location"]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(s3_storage.endpoint_url)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]  # SigV4, not the SigV2 fallback
    assert query["X-Amz-Expires"] == ["300"]
    with urllib.request.urlopen(location) as fetched:  # noqa: S310  (the test endpoint)
        data = fetched.read()
        disposition = fetched.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="churn-model-v1.zip"'
    assert hashlib.sha256(data).hexdigest() == version.sha256 and len(data) == version.size


@pytest.mark.parametrize(
    ("path_style", "expected"),
    [
        (True, "https://s3.example.test/models/bedrock/a/v1.zip?"),
        (False, "https://models.s3.example.test/bedrock/a/v1.zip?"),
        (None, "https://s3.example.test/models/bedrock/a/v1.zip?"),  # botocore's own choice
    ],
)
def test_s3_path_style_setting_decides_where_the_bucket_goes_in_a_signed_url(
    settings, monkeypatch: pytest.MonkeyPatch, path_style: bool | None, expected: str
):
    # A host name, not an address: botocore would pick path style for 127.0.0.1 whatever the
    # setting said. Signing is local, so the host need not exist.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    for name, value in {
        "BEDROCK_STORAGE_BUCKET": "models",
        "BEDROCK_STORAGE_PREFIX": "bedrock",
        "BEDROCK_S3_ENDPOINT_URL": "https://s3.example.test",
        "BEDROCK_S3_REGION": "eu-west-1",
        "BEDROCK_S3_PATH_STYLE": path_style,
    }.items():
        monkeypatch.setattr(bedrock_settings, name, value)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": bedrock_settings._s3_options(),
        },
    }
    url = artefact_download_url(
        "a/v1.zip", filename="churn-model-v1.zip", expiry=datetime.timedelta(minutes=5)
    )
    assert url is not None and url.startswith(expected), url
    assert "X-Amz-Signature" in parse_qs(urlsplit(url).query)


def test_s3_browsing_reads_ranges_not_the_archive(s3_storage, artefact: Path):
    version = published(artefact)
    assert version.size > 24 << 20
    client = member_of(version)
    sent = s3_bytes_sent(s3_storage)

    listed = files_of(client, version)
    readme = next(f for f in listed["items"] if f["name"] == "README")
    assert body(client.get(url_path(readme["url"]))) == b"churn model\n"

    # The archive's tail (its end records and central directory) twice, and one small header.
    assert 0 < sum(sent) < 200_000, sent
    assert len(sent) <= 6


def test_s3_upload_is_multipart_and_a_failed_pack_never_completes_an_object(
    s3_storage, artefact: Path, monkeypatch: pytest.MonkeyPatch
):
    client = s3_storage.connection.meta.client
    bucket = s3_storage.bucket_name
    # With versioning, an object completed and then deleted would leave its version behind.
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    stored = artefact_store(artefact, "good.zip")
    head = client.head_object(Bucket=bucket, Key="bedrock/good.zip")
    assert head["ETag"].strip('"').endswith(f"-{-(-stored.size // (8 << 20))}")  # 8 MiB parts

    real_chunk = packing._pack_chunk

    def fail_late(fd, entry, buffer, offset, *args):
        if offset >= 9 * packing.CHUNK_SIZE:  # after the first part went up
            raise PermissionError(13, "Permission denied", entry.path)
        return real_chunk(fd, entry, buffer, offset, *args)

    monkeypatch.setattr(packing, "_pack_chunk", fail_late)
    with pytest.raises(PermissionError):
        artefact_store(artefact, "bad.zip")
    versions = client.list_object_versions(Bucket=bucket, Prefix="bedrock/bad.zip")
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_run_token_follows_the_redirect_to_its_input_version_and_no_other(
    s3_storage, artefact: Path
):
    version = published(artefact)
    other = published(artefact, model_name="other-model")
    scoring = factories.pipeline(version.model.project, kind=PipelineKind.BATCH_SCORING)
    token = "bdrkrun_" + secrets.token_urlsafe(32)
    Run.objects.create(
        pipeline=scoring,
        number=1,
        ref="main",
        status=RunStatus.RUNNING,
        input_model_version=version,
        token_hash=hash_token(token),
    )
    client = Client(HTTP_X_BEDROCK_ACCESS_TOKEN=token)
    response = client.get(f"/model-versions/{version.pk}/download")
    assert response.status_code == 302
    with urllib.request.urlopen(response["Location"]) as fetched:  # noqa: S310
        assert hashlib.sha256(fetched.read()).hexdigest() == version.sha256
    assert client.get(f"/model-versions/{other.pk}/download").status_code == 404


# --- GCS ------------------------------------------------------------------------------------------


def gcs_bytes_sent(storage) -> list[int]:
    sent: list[int] = []

    def count(response, *args, **kwargs):
        if response.request.method == "GET" and "alt=media" in response.request.url:
            sent.append(int(response.headers.get("Content-Length", 0)))

    storage.client._http.hooks["response"].append(count)
    return sent


def test_gcs_download_redirects_to_a_short_lived_signed_url_named_as_the_version(
    gcs_storage, gcs_endpoint: str, artefact: Path
):
    version = published(artefact)
    response = member_of(version).get(f"/model-versions/{version.pk}/download")
    assert response.status_code == 302
    location = response["Location"]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{gcs_endpoint}/{gcs_storage.bucket_name}/bedrock/")
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Expires"] == ["300"]
    with urllib.request.urlopen(location) as fetched:  # noqa: S310  (the test endpoint)
        data = fetched.read()
        disposition = fetched.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="churn-model-v1.zip"'
    assert hashlib.sha256(data).hexdigest() == version.sha256


def test_gcs_upload_streams_and_a_failed_pack_leaves_no_object(
    gcs_storage, artefact: Path, monkeypatch: pytest.MonkeyPatch
):
    stored = artefact_store(artefact, "good.zip")
    assert gcs_storage.size("good.zip") == stored.size
    real_chunk = packing._pack_chunk

    def fail_late(fd, entry, buffer, offset, *args):
        if offset >= 9 * packing.CHUNK_SIZE:  # after the first parts went up
            raise PermissionError(13, "Permission denied", entry.path)
        return real_chunk(fd, entry, buffer, offset, *args)

    monkeypatch.setattr(packing, "_pack_chunk", fail_late)
    # Every request of the failed attempt: a completed upload would show as a final part (its
    # Content-Range states the total) answered 200, and cleanup's delete would then find it.
    requests: list[tuple[str, str, int, str]] = []

    def record(response, *args, **kwargs):
        sent = response.request
        span = sent.headers.get("Content-Range", "")
        requests.append((sent.method, urlsplit(sent.url).path, response.status_code, span))

    gcs_storage.client._http.hooks["response"].append(record)
    with pytest.raises(PermissionError):
        artefact_store(artefact, "bad.zip")
    parts = [r for r in requests if r[0] == "PUT"]
    assert len(parts) >= 1 and all(status == 308 for _, _, status, _ in parts), requests
    assert all(span.endswith("/*") for _, _, _, span in parts), requests  # none was the last
    cancels = [r for r in requests if r[0] == "DELETE" and r[1].startswith("/upload/")]
    assert len(cancels) == 1, requests  # the resumable upload was cancelled
    deletes = [r for r in requests if r[0] == "DELETE" and r[1].endswith("/o/bedrock%2Fbad.zip")]
    assert all(status == 404 for _, _, status, _ in deletes), requests  # nothing to delete
    names = [blob.name for blob in gcs_storage.bucket.list_blobs()]
    assert names == ["bedrock/good.zip"]


def user_login_credentials():
    """What `gcloud auth application-default login` gives: a token, no key, no service account."""
    from google.oauth2.credentials import Credentials

    return Credentials(token="test")  # no expiry: taken as fresh, so nothing asks Google


@pytest.fixture
def gcs_with_application_default_credentials(settings, monkeypatch: pytest.MonkeyPatch):
    """Bedrock's GCS settings without BEDROCK_GCS_CREDENTIALS, on a machine whose application
    default credentials are a user's login; BEDROCK_GCS_SIGNING_EMAIL is the test's to set."""
    import google.auth

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(
        google.auth, "default", lambda scopes=None, **kwargs: (user_login_credentials(), "test")
    )
    monkeypatch.setattr(bedrock_settings, "BEDROCK_STORAGE_BUCKET", "models")
    monkeypatch.setattr(bedrock_settings, "BEDROCK_GCS_CREDENTIALS", "")

    def configure(signing_email: str = "") -> None:
        monkeypatch.setattr(bedrock_settings, "BEDROCK_GCS_SIGNING_EMAIL", signing_email)
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "storages.backends.gcloud.GoogleCloudStorage",
                "OPTIONS": bedrock_settings._gcs_options(),
            },
        }

    return configure


def sign_for_download():
    return artefact_download_url(
        "a/v1.zip", filename="churn-model-v1.zip", expiry=datetime.timedelta(minutes=5)
    )


def test_gcs_credentials_that_cannot_sign_say_which_settings_to_set(
    gcs_with_application_default_credentials,
):
    gcs_with_application_default_credentials()
    with pytest.raises(SigningUnavailableError) as raised:
        sign_for_download()
    assert "BEDROCK_GCS_CREDENTIALS" in str(raised.value)
    assert "BEDROCK_GCS_SIGNING_EMAIL" in str(raised.value)


def test_gcs_credentials_without_a_key_and_without_iam_signing_say_which_settings_to_set(
    settings, monkeypatch: pytest.MonkeyPatch
):
    # google-cloud-storage's own refusal: the credentials were given, and no signBlob was asked.
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    options = {
        **bedrock_settings._gcs_options(),
        "bucket_name": "models",
        "project_id": "test",
        "credentials": user_login_credentials(),
        "iam_sign_blob": False,
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.gcloud.GoogleCloudStorage", "OPTIONS": options},
    }
    with pytest.raises(SigningUnavailableError, match="BEDROCK_GCS_SIGNING_EMAIL") as raised:
        sign_for_download()
    assert "BEDROCK_GCS_CREDENTIALS" in str(raised.value)


def test_gcs_signing_email_signs_download_urls_through_iam_as_that_account(
    gcs_with_application_default_credentials, monkeypatch: pytest.MonkeyPatch
):
    from google.cloud.storage import _signing

    asked: list[tuple[str, str]] = []

    def sign_blob(message, access_token, service_account_email, *args, **kwargs):
        asked.append((access_token, service_account_email))  # the IAM signBlob request
        return base64.b64encode(b"signature").decode()

    monkeypatch.setattr(_signing, "_sign_message", sign_blob)
    gcs_with_application_default_credentials("signer@p.iam.gserviceaccount.com")
    url = sign_for_download()
    assert asked == [("test", "signer@p.iam.gserviceaccount.com")]
    query = parse_qs(urlsplit(url).query)
    assert query["X-Goog-Credential"][0].startswith("signer@p.iam.gserviceaccount.com/")
    assert query["X-Goog-Signature"] == [b"signature".hex()]


def test_gcs_browsing_reads_ranges_not_the_archive(gcs_storage, artefact: Path):
    version = published(artefact)
    client = member_of(version)
    sent = gcs_bytes_sent(gcs_storage)
    listed = files_of(client, version)
    params = next(f for f in listed["items"] if f["name"] == "config/params.json")
    assert body(client.get(url_path(params["url"]))) == b'{"epochs": 100}\n'
    assert 0 < sum(sent) < 200_000, sent


# --- The whole path on each backend ---------------------------------------------------------------


def whole_path(tmp_path: Path, storage) -> None:
    """Train the example, publish, download through the redirect, browse, batch-score."""
    repo = make_repo(tmp_path / "churn", copy=EXAMPLE)
    training = pipeline_for(repo, name="churn-train")
    scoring = pipeline_for(repo, kind=PipelineKind.BATCH_SCORING, project=training.project)

    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training))
    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    version = ModelVersion.objects.get(run=run)
    assert storages["default"] is storage and storage.exists(version.storage_key)
    client = member_of(version)

    response = client.get(f"/model-versions/{version.pk}/download")
    assert response.status_code == 302
    with urllib.request.urlopen(response["Location"]) as fetched:  # noqa: S310
        archive = fetched.read()
    assert hashlib.sha256(archive).hexdigest() == version.sha256
    with zipfile.ZipFile(io.BytesIO(archive)) as unzipped:
        model_json = unzipped.read("model.json")

    files = files_of(client, version)
    names = [f["name"] for f in files["items"]]
    assert sorted(names) == ["metrics.json", "model.json", "scaling.json"]
    model_file = files["items"][names.index("model.json")]
    assert body(client.get(url_path(model_file["url"]))) == model_json
    page = client.get(f"/model-versions/{version.pk}/files/").content.decode()
    assert all(f"<code>{name}</code>" in page for name in names)

    scored = wait_until_done(
        run_create(actor=SYSTEM, pipeline=scoring, model_version_id=version.pk)
    )
    assert scored.status == RunStatus.SUCCEEDED, scored.failure_reason
    assert "scored 200 customers" in step_log(scored, "score")


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_whole_path_runs_on_s3(s3_storage, tmp_path: Path, step_api):
    whole_path(tmp_path, s3_storage)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_whole_path_runs_on_gcs(gcs_storage, tmp_path: Path, step_api):
    whole_path(tmp_path, gcs_storage)


# --- Settings -------------------------------------------------------------------------------------

SHOW_STORAGE = """
import json, django
django.setup()
from django.core.files.storage import storages
s = storages["default"]
t = getattr(s, "transfer_config", None)
print(json.dumps({
    "class": type(s).__name__, "bucket": s.bucket_name, "location": s.location,
    "endpoint": getattr(s, "endpoint_url", None), "region": getattr(s, "region_name", None),
    "addressing": getattr(s, "addressing_style", None),
    "signature": getattr(s, "signature_version", None), "overwrite": s.file_overwrite,
    "expire": getattr(s, "querystring_expire", None),
    "expiration": str(getattr(s, "expiration", "")),
    "part": getattr(t, "multipart_chunksize", None),
    "in_memory": getattr(t, "max_in_memory_upload_chunks", None),
    "chunk": getattr(s, "blob_chunk_size", None),
    "iam": getattr(s, "iam_sign_blob", None),
    "sa_email": getattr(s, "sa_email", None),
    "has_credentials": getattr(s, "credentials", None) is not None,
}))
"""


def storage_from_env(tmp_path: Path, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BEDROCK_", "DJANGO_"))}
    done = subprocess.run(
        [sys.executable, "-c", SHOW_STORAGE],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "bedrock.settings", "BEDROCK_HOME": str(tmp_path)}
        | env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_s3_settings_come_from_the_environment(tmp_path: Path):
    shown = storage_from_env(
        tmp_path,
        BEDROCK_STORAGE="s3",
        BEDROCK_STORAGE_BUCKET="models",
        BEDROCK_STORAGE_PREFIX="/bedrock/prod/",
        BEDROCK_S3_ENDPOINT_URL="https://minio.internal:9000",
        BEDROCK_S3_REGION="eu-west-1",
        BEDROCK_S3_PATH_STYLE="on",
        BEDROCK_DOWNLOAD_URL_EXPIRY="2m",
    )
    assert shown | {"expiration": None, "chunk": None, "iam": None} == {
        "class": "S3Storage",
        "bucket": "models",
        "location": "bedrock/prod",
        "endpoint": "https://minio.internal:9000",
        "region": "eu-west-1",
        "addressing": "path",
        "signature": "s3v4",
        "overwrite": False,
        "expire": 120,
        "expiration": None,
        "part": 8 << 20,
        "in_memory": 4,
        "chunk": None,
        "iam": None,
        "sa_email": None,
        "has_credentials": False,
    }


@pytest.mark.slow
def test_gcs_settings_sign_with_a_key_file_or_through_iam(tmp_path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "key.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "private_key_id": "1",
                "private_key": key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                "client_email": "bedrock@p.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    env = {"BEDROCK_STORAGE": "gcs", "BEDROCK_STORAGE_BUCKET": "models"}
    with_key = storage_from_env(tmp_path, **env, BEDROCK_GCS_CREDENTIALS=str(key_file))
    assert with_key["class"] == "GoogleCloudStorage" and with_key["bucket"] == "models"
    assert with_key["has_credentials"] and with_key["iam"] is False
    assert with_key["expiration"] == "0:05:00" and with_key["chunk"] == 8 << 20
    assert with_key["overwrite"] is False
    assert with_key["sa_email"] is None
    default = storage_from_env(tmp_path, **env)
    assert not default["has_credentials"] and default["iam"] is True
    assert default["sa_email"] is None
    signer = "signer@p.iam.gserviceaccount.com"
    for credentials in ({"BEDROCK_GCS_CREDENTIALS": str(key_file)}, {}):
        named = storage_from_env(tmp_path, **env, **credentials, BEDROCK_GCS_SIGNING_EMAIL=signer)
        assert named["iam"] is True and named["sa_email"] == signer
        assert named["has_credentials"] is bool(credentials)
