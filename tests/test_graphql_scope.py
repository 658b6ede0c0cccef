"""Every GraphQL type backed by a model is scoped by its selector, wherever it is reached."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser
from strawberry_django.utils.typing import get_django_definition

from bedrock.accounts.services import api_token_create
from bedrock.events.models import Event, EventKind, Webhook, WebhookDelivery
from bedrock.graphql.types import ScopedType
from bedrock.models.models import ModelVersion
from bedrock.pipelines.models import Role
from bedrock.runs.models import Run, RunStatus, RunStep
from bedrock.schema import schema
from bedrock.secrets.models import Secret
from tests import factories

pytestmark = pytest.mark.django_db


def model_types() -> list[type]:
    """Every strawberry-django type the schema can return, found by walking the schema."""
    found = []
    for concrete in schema.schema_converter.type_map.values():
        definition = concrete.definition
        origin = getattr(definition, "origin", None)
        if getattr(definition, "is_input", True):  # filters and orderings return no rows
            continue
        if get_django_definition(origin) is not None:
            found.append(origin)
    return found


def info_for(user, run: Run | None = None) -> SimpleNamespace:
    request = SimpleNamespace(user=user, bedrock_run=run)
    return SimpleNamespace(context=SimpleNamespace(request=request))


@pytest.fixture
def owner():
    """A project admin with one row of every model the schema exposes."""
    owner = factories.user("owner")
    project = factories.project()
    factories.member(project, owner, Role.ADMIN)
    pipeline = factories.pipeline(project)
    run = Run.objects.create(pipeline=pipeline, number=1, ref="main", status=RunStatus.SUCCEEDED)
    RunStep.objects.create(run=run, name="train", position=0)
    factories.metric(run, "auc", [0.9])
    factories.chart(run, thresholds=[0.5], tp=[1], fp=[0], tn=[1], fn=[0])
    ModelVersion.objects.create(
        model=pipeline.model,
        number=1,
        run=run,
        storage_key="k",
        size=1,
        sha256="0" * 64,
        file_count=1,
    )
    Secret.objects.create(pipeline=pipeline, name="TOKEN", value="s3cret-value")
    api_token_create(user=owner, name="ci")
    webhook = Webhook.objects.create(project=project, url="https://93.184.215.14/", secret="s")
    event = Event.objects.create(project=project, kind=EventKind.RUN_FINISHED)
    WebhookDelivery.objects.create(webhook=webhook, event=event)
    return owner


def test_the_walk_finds_the_schema_types_backed_by_models():
    names = {cls.__name__ for cls in model_types()}
    assert {"ProjectType", "PipelineType", "RunType", "RunStepType", "ModelType"} <= names
    assert {"ModelVersionType", "SecretType", "ApiTokenType"} <= names
    assert {"MetricType", "ChartType"} <= names


@pytest.mark.parametrize("cls", model_types(), ids=lambda cls: cls.__name__)
def test_every_type_backed_by_a_model_is_scoped_by_a_selector(cls):
    assert issubclass(cls, ScopedType), (
        f"{cls.__name__} can be listed unscoped: derive it from bedrock.graphql.types.ScopedType "
        "with its model's selector."
    )


@pytest.mark.parametrize("cls", model_types(), ids=lambda cls: cls.__name__)
def test_an_outsider_gets_no_row_of_any_type(owner, cls):
    model = get_django_definition(cls).model
    outsider = factories.user("outsider")

    assert cls.get_queryset(model.objects.all(), info_for(owner)).exists()
    assert not cls.get_queryset(model.objects.all(), info_for(outsider)).exists()
    assert not cls.get_queryset(model.objects.all(), info_for(AnonymousUser())).exists()


@pytest.mark.parametrize("cls", model_types(), ids=lambda cls: cls.__name__)
def test_a_run_token_gets_no_row_of_another_projects_run(owner, cls):
    model = get_django_definition(cls).model
    elsewhere = factories.pipeline(factories.project())
    other_run = Run.objects.create(pipeline=elsewhere, number=1, ref="main")

    rows = cls.get_queryset(model.objects.all(), info_for(AnonymousUser(), run=other_run))

    assert not rows.filter(pk__in=cls.selector(owner).values("pk")).exists()


def test_a_type_declared_without_a_selector_is_refused():
    with pytest.raises(TypeError, match="has no selector"):

        class UnscopedType(ScopedType):
            pass


def test_a_run_token_reads_its_own_run_its_pipeline_project_model_steps_and_records(owner):
    run = Run.objects.get()
    token_info = info_for(AnonymousUser(), run=run)
    readable = {
        cls.__name__
        for cls in model_types()
        if cls.get_queryset(get_django_definition(cls).model.objects.all(), token_info).exists()
    }

    assert readable == {
        "RunType",
        "RunStepType",
        "PipelineType",
        "ProjectType",
        "ModelType",
        "MetricType",
        "ChartType",
    }
