"""Steps and users acting as attackers would: every case must end in a clear error, with nothing
half-written and no run left in a state that is not true.

The sections follow the threat they answer; each case names the behaviour it holds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# --- 1. A step sees its own run only -----------------------------------------------------------


# --- 2. What a run may set in a step's environment --------------------------------------------


# --- 3. Bounded work ---------------------------------------------------------------------------


# --- 4. Every run ends in a true state ---------------------------------------------------------


# --- 4b. Followers, the worker, archives, idempotency, addresses, repositories ------------------


# --- 5. Masking --------------------------------------------------------------------------------


# --- 6. Deployment -----------------------------------------------------------------------------
DJANGO_HTTPS_WARNINGS = ("security.W004", "security.W008", "security.W012", "security.W016")


def test_django_https_deploy_warnings_are_fixed_by_bedrock_https(tmp_path):
    from tests.test_checks import bedrock_check

    plain = bedrock_check(tmp_path, "--deploy")
    assert all(check_id in plain.stderr for check_id in DJANGO_HTTPS_WARNINGS), plain.stderr

    served_over_https = bedrock_check(tmp_path, "--deploy", BEDROCK_HTTPS="on")
    assert served_over_https.returncode == 0, served_over_https.stderr
    assert not [c for c in DJANGO_HTTPS_WARNINGS if c in served_over_https.stderr]

    every_hsts_choice = bedrock_check(
        tmp_path,
        "--deploy",
        BEDROCK_HTTPS="on",
        BEDROCK_HSTS_INCLUDE_SUBDOMAINS="on",
        BEDROCK_HSTS_PRELOAD="on",
        BEDROCK_LOCAL_SANDBOX="on",
    )
    if shutil.which("bwrap"):
        assert "no issues" in every_hsts_choice.stdout, every_hsts_choice.stderr


def test_https_settings_follow_the_switch(tmp_path):
    script = (
        "from django.conf import settings as s;"
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
        " s.SECURE_HSTS_SECONDS, getattr(s, 'SECURE_PROXY_SSL_HEADER', None))"
    )
    shown = bedrock_shell(tmp_path, script, BEDROCK_HTTPS="on", BEDROCK_BEHIND_HTTPS_PROXY="on")
    assert shown == "True True True 3600 ('HTTP_X_FORWARDED_PROTO', 'https')"
    assert bedrock_shell(tmp_path, script) == "False False False 0 None"


def bedrock_shell(tmp_path, script: str, **env: str) -> str:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("BEDROCK_", "DATABASE_", "NOMAD_"))
    }
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        env={**clean, "BEDROCK_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("env", "check_id", "fragment"),
    [
        (
            {"BEDROCK_LOCAL_SANDBOX": "off"},
            "bedrock.W030",
            "Only site administrators' runs will execute",
        ),
        (
            {"BEDROCK_LOCAL_SANDBOX": "off", "BEDROCK_ALLOW_UNSANDBOXED": "on"},
            "bedrock.W030",
            "can read its keys and database",
        ),
        ({"BEDROCK_DEBUG": "on"}, "bedrock.W031", "BEDROCK_DEBUG is on"),
        (
            {
                "DATABASE_URL": "postgres://bedrock@127.0.0.1:1/bedrock",
                "BEDROCK_ALLOW_LOCAL_REPOS": "on",
            },
            "bedrock.W032",
            "BEDROCK_ALLOW_LOCAL_REPOS is on with a shared database",
        ),
    ],
)
def test_check_warns_about_what_exposes_the_server(tmp_path, env, check_id, fragment):
    from tests.test_checks import bedrock_check

    result = bedrock_check(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert check_id in result.stderr
    assert fragment in result.stderr


def test_the_sandbox_warning_is_absent_where_steps_are_sandboxed_or_elsewhere(tmp_path):
    from tests.test_checks import bedrock_check

    assert "bedrock.W030" not in bedrock_check(tmp_path, BEDROCK_EXECUTOR="docker").stderr
    if shutil.which("bwrap"):
        assert "bedrock.W030" not in bedrock_check(tmp_path).stderr


# --- 7. The Docker executor --------------------------------------------------------------------
