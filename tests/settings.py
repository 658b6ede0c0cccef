"""Settings for the test suite: Bedrock's own, made fast and isolated."""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

from bedrock.settings import *  # noqa: F403
from bedrock.settings import DATABASES, Q_CLUSTER


def _home_variable() -> str:
    """The variable holding this process's scratch home: one per pytest-xdist worker.

    Workers inherit the controller's environment, and the processes the tests start inherit a
    worker's (PYTEST_XDIST_WORKER included), so a name of its own per worker keeps each worker's
    files, database and locks apart while its children still find the same home.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"BEDROCK_TEST_HOME_{worker.upper()}" if worker else "BEDROCK_TEST_HOME"


# Each test session (each worker) gets its own scratch home; artefacts and Git caches never touch
# ./var. Kept in the environment so that processes the tests start use the same home.
BEDROCK_HOME = Path(
    os.environ.setdefault(_home_variable(), tempfile.mkdtemp(prefix="bedrock-test-"))
)
BEDROCK_GIT_CACHE = BEDROCK_HOME / "git"
# Tests push a commit and look at the page at once; the tests of the kept head set their own.
BEDROCK_GIT_HEAD_TTL = timedelta(0)
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(BEDROCK_HOME / "artefacts")},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
BEDROCK_SECRET_KEYS = ["X4bN-CFItAe5l87Zk3fELS7qERS4lhs3WhWSYe501ko="]
BEDROCK_ALLOW_LOCAL_REPOS = True
# The suite must pass on a machine without bubblewrap, where the local executor would refuse the
# runs of everyone but site administrators; the tests of that policy switch this off themselves.
BEDROCK_ALLOW_UNSANDBOXED = True
# django-q2 reads its settings at import time, so sync mode is set here, not per test.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}

# Run supervisors in threads of the test process, so they see the test database.
BEDROCK_SUPERVISOR = "thread"
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory: supervisor threads open their own connections to it.
    DATABASES["default"]["TEST"] = {"NAME": str(BEDROCK_HOME / "test.sqlite3")}

# Production waits between looks at the database; here a stop or a free place is seen at once.
BEDROCK_HEARTBEAT_SECONDS = 0.2
BEDROCK_SUPERVISOR_POLL_SECONDS = 0.05
BEDROCK_SLOT_POLL_SECONDS = 0.05
