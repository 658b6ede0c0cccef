"""Secrets read from files (``NAME_FILE``), one file per secret, as Nomad templates render them:
an env file would read an unquoted ``#`` as a comment and refuse a stray quote."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from bedrock import envconfig
from tests.test_checks import ROOT, bedrock_check, environment_of

DJANGO_KEY = "k3y with spaces # not a comment 'single' \"double\" =equals= $HOME"
PASSWORD = "pa#ss 'w\"rd"
DATABASE_URL = "postgres://bedrock:pa%23ss%20%27w%22rd@db.internal:5432/bedrock"
NOMAD_TOKEN = "6f1b2c3d-#-token"


@pytest.fixture
def problems(monkeypatch):
    found: list[envconfig.ConfigProblem] = []
    monkeypatch.setattr(envconfig, "PROBLEMS", found)
    return found


def test_a_file_gives_the_value_as_it_is_less_its_line_ending(tmp_path, monkeypatch, problems):
    path = tmp_path / "key"
    path.write_text(DJANGO_KEY + "\n")
    monkeypatch.setenv("SOME_KEY_FILE", str(path))
    monkeypatch.delenv("SOME_KEY", raising=False)
    assert envconfig.env_secret("SOME_KEY") == DJANGO_KEY
    path.write_text(" two lines\nkept \r\n")
    assert envconfig.env_secret("SOME_KEY") == " two lines\nkept "
    assert problems == []


def test_without_a_file_the_variable_is_read_as_before(monkeypatch, problems):
    monkeypatch.delenv("SOME_KEY_FILE", raising=False)
    monkeypatch.setenv("SOME_KEY", "  plain  ")
    assert envconfig.env_secret("SOME_KEY") == "plain"
    monkeypatch.delenv("SOME_KEY")
    assert envconfig.env_secret("SOME_KEY", "fallback") == "fallback"


def test_an_unreadable_file_or_both_set_is_a_problem_naming_the_setting(
    tmp_path, monkeypatch, problems
):
    monkeypatch.setenv("SOME_KEY_FILE", str(tmp_path / "missing"))
    monkeypatch.delenv("SOME_KEY", raising=False)
    assert envconfig.env_secret("SOME_KEY", "d") == "d"
    (path := tmp_path / "key").write_text("from file")
    monkeypatch.setenv("SOME_KEY_FILE", str(path))
    monkeypatch.setenv("SOME_KEY", "from env")
    assert envconfig.env_secret("SOME_KEY") == "from env"
    assert [p.check_id for p in problems] == ["bedrock.E014", "bedrock.E014"]
    assert "SOME_KEY_FILE=" in problems[0].message and "cannot be read" in problems[0].message
    assert "both set" in problems[1].message


def settings_with(tmp_path, **env: str) -> dict:
    """Bedrock's settings as a fresh process reads them from this environment."""
    program = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'key': s.SECRET_KEY, 'keys': s.BEDROCK_SECRET_KEYS, 'token': s.NOMAD_TOKEN, "
        "'password': s.DATABASES['default'].get('PASSWORD'), "
        "'engine': s.DATABASES['default']['ENGINE']}))"
    )
    result = bedrock_check(tmp_path, **env)  # the same environment, checked
    shell = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", program],
        cwd=ROOT,
        env=environment_of(tmp_path, env),
        capture_output=True,
        text=True,
    )
    assert shell.returncode == 0, shell.stderr
    return {"check": result, **json.loads(shell.stdout.splitlines()[-1])}


def test_each_secret_setting_reads_its_file_with_hashes_quotes_and_spaces(tmp_path):
    fernet = Fernet.generate_key().decode()
    files = {
        "BEDROCK_DJANGO_SECRET_KEY": DJANGO_KEY,
        "BEDROCK_SECRET_KEYS": fernet,
        "DATABASE_URL": DATABASE_URL,
        "NOMAD_TOKEN": NOMAD_TOKEN,
    }
    env = {}
    for name, value in files.items():
        (tmp_path / name).write_text(value + "\n")
        env[f"{name}_FILE"] = str(tmp_path / name)

    read = settings_with(tmp_path, **env)

    assert read["key"] == DJANGO_KEY and read["keys"] == [fernet]
    assert read["token"] == NOMAD_TOKEN and read["password"] == PASSWORD
    assert "bedrock.E014" not in read["check"].stderr


def test_an_unreadable_database_url_file_never_falls_back_to_sqlite(tmp_path):
    missing = str(tmp_path / "nowhere")
    read = settings_with(tmp_path, DATABASE_URL_FILE=missing, BEDROCK_SECRET_KEYS_FILE=missing)
    assert read["engine"] == "django.db.backends.dummy"
    assert read["keys"] == []  # no new key stands in for the ones the file holds
    check = read["check"]
    assert check.returncode != 0
    assert f"DATABASE_URL_FILE='{missing}' cannot be read" in check.stderr
    assert "bedrock.E014" in check.stderr and "bedrock.E002" in check.stderr
