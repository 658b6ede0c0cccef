from __future__ import annotations

from pathlib import Path

import pytest

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
