"""A new team's journey in Chromium, with runs that really run: its project, a teammate, a model
made from the pipeline form, two versions, the production alias, scoring by alias and a
one-click rollback. A site administrator only created the accounts."""

from __future__ import annotations

import re

import pytest

from bedrock.models.models import ModelVersion
from bedrock.pipelines.models import Membership, Role
from bedrock.runs.models import Run
from tests import factories
from tests.repos import make_repo
from tests.test_registry_journey import SCORE, TRAIN

pytestmark = pytest.mark.django_db(transaction=True)

RUN_TIMEOUT = 180_000  # ms


@pytest.fixture
def expect():
    from playwright.sync_api import expect

    return expect


def test_a_new_team_sets_itself_up_scores_by_alias_and_rolls_back(
    page, login, screenshot, expect, tmp_path
):
    # The site administrator's part: two accounts, nothing else.
    ada = factories.user("ada")
    factories.user("bob")
    repo = make_repo(tmp_path / "churn", {"bedrock.hcl": TRAIN, "score/bedrock.hcl": SCORE})
    login(ada)

    # Ada creates the team's project, and becomes its admin.
    page.get_by_role("link", name="Projects").click()
    page.get_by_role("link", name="New project").click()
    page.get_by_label("Name").fill("churn-team")
    page.get_by_label("Description").fill("Churn models for the retention team")
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("h1")).to_have_text("churn-team")
    screenshot("registry-01-new-project")

    # She adds Bob as a developer; someone without an account is refused by name.
    page.get_by_label("Username").fill("carol")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_text("There is no user named 'carol'.")).to_be_visible()
    screenshot("registry-02-unknown-user")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Role", exact=True).select_option("developer")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("row").filter(has_text="bob")).to_be_visible()
    assert Membership.objects.get(user__username="bob").role == Role.DEVELOPER
    screenshot("registry-02-members")

    # The training pipeline, with its model created from the same form.
    page.goto("/pipelines/new")
    page.locator("#id_project").select_option(label="churn-team")
    page.get_by_label("Name").fill("train")
    page.get_by_label("Training").check()
    page.get_by_label("Repository").fill(str(repo))
    page.get_by_label("Or a new model").fill("churn")
    screenshot("registry-03-new-pipeline")
    page.get_by_role("button", name="Check and create").click()
    expect(page.locator("h1")).to_contain_text("train")
    train_url = page.url

    # Two training runs: v1 and v2.
    for weights, number in (("one", 1), ("two", 2)):
        page.goto(train_url)
        page.get_by_role("link", name="Start run").click()
        page.get_by_label("WEIGHTS").fill(weights)
        page.get_by_role("button", name="Start run").click()
        expect(page.locator("[data-run-status]")).to_have_text("Succeeded", timeout=RUN_TIMEOUT)
        expect(page.locator("[data-run-output]")).to_have_text(f"churn v{number}")
    screenshot("registry-04-trained")
    page.locator("[data-run-output] a").click()
    model_url = page.url

    # The batch scoring pipeline, its config in a folder of the same repository.
    page.goto("/pipelines/new")
    page.locator("#id_project").select_option(label="churn-team")
    page.get_by_label("Name").fill("score")
    page.get_by_label("Batch scoring").check()
    page.get_by_label("Repository").fill(str(repo))
    page.get_by_label("Config path").fill("score/bedrock.hcl")
    page.get_by_role("button", name="Check and create").click()
    expect(page.locator("h1")).to_contain_text("score")
    score_url = page.url

    # Production points at v1, then moves to v2.
    page.goto(model_url)
    for number, note in ((1, "first release"), (2, "retrained on November")):
        aliases = page.locator("[data-alias-form]")
        aliases.get_by_label("Alias").fill("production")
        aliases.get_by_label("Version").select_option(label=f"v{number}")
        aliases.get_by_label("Note").fill(note)
        aliases.get_by_role("button", name="Set alias").click()
        expect(page.locator('tr[data-alias="production"]')).to_contain_text(f"v{number}")
    expect(page.locator("[data-alias-history] tbody tr")).to_have_count(2)
    screenshot("registry-05-alias")

    # Scoring: the form offers the alias first and chooses it.
    page.goto(score_url)
    page.get_by_role("link", name="Start run").click()
    expect(page.get_by_label("Model version")).to_have_value("churn@production")
    screenshot("registry-06-score-by-alias")
    page.get_by_role("button", name="Start run").click()
    expect(page.locator("[data-run-status]")).to_have_text("Succeeded", timeout=RUN_TIMEOUT)
    expect(page.locator("#log-score pre.log")).to_contain_text("scoring with weights-two")
    expect(page.get_by_text(re.compile(r"production → v2"))).to_be_visible()
    screenshot("registry-07-scored-with-v2")
    first_score = Run.objects.get(pipeline__name="score", number=1)
    assert first_score.input_model_version == ModelVersion.objects.get(number=2)

    # v2 misbehaves: one click puts production back on v1, and the next run scores with it.
    page.goto(model_url)
    page.get_by_role("button", name="Roll back to v1").click()
    expect(page.locator('tr[data-alias="production"]')).to_contain_text("v1")
    expect(page.locator("[data-alias-history] tbody tr").first).to_contain_text("v2 → v1")
    page.locator("#version-2").get_by_role("link", name="Edit description").click()
    page.get_by_label("Description").fill("Overfits on new customers: do not use.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#version-2")).to_contain_text("Overfits on new customers")
    screenshot("registry-08-rolled-back")
    page.goto(score_url)
    page.get_by_role("link", name="Start run").click()
    page.get_by_role("button", name="Start run").click()
    expect(page.locator("[data-run-status]")).to_have_text("Succeeded", timeout=RUN_TIMEOUT)
    expect(page.locator("#log-score pre.log")).to_contain_text("scoring with weights-one")
    first_score.refresh_from_db()
    assert first_score.input_model_version.number == 2
