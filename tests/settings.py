"""Settings for the test suite: Bedrock's own, made fast and isolated."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bedrock.settings import *  # noqa: F403
from bedrock.settings import Q_CLUSTER

# Each test session gets its own scratch home; artefacts and Git caches never touch ./var.
BEDROCK_HOME = Path(tempfile.mkdtemp(prefix="bedrock-test-"))
BEDROCK_GIT_CACHE = BEDROCK_HOME / "git"
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
# django-q2 reads its settings at import time, so sync mode is set here, not per test.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
