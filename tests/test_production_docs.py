"""docs/production.md's environment is the one a production server can run with: `bedrock check
--deploy` reports no issue under exactly its variables (no database is reached by the checks).
Its one placeholder that is no valid value, the Fernet key, gets a generated key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "production.md"
MARK = "<!-- production-environment -->"


def documented_environment() -> dict[str, str]:
    text = DOC.read_text()
    block = re.search(re.escape(MARK) + r"\n```sh\n(.*?)```", text, re.DOTALL)
    assert block, f"{DOC} has no ```sh block after {MARK}"
    pairs = [line.split("=", 1) for line in block.group(1).splitlines() if line.strip()]
    return {name: value for name, value in pairs}


def test_the_documented_block_names_what_production_needs():
    env = documented_environment()

    for needed in ("DATABASE_URL", "BEDROCK_SECRET_KEYS", "BEDROCK_DJANGO_SECRET_KEY"):
        assert needed in env
    assert env["BEDROCK_HTTPS"] == "on"
    assert env["DATABASE_URL"].startswith("postgres://")


def test_check_deploy_is_clean_under_the_documented_environment(tmp_path):
    env = documented_environment()
    env["BEDROCK_SECRET_KEYS"] = Fernet.generate_key().decode()
    env["BEDROCK_HOME"] = str(tmp_path / "home")
    result = subprocess.run(
        [sys.executable, "-m", "bedrock.cli", "check", "--deploy"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout, result.stderr
