"""The ``bedrock`` script runs ``--help``, ``validate`` and ``artefact`` without the app registry,
with the output and exit statuses Django's own dispatch gives them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.core.management import ManagementUtility

from bedrock import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "bedrock" / "examples" / "churn" / "bedrock.hcl"
# Runs the script's main() and then says which heavy modules it loaded, on stderr.
PROBE = """\
import sys
from bedrock.cli import main
try:
    main(sys.argv)
finally:
    from django.apps import apps
    heavy = ("strawberry", "strawberry_django", "django.contrib.gis", "django.contrib.admin")
    print("LOADED", [name for name in heavy if name in sys.modules], apps.ready, file=sys.stderr)
"""


def run(
    tmp_path: Path, *args: str, settings: str = "bedrock.settings"
) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BEDROCK_", "DATABASE_", "DJANGO_"))
    }
    env |= {"BEDROCK_HOME": str(tmp_path / "home"), "DJANGO_SETTINGS_MODULE": settings}
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_the_commands_django_lists_once_the_apps_are_loaded():
    assert cli.main_help_text("bedrock") == ManagementUtility(["bedrock"]).main_help_text()


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"], ["validate", str(EXAMPLE)]])
def test_help_and_validate_load_no_app(tmp_path: Path, args: list[str]):
    result = run(tmp_path, *args)

    assert result.returncode == 0, result.stderr
    assert "LOADED [] False" in result.stderr
    assert "[models]" in result.stdout or result.stdout == f"{EXAMPLE}: OK\n"


def test_artefact_pack_and_unpack_load_no_app(tmp_path: Path):
    source = tmp_path / "artefact"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "model.bin").write_bytes(b"weights" * 1000)
    archive = tmp_path / "model.zip"

    packed = run(tmp_path, "artefact", "pack", str(source), str(archive))
    unpacked = run(tmp_path, "artefact", "unpack", str(archive), str(tmp_path / "out"))

    assert packed.returncode == 0, packed.stderr
    assert packed.stdout.startswith(f"packed 1 files into {archive}: ")
    assert "LOADED [] False" in packed.stderr
    assert zipfile.ZipFile(archive).namelist() == ["sub/model.bin"]
    assert unpacked.returncode == 0, unpacked.stderr
    assert (tmp_path / "out" / "sub" / "model.bin").read_bytes() == b"weights" * 1000
    assert "LOADED [] False" in unpacked.stderr


def test_a_command_error_still_exits_one_with_its_message(tmp_path: Path):
    archive = tmp_path / "model.zip"
    archive.write_bytes(b"")

    result = run(tmp_path, "artefact", "pack", str(ROOT / "bedrock" / "examples"), str(archive))

    assert result.returncode == 1
    assert f"CommandError: {archive} exists; choose a new file name" in result.stderr


def test_validate_still_exits_one_for_a_file_with_an_error(tmp_path: Path):
    bad = tmp_path / "bedrock.hcl"
    bad.write_text('version = "1.0"\ntrain {\n', encoding="utf-8")

    result = run(tmp_path, "validate", str(bad))

    assert result.returncode == 1
    assert result.stdout.startswith(f"{bad}:")


def test_other_commands_still_load_the_apps(tmp_path: Path):
    result = run(tmp_path, "help", "validate")

    assert result.returncode == 0, result.stderr
    assert "LOADED ['strawberry', 'strawberry_django'" in result.stderr
    assert "usage: bedrock validate" in result.stdout


def test_broken_settings_are_reported_as_django_reports_them(tmp_path: Path):
    result = run(tmp_path, "--help", settings="bedrock.no_such_settings")

    assert result.returncode == 0, result.stderr
    assert "Note that only Django core commands are listed" in result.stdout
    assert "No module named 'bedrock.no_such_settings'" in result.stdout


def test_a_command_another_app_overrides_goes_through_django(monkeypatch: pytest.MonkeyPatch):
    commands = cli._commands()
    assert cli._may_skip_setup(["bedrock", "validate", "x.hcl"])

    monkeypatch.setattr(cli, "_commands", lambda: commands | {"validate": "someone.else"})

    assert not cli._may_skip_setup(["bedrock", "validate", "x.hcl"])
    assert cli._may_skip_setup(["bedrock", "artefact", "pack", "a", "b.zip"])
