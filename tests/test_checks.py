"""Misconfiguration is reported by `bedrock check` with stable ids, not found at the first run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


NOMAD = {"BEDROCK_EXECUTOR": "nomad", "NOMAD_ADDR": "https://nomad.internal:4646"}


def environment_of(tmp_path, env: dict[str, str]) -> dict[str, str]:
    """This process's environment without Bedrock's, Nomad's or the database's settings."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("BEDROCK_", "DATABASE_", "NOMAD_"))
    }
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    return {**clean, "BEDROCK_HOME": str(tmp_path), **env}


def bedrock_check(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=ROOT,
        env=environment_of(tmp_path, env),
        capture_output=True,
        text=True,
    )


def assert_no_issues(result: subprocess.CompletedProcess) -> None:
    """No issue at all, except that a machine without bubblewrap is told its steps are not
    sandboxed (bedrock.W030): a fresh laptop may lack it, and saying so is the point."""
    assert result.returncode == 0, result.stderr
    if shutil.which("bwrap") is None:
        assert "bedrock.W030" in result.stderr
        assert result.stderr.count("?: (") == 1, result.stderr
    else:
        assert "no issues" in result.stdout, result.stderr


def test_the_defaults_pass_every_check(tmp_path):
    assert_no_issues(bedrock_check(tmp_path))


@pytest.mark.parametrize(
    ("env", "check_id", "fragment"),
    [
        ({"DATABASE_URL": "nosuchdb://x/y"}, "bedrock.E001", "DATABASE_URL cannot be used"),
        ({"BEDROCK_SECRET_KEYS": " , "}, "bedrock.E002", "holds no key"),
        ({"BEDROCK_SECRET_KEYS": "not-a-key"}, "bedrock.E003", "Key 1 of BEDROCK_SECRET_KEYS"),
        ({"BEDROCK_EXECUTOR": "kubernetes"}, "bedrock.E004", "'kubernetes' is not an executor"),
        (
            {"BEDROCK_DEFAULT_MAX_RUN_TIME": "10d"},
            "bedrock.E005",
            "exceeds BEDROCK_MAX_RUN_TIME_CAP",
        ),
        ({"BEDROCK_EXECUTOR": "nomad"}, "bedrock.E006", "NOMAD_ADDR is not set"),
        ({"BEDROCK_STORAGE": "ftp"}, "bedrock.E007", "'ftp' is not a storage backend"),
        ({"BEDROCK_STORAGE": "s3"}, "bedrock.E023", "BEDROCK_STORAGE_BUCKET is not set"),
        (
            {
                "BEDROCK_STORAGE": "gcs",
                "BEDROCK_STORAGE_BUCKET": "models",
                "BEDROCK_GCS_CREDENTIALS": "/nonexistent/key.json",
            },
            "bedrock.E024",
            "is not a readable service-account key file",
        ),
        ({"BEDROCK_DOWNLOAD_URL_EXPIRY": "8d"}, "bedrock.E025", "is not between 1s and 7d"),
        (
            {
                "BEDROCK_EXECUTOR": "nomad",
                "NOMAD_ADDR": "https://nomad.internal:4646",
                "BEDROCK_NOMAD_LOST_AFTER": "0s",
            },
            "bedrock.E027",
            "BEDROCK_NOMAD_LOST_AFTER=0s is not a positive duration",
        ),
        ({"BEDROCK_ALLOW_LOCAL_REPOS": "maybe"}, "bedrock.E010", "is not a boolean"),
        ({"BEDROCK_MAX_RUN_TIME_CAP": "forever"}, "bedrock.E012", "is not a duration"),
        ({"BEDROCK_MAX_ARCHIVE_BYTES": "lots"}, "bedrock.E013", "is not a size such as 256Ki"),
        ({"BEDROCK_MAX_CONFIG_DEPTH": "0"}, "bedrock.E030", "refuses everything it bounds"),
        ({"BEDROCK_MAX_RETRIES": "-1"}, "bedrock.E030", "BEDROCK_MAX_RETRIES=-1"),
        ({"BEDROCK_ENV_CACHE_SIZE": "big"}, "bedrock.E013", "BEDROCK_ENV_CACHE_SIZE: 'big'"),
        ({"BEDROCK_ENV_CACHE_MAX_AGE": "soon"}, "bedrock.E012", "BEDROCK_ENV_CACHE_MAX_AGE"),
        ({"BEDROCK_ENV_CACHE_MAX_AGE": "0d"}, "bedrock.E080", "is not a positive duration"),
        (
            {**NOMAD, "BEDROCK_NOMAD_JOB_PREFIX": "bedrock.prod"},
            "bedrock.E026",
            "BEDROCK_NOMAD_JOB_PREFIX='bedrock.prod' is not 1 to 40 letters",
        ),
        (
            {**NOMAD, "BEDROCK_NOMAD_JOB_PREFIX": "b" * 41},
            "bedrock.E026",
            "Nomad would refuse the variable paths",
        ),
        ({**NOMAD, "BEDROCK_NOMAD_JOB_PREFIX": ""}, "bedrock.E026", "BEDROCK_NOMAD_JOB_PREFIX=''"),
    ],
)
def test_misconfiguration_fails_the_check_with_a_stable_id(tmp_path, env, check_id, fragment):
    result = bedrock_check(tmp_path, **env)
    assert result.returncode != 0
    assert check_id in result.stderr
    assert fragment in result.stderr


def test_a_bedrock_pythons_directory_that_does_not_exist_is_a_warning(tmp_path):
    real = tmp_path / "pythons"
    real.mkdir()

    result = bedrock_check(tmp_path, BEDROCK_PYTHONS=f"{real},/nonexistent/pythons")

    assert result.returncode == 0, result.stderr
    assert "bedrock.W060" in result.stderr
    assert "BEDROCK_PYTHONS names /nonexistent/pythons, which is not a directory" in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {
            "BEDROCK_STORAGE": "s3",
            "BEDROCK_STORAGE_BUCKET": "models",
            "BEDROCK_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "BEDROCK_S3_REGION": "us-east-1",
            "BEDROCK_S3_PATH_STYLE": "on",
        },
        {"BEDROCK_STORAGE": "gcs", "BEDROCK_STORAGE_BUCKET": "models"},
    ],
)
def test_a_complete_s3_or_gcs_configuration_passes_every_check(tmp_path, env):
    assert_no_issues(bedrock_check(tmp_path, **env))


def test_a_bad_database_url_never_falls_back_to_sqlite(tmp_path):
    bedrock_check(tmp_path, DATABASE_URL="nosuchdb://x/y")
    assert not (tmp_path / "bedrock.sqlite3").exists()
