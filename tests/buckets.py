"""Storage of a test's own: ``local_storage`` a fresh directory; ``s3_storage`` and ``gcs_storage``
a fresh bucket over the real protocols, each server in a thread of the test process (S3 as moto's
server, GCS as gcp-storage-emulator), with Bedrock's own options. tests/conftest.py offers them
to every module."""

from __future__ import annotations

import datetime
import logging
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.storage import storages

from bedrock import settings as bedrock_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def gcs_endpoint() -> Iterator[str]:
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    # google-cloud-storage reads it when a client is created: before any storage is.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", url)
        yield url
    server.stop()


def bucket_name(prefix: str) -> str:
    return f"{prefix}-{random.randrange(10**9)}"


@pytest.fixture
def s3_storage(settings, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """Bedrock's own S3 options, with the endpoint's address; credentials from the environment."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    bucket = bucket_name("models")
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    options = {
        **bedrock_settings._s3_options(),
        "bucket_name": bucket,
        "location": "bedrock",
        "endpoint_url": s3_endpoint,
        "region_name": "us-east-1",
        "addressing_style": "path",
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    return storages["default"]


def signing_credentials():
    """Service-account credentials with a generated key: they sign URLs as on GCP. The token is
    set so that nothing asks Google's token endpoint for one; the emulator checks none."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.cloud.storage import Client as GcsClient
    from google.oauth2 import service_account

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    credentials = service_account.Credentials.from_service_account_info(
        {
            "type": "service_account",
            "project_id": "test",
            "private_key_id": "1",
            "private_key": pem,
            "client_email": "bedrock@test.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "http://127.0.0.1:9/token",
        },
        scopes=list(GcsClient.SCOPE),  # already scoped: the client keeps this very object
    )
    credentials.token = "test"
    credentials.expiry = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + (
        datetime.timedelta(days=1)
    )
    return credentials


@pytest.fixture
def gcs_storage(settings, gcs_endpoint: str):
    """Bedrock's own GCS options, with signing credentials; no custom endpoint (see stack.md)."""
    from google.cloud import storage as gcs

    bucket = bucket_name("models")
    credentials = signing_credentials()
    gcs.Client(project="test", credentials=credentials).create_bucket(bucket)
    options = {
        **bedrock_settings._gcs_options(),
        "bucket_name": bucket,
        "location": "bedrock",
        "project_id": "test",
        "credentials": credentials,
        "iam_sign_blob": False,
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.gcloud.GoogleCloudStorage", "OPTIONS": options},
    }
    return storages["default"]


@pytest.fixture
def local_storage(settings, tmp_path: Path):
    """A storage directory of this test's own, so that listing a model's folder sees no other."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "storage")},
        },
    }
    return storages["default"]
