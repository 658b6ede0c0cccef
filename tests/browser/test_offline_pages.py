"""Every page in real Chromium with the network beyond the server cut off: nothing a page loads
may come from another origin, GraphiQL included, so Bedrock works on a machine without the
internet exactly as with it.

The pages are found by following the links of the signed-in site from its home page (each page
at most once), plus the ones no link reaches from there. A request for any other origin is
refused and recorded, and the test fails naming it.
"""

from __future__ import annotations

import re
from urllib.parse import urldefrag, urlsplit

import pytest

from bedrock.events.models import Webhook
from bedrock.models.aliases import ModelAlias
from bedrock.pipelines.models import Pipeline, PipelineKind, Project
from bedrock.runs.models import Run, RunStatus, RunStep
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

# Links a crawl must not follow: they sign out, download, or stream.
_SKIP = re.compile(r"/logout|/download|\.zip$|/logs?/.*raw|/artefact")
MAX_PAGES = 80


@pytest.fixture
def world(scientist):
    """A project with a training run that published a version with metrics, an alias and a
    webhook, so that every kind of page has something to show."""
    project = Project.objects.get(name="example")
    model = project.models.get()
    pipeline = Pipeline.objects.create(
        project=project,
        name="churn-train",
        git_url="https://git.example.com/team/churn.git",
        kind=PipelineKind.TRAINING,
        model=model,
    )
    run = Run.objects.create(
        pipeline=pipeline,
        number=1,
        ref="main",
        branch="main",
        commit_sha="1" * 40,
        status=RunStatus.SUCCEEDED,
        parameters={"EPOCHS": "10"},
    )
    RunStep.objects.create(run=run, name="train", position=0, status=RunStatus.SUCCEEDED)
    factories.metric(run, "loss", [1 / (i + 1) for i in range(200)])
    version = factories.model_version(model, run)
    ModelAlias.objects.create(model=model, name="production", version=version)
    Webhook.objects.create(
        project=project, url="https://hooks.example.com/bedrock", secret="s" * 32
    )
    return {"project": project, "pipeline": pipeline, "run": run, "version": version}


def _same_site_links(page, origin: str) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    found = []
    for href in hrefs:
        url, _ = urldefrag(href)
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == origin and not _SKIP.search(parts.path):
            found.append(url)
    return found


def test_no_page_loads_anything_from_another_origin(page, login, scientist, world, live_server):
    origin = live_server.url
    elsewhere: list[str] = []

    def guard(route) -> None:
        url = route.request.url
        if url.startswith(origin + "/") or url.startswith("data:") or url.startswith("blob:"):
            route.continue_()
        else:
            elsewhere.append(f"{url} (from {page.url})")
            route.abort()

    page.context.route("**/*", guard)
    login(scientist)

    pending = [f"{origin}/", f"{origin}/graphql", f"{origin}/tokens/"]
    visited: set[str] = set()
    while pending and len(visited) < MAX_PAGES:
        url = pending.pop(0)
        if url in visited:
            continue
        visited.add(url)
        response = page.goto(url)
        assert response is not None and response.status < 500, f"{url} answered {response}"
        page.wait_for_load_state("networkidle")
        pending += [link for link in _same_site_links(page, origin) if link not in visited]

    kinds = {urlsplit(url).path.strip("/").split("/")[0] for url in visited}
    # The crawl reached the pages of every kind, not just the home page.
    assert {"projects", "pipelines", "runs", "models", "graphql", "tokens"} <= kinds, kinds
    print(f"{len(visited)} pages, none loaded anything from another origin")
    assert not elsewhere, "requests left the server:\n" + "\n".join(elsewhere)


def test_graphiql_runs_a_query_with_nothing_from_another_origin(
    page, login, scientist, world, live_server, screenshot
):
    from playwright.sync_api import expect

    elsewhere: list[str] = []
    page.context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(live_server.url + "/")
            else (elsewhere.append(route.request.url), route.abort())
        ),
    )
    login(scientist)
    page.goto("/graphql?q=" + "{ projects { edges { node { name } } } }".replace(" ", "%20"))
    expect(page.locator(".graphiql-editor").first).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/graphql") and r.request.method == "POST"):
        page.get_by_label("Execute query (Ctrl-Enter)").click()
    result = page.locator(".result-window")
    expect(result).to_contain_text('"name": "example"')
    screenshot("graphiql-offline")
    assert page.title() == "Bedrock GraphQL"
    assert not elsewhere, elsewhere
