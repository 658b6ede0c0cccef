from __future__ import annotations

import socket
import urllib.request

import pytest

from bedrock.runs.stepapi import api_answers, api_for_steps


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_nothing_answering_is_told_from_a_server_that_answers(live_server):
    assert api_answers(live_server.url)
    assert not api_answers(f"http://127.0.0.1:{_closed_port()}", timeout=1)
    assert not api_answers("not a url")


@pytest.mark.django_db(transaction=True)
def test_the_api_served_for_steps_serves_the_package_index_and_then_stops(settings, monkeypatch):
    monkeypatch.delenv("BEDROCK_API_DOMAIN", raising=False)
    before = settings.BEDROCK_API_DOMAIN
    lines: list[str] = []
    with api_for_steps(lines.append) as address:
        assert address == settings.BEDROCK_API_DOMAIN
        with urllib.request.urlopen(f"{address}/pypi/simple/") as page:  # noqa: S310
            assert b"bdrk" in page.read()
    assert lines == [f"Steps reach the API at {address} while this runs."]
    assert before == settings.BEDROCK_API_DOMAIN
    assert not api_answers(address, timeout=1)


@pytest.mark.django_db(transaction=True)
def test_the_api_for_steps_loads_the_application_only_when_a_step_first_calls(monkeypatch):
    from bedrock.runs import stepapi

    monkeypatch.delenv("BEDROCK_API_DOMAIN", raising=False)
    loaded: list[object] = []
    original = stepapi.get_internal_wsgi_application

    def load():
        loaded.append(original())
        return loaded[-1]

    monkeypatch.setattr(stepapi, "get_internal_wsgi_application", load)
    with api_for_steps(lambda line: None) as address:
        assert not loaded
        for _ in range(2):
            with urllib.request.urlopen(f"{address}/pypi/simple/") as page:  # noqa: S310
                assert b"bdrk" in page.read()
    assert len(loaded) == 1
