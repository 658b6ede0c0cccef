"""Where Bedrock keeps its files when BEDROCK_HOME is unset: per user, never in the package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import bedrock

PACKAGE = Path(bedrock.__file__).resolve().parent


def _home(tmp_path: Path, **env: str) -> Path:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BEDROCK_", "XDG_"))}
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    shown = subprocess.run(
        [sys.executable, "-c", "import bedrock.settings as s; print(s.BEDROCK_HOME)"],
        cwd=tmp_path,
        env={**clean, "HOME": str(tmp_path / "user"), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(shown.stdout.strip())


def test_the_default_home_is_the_users_data_directory(tmp_path):
    home = _home(tmp_path)

    assert home == tmp_path / "user" / ".local" / "share" / "bedrock"
    assert not home.is_relative_to(PACKAGE)


def test_xdg_data_home_moves_it(tmp_path):
    assert _home(tmp_path, XDG_DATA_HOME=str(tmp_path / "data")) == tmp_path / "data" / "bedrock"


@pytest.mark.parametrize("value", ["", "relative/data"])
def test_an_empty_or_relative_xdg_data_home_is_ignored_as_the_specification_says(tmp_path, value):
    assert (
        _home(tmp_path, XDG_DATA_HOME=value) == tmp_path / "user" / ".local" / "share" / "bedrock"
    )


def test_bedrock_home_wins(tmp_path):
    assert _home(tmp_path, BEDROCK_HOME=str(tmp_path / "h"), XDG_DATA_HOME="/x") == tmp_path / "h"
