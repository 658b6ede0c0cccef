"""The image `deploy/Dockerfile` builds, as production runs it: `bedrock migrate`, an administrator,
then `bedrock serve` against PostgreSQL, and a person signing in through the login form.

It needs the image (BEDROCK_HOOK_IMAGE, which CI builds from the wheel), Docker and a PostgreSQL
server (DATABASE_URL), and skips, saying which is missing, without them; CI requires the image.
The image gets a scratch database of its own on that server, dropped at the end.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
import uuid

import pytest
import requests
from cryptography.fernet import Fernet

from tests.test_commands import free_port
from tests.test_hooks import hook_image

pytestmark = pytest.mark.slow


@pytest.fixture
def postgres_database():
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        pytest.skip("DATABASE_URL names no PostgreSQL server (CI's PostgreSQL suite sets one)")
    import psycopg

    name = f"bedrock_image_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield re.sub(r"/[^/?]+(\?|$)", f"/{name}\\1", url.split("://", 1)[1], count=1)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _docker(image: str, env: dict[str, str], *command: str, detach: str = "") -> str:
    names = [arg for key in env for arg in ("-e", key)]
    run = ["docker", "run", "--network", "host", *names]
    run += ["-d", "--name", detach] if detach else ["--rm"]
    result = subprocess.run(
        [*run, image, *command],
        env={**os.environ, **env},  # -e NAME passes the value without putting it in argv
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_image_serves_against_postgresql_and_a_person_signs_in(postgres_database):
    image = hook_image()
    password = secrets.token_urlsafe(16)
    env = {
        "DATABASE_URL": "postgres://" + postgres_database,
        "BEDROCK_SECRET_KEYS": Fernet.generate_key().decode(),
        "BEDROCK_DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_SUPERUSER_PASSWORD": password,
    }
    _docker(image, env, "bedrock", "migrate", "--noinput", "-v", "0")
    _docker(image, env, "bedrock", "createsuperuser", "--noinput", "--username", "ada", "--email",
            "ada@example.com")  # fmt: skip
    port = free_port()
    name = f"bedrock-image-test-{uuid.uuid4().hex[:8]}"
    _docker(image, env, "bedrock", "serve", f"127.0.0.1:{port}", detach=name)
    try:
        session = requests.Session()
        login = _get(session, f"http://127.0.0.1:{port}/login/")
        assert "Log in to Bedrock" in login.text
        signed_in = session.post(
            f"http://127.0.0.1:{port}/login/",
            data={
                "username": "ada",
                "password": password,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"http://127.0.0.1:{port}/login/"},
            timeout=30,
        )
        assert signed_in.status_code == 200, signed_in.text[:500]
        assert signed_in.url == f"http://127.0.0.1:{port}/", signed_in.url
        assert "ada" in signed_in.text and "Log out" in signed_in.text
        css = session.get(f"http://127.0.0.1:{port}/static/ui/bedrock.css", timeout=30)
        assert css.status_code == 200 and "text/css" in css.headers["Content-Type"]
    finally:
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stdout
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
    # gunicorn's access log, on stdout, saw the sign-in.
    assert "POST /login/" in logs


def _get(session: requests.Session, url: str) -> requests.Response:
    deadline = time.monotonic() + 90
    while True:
        try:
            return session.get(url, timeout=10)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
