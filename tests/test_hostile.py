"""Steps and users acting as attackers would: every case must end in a clear error, with nothing
half-written and no run left in a state that is not true.

The sections follow the threat they answer; each case names the behaviour it holds.
"""

from __future__ import annotations

import pytest

# --- 1. A step sees its own run only -----------------------------------------------------------


# --- 2. What a run may set in a step's environment --------------------------------------------


# --- 3. Bounded work ---------------------------------------------------------------------------
# Each limit is refused up front, naming the setting; nothing half-made is left behind.


def _limits_gql(user, query: str, **variables):
    from django.test import Client

    client = Client()
    if user is not None:
        client.force_login(user)
    return client.post(
        "/graphql", {"query": query, "variables": variables}, content_type="application/json"
    )


_VALIDATE = """mutation($text: String!) { validateConfig(text: $text) { ... on ConfigCheck {
    valid problems { path message line column severity } } } }"""


def _hostile_hcl(kind: str) -> str:
    if kind == "nested lists":
        return "a = " + "[" * 100_000 + "]" * 100_000 + "\n"
    if kind == "deep braces":
        return "a " + "b {" * 50_000 + "}" * 50_000 + "\n"
    if kind == "many tokens":
        return "a = [" + ",".join(["1"] * 100_000) + "]\n"
    return "# " + "x" * 300_000 + "\n"  # oversized, though only a comment


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "setting", "where"),
    [
        ("nested lists", "BEDROCK_MAX_CONFIG_DEPTH", (1, 37)),
        ("deep braces", "BEDROCK_MAX_CONFIG_DEPTH", (1, 101)),
        ("many tokens", "BEDROCK_MAX_CONFIG_TOKENS", (1, 10_003)),
        ("oversized", "BEDROCK_MAX_CONFIG_BYTES", (None, None)),
    ],
)
def test_validate_config_answers_a_hostile_document_within_a_second_naming_the_limit(
    kind, setting, where
):
    import time

    from tests import factories

    outsider = factories.user("limits-outsider")  # a member of no project may call it
    text = _hostile_hcl(kind)
    assert len(text) >= 200_000
    started = time.process_time()
    response = _limits_gql(outsider, _VALIDATE, text=text)
    took = time.process_time() - started
    assert response.status_code == 200
    check = response.json()["data"]["validateConfig"]
    assert took < 1.0, f"{kind}: {took:.2f} s of CPU"
    assert check["valid"] is False
    [problem] = check["problems"]
    assert setting in problem["message"]
    assert (problem["line"], problem["column"]) == where


def _limits_step(name: str, extra: str = "") -> str:
    script = 'script = [{sh = ["true"]}]'
    return f'step "{name}" {{\n image = "python:3.11-slim"\n {script}\n{extra}}}\n'


_BIG = "1" * 101
# (what step "a" adds, the key refused under train.step.a, what the message says)
_OVER_LIMITS = {
    "retries": ("retry { limit = 100000 }", "retry.limit", "100000 retries are more than the 10"),
    "retries-101-digits": (f"retry {{ limit = {_BIG} }}", "retry.limit", "(BEDROCK_MAX_RETRIES)"),
    "retries-5000-digits": (
        f'retry {{ limit = "{"9" * 5000}" }}',
        "retry.limit",
        "a number of more than 30 digits retries are more than the 10 allowed",
    ),
    "cpu": (f'resources {{ cpu = "{_BIG}" }}', "resources.cpu", "(BEDROCK_MAX_STEP_CPUS)"),
    "memory": (
        f'resources {{ memory = "{_BIG}Gi" }}',
        "resources.memory",
        "is more than the 16Ti a step may ask for (BEDROCK_MAX_STEP_MEMORY)",
    ),
    "gpu": (
        f'resources {{ gpu = "{_BIG}" }}',
        "resources.gpu",
        "64 allowed (BEDROCK_MAX_STEP_GPUS)",
    ),
}


def _only_error(body: str):
    from bedrock.pipelines import spec

    errors = [p for p in spec.check(f'version = "1.0"\ntrain {{\n{body}}}\n') if p.is_error]
    assert len(errors) == 1, errors
    assert errors[0].line is not None
    return errors[0]


def test_more_steps_in_a_stanza_than_the_limit_is_a_spec_error_at_the_first_extra_step():
    error = _only_error("".join(_limits_step(f"s{i}") for i in range(101)))
    assert error.path == "train.step.s100"
    assert error.message == (
        "train has 101 steps; at most 100 are allowed in a stanza (BEDROCK_MAX_STEPS)"
    )


@pytest.mark.parametrize("case", _OVER_LIMITS)
def test_retries_and_resources_over_their_limits_are_spec_errors_naming_key_and_limit(case):
    extra, key, wanted = _OVER_LIMITS[case]
    error = _only_error(_limits_step("a", extra + "\n"))
    assert error.path == f"train.step.a.{key}"
    assert wanted in error.message


@pytest.mark.django_db
def test_a_run_asking_for_100000_retries_is_rejected_before_any_step_exists(tmp_path):
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with

    text = hcl("train", step("a", "true", extra="retry { limit = 100000 }"))
    run = run_create(actor=None, pipeline=pipeline_for(repo_with(tmp_path, text)))
    assert run.status == RunStatus.REJECTED
    assert "BEDROCK_MAX_RETRIES" in run.failure_reason
    assert "retry.limit" in run.failure_reason
    assert not run.steps.exists()


@pytest.mark.django_db
def test_a_graphql_body_over_the_limit_is_a_graphql_error_not_an_html_page(settings):
    settings.BEDROCK_MAX_REQUEST_BYTES = 10_000
    response = _limits_gql(None, _VALIDATE, text="x" * 20_000)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    [error] = response.json()["errors"]
    assert "request body is larger than 10000 bytes" in error["message"]
    assert "BEDROCK_MAX_REQUEST_BYTES" in error["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "bm90IGEgY3Vyc29y",  # base64 of "not a cursor"
        "YXJyYXljb25uZWN0aW9uOng=",  # "arrayconnection:x"
        "YXJyYXljb25uZWN0aW9uOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5",  # an offset past SQLite's
    ],
)
def test_a_malformed_after_cursor_is_a_validation_error(cursor):
    from tests import factories

    query = (
        "query($after: String) { pipelines(first: 1, after: $after) { edges { node { name } } } }"
    )
    response = _limits_gql(factories.user("limits-reader"), query, after=cursor)
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"].startswith(f"after: {cursor!r} is not a cursor this API returned")
    assert "expected to contain" not in error["message"]


@pytest.mark.django_db
def test_a_document_of_several_operations_needs_an_operation_name():
    from tests import factories

    user = factories.user("limits-multi")
    document = "query A { projects { totalCount } } query B { pipelines { totalCount } }"
    body = _limits_gql(user, document).json()
    assert body["data"] is None
    assert body["errors"][0]["message"] == (
        "The document holds 2 operations (A, B); say which one to run with operationName."
    )
    from django.test import Client

    client = Client()
    client.force_login(user)
    unknown = client.post(
        "/graphql", {"query": document, "operationName": "C"}, content_type="application/json"
    )
    assert unknown.status_code == 400
    assert unknown.json() == {"errors": [{"message": 'Unknown operation named "C".'}]}


# --- 4. Every run ends in a true state ---------------------------------------------------------


# --- 4b. Followers, the worker, archives, idempotency, addresses, repositories ------------------


# --- 5. Masking --------------------------------------------------------------------------------


# --- 6. Deployment -----------------------------------------------------------------------------


# --- 7. The Docker executor --------------------------------------------------------------------
