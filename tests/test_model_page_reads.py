"""The model page reads a fixed number of rows' worth of queries, however many versions, aliases
and alias changes it shows, and the caller's membership once."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bedrock.actors import SYSTEM
from bedrock.models.aliases import model_alias_set
from bedrock.pipelines.models import PipelineKind, Role
from bedrock.runs.models import Run, RunStatus
from tests import factories
from tests.test_membership_reads import membership_reads, signed_in

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)


def model_with(versions: int):
    admin = factories.user()
    project = factories.project()
    factories.member(project, admin, Role.ADMIN)
    training = factories.pipeline(project)
    factories.pipeline(project, kind=PipelineKind.BATCH_SCORING)
    made = []
    for number in range(1, versions + 1):
        run = Run.objects.create(
            pipeline=training, number=next(_numbers), ref="main", status=RunStatus.SUCCEEDED
        )
        made.append(factories.model_version(training.model, run, number))
    for name, version in zip(("production", "staging", "champion"), made, strict=False):
        model_alias_set(actor=SYSTEM, model=training.model, name=name, version=version)
        model_alias_set(actor=SYSTEM, model=training.model, name=name, version=made[-1])
    return admin, training.model


def page_queries(admin, model) -> CaptureQueriesContext:
    client = signed_in(admin)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/models/{model.pk}/")
    assert response.status_code == 200
    return captured


def test_the_model_page_reads_as_much_for_twenty_versions_as_for_three():
    few = page_queries(*model_with(3))
    many = page_queries(*model_with(20))

    assert len(many.captured_queries) == len(few.captured_queries)
    assert membership_reads(many) == 1


def test_the_model_page_lists_its_versions_newest_first_without_sorting_by_project_and_model():
    admin, model = model_with(3)
    captured = page_queries(admin, model)

    listed = [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].startswith('SELECT "models_modelversion"."id"') and "LIMIT" in query["sql"]
    ]
    # Sorting by the project's and the model's names (the same for every version here) reads
    # and sorts all of the model's versions; by number alone it reads the page from the index.
    assert len(listed) == 1
    order = listed[0].partition("ORDER BY")[2]
    assert order.split("LIMIT")[0].strip() == '"models_modelversion"."number" DESC'
