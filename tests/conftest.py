from __future__ import annotations

from pathlib import Path

import pytest

# Storage of a test's own, local or in a bucket on S3 and GCS servers, for every test module.
from tests.buckets import (  # noqa: F401
    gcs_endpoint,
    gcs_storage,
    local_storage,
    s3_endpoint,
    s3_storage,
)

# Fixtures that start Chromium or a container of the hook image: their tests are slow ones.
SLOW_FIXTURES = frozenset({"browser", "hook_image"})

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the shared test data sits beside the checkout in CI")
    return SHARED


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def step_api(settings):
    """Bedrock's API served where a run's steps reach it, local or in a container: the example
    installs Bedrock's client from the package index the API serves, and logs to it."""
    from bedrock.runs.stepapi import api_for_steps

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1", "host.docker.internal"]
    # Every address, so that containers reach it through the bridge's gateway.
    with api_for_steps(lambda line: None, bind="0.0.0.0", force=True) as address:  # noqa: S104
        yield address
