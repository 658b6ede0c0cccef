"""Playwright in Debian's Chromium, against pytest-django's live server.

The browser is the system's `chromium` (never one Playwright downloads). Without it the browser
tests are skipped, unless BEDROCK_REQUIRE_BROWSER=1 (as in CI), where its absence is a failure.
Each test saves screenshots of the pages it checks to test-results/screenshots/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bedrock.pipelines.models import Role
from tests import factories

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str):
    if os.environ.get("BEDROCK_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and BEDROCK_REQUIRE_BROWSER=1 requires the browser tests to run")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        _unavailable("Debian's chromium is not on PATH (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[test]')")
    # Playwright's sync API keeps an asyncio loop running in this thread while it is open, so
    # Django would take the tests' own ORM calls for calls from async code and refuse them.
    # The browser lives for one module, and the allowance with it.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, settings):
    settings.BEDROCK_API_DOMAIN = live_server.url  # for the client the example installs
    context = browser.new_context(
        base_url=live_server.url,
        viewport={"width": 1280, "height": 860},
        accept_downloads=True,
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def screenshot(page):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return take


@pytest.fixture
def login(page):
    """Log a user in through the login form, the first page a visitor sees."""

    def log_in(user) -> None:
        page.goto("/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill("pw-" + user.username)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/")

    return log_in


@pytest.fixture
def scientist(transactional_db):
    """A data scientist who administers the project "example", which has a model."""
    user = factories.user("sam", first_name="Sam")
    project = factories.project("example")
    factories.member(project, user, Role.ADMIN)
    factories.model(project, "churn-model")
    return user
