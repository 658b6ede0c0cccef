"""`bedrock validate FILE…`: one line per problem, `FILE: OK` per valid file, exit 1 on errors."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "bedrock-hcl-corpus"

BAD_MEMORY = """\
version = "1.0"
train {
  step "a" {
    image  = "python:3.11"
    script = [{sh = ["python train.py"]}]
    resources {
      memory = "lots"
    }
    depends_on = ["missing"]
  }
}
"""

GOOD = """\
version = "1.0"
train {
  step "a" {
    image  = "python:3.11"
    script = [{sh = ["python train.py"]}]
  }
}
"""


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is absent: ../shared (the shared test data) is not checked out")
    return sorted(CORPUS.glob("*.hcl"))


def validate(*files: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("validate", *[str(name) for name in files], stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_a_valid_file_prints_ok_and_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "bedrock.hcl"
    path.write_text(GOOD, encoding="utf-8")

    status, output = validate(path)

    assert status == 0
    assert output == f"{path}: OK\n"


def test_every_error_is_printed_as_file_line_column_key_path_message(tmp_path: Path) -> None:
    path = tmp_path / "bedrock.hcl"
    path.write_text(BAD_MEMORY, encoding="utf-8")

    status, output = validate(path)

    assert status == 1
    assert output.splitlines() == [
        f"{path}:7:16: train.step.a.resources.memory: memory must be a quantity such as "
        '"512M", "1G" or "1Gi" (units k M G T P E, or Ki Mi Gi Ti Pi Ei); found the string '
        "'lots'",
        f"{path}:9:19: train.step.a.depends_on[0]: depends on unknown step 'missing'; the "
        "steps in train are: a",
    ]


def test_warnings_are_printed_with_their_position_before_ok() -> None:
    legacy = next(path for path in corpus_files() if path.name.startswith("16-"))

    status, output = validate(legacy)

    assert status == 0
    assert output.splitlines() == [
        f"{legacy}:6:5: train.script: warning: plain strings in script are the 2019 form; they "
        'run as shell commands. Write script = [{sh = ["…"]}]',
        f"{legacy}: OK",
    ]


def test_all_files_are_checked_when_one_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hcl"
    bad.write_text(BAD_MEMORY, encoding="utf-8")
    good = tmp_path / "good.hcl"
    good.write_text(GOOD, encoding="utf-8")

    status, output = validate(bad, good)

    assert status == 1
    assert output.splitlines()[-1] == f"{good}: OK"
    assert sum(line.startswith(f"{bad}:") for line in output.splitlines()) == 2


def test_a_missing_file_is_an_error_line_for_that_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.hcl"

    status, output = validate(missing)

    assert status == 1
    assert output == f"{missing}: cannot read the file: No such file or directory\n"


def test_a_syntax_error_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bedrock.hcl"
    path.write_text('version = "1.0"\ntrain {\n  step "a" {\n    image = = "x"\n', "utf-8")

    status, output = validate(path)

    assert status == 1
    assert output == f"{path}:4:13: syntax error: unexpected '='; expected a value\n"


def run_manage(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    # The real settings, as `bedrock validate` uses them, with state kept out of the checkout.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bedrock.settings", "BEDROCK_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "manage.py", "validate", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_manage_py_validate_exits_zero_for_the_whole_corpus(tmp_path: Path) -> None:
    files = corpus_files()

    result = run_manage(*map(str, files), home=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    ok_lines = [line for line in result.stdout.splitlines() if line.endswith(": OK")]
    assert ok_lines == [f"{path}: OK" for path in files]


def test_manage_py_validate_exits_one_and_prints_the_located_error(tmp_path: Path) -> None:
    bad = tmp_path / "bedrock.hcl"
    bad.write_text(BAD_MEMORY, encoding="utf-8")

    result = run_manage(str(bad), home=tmp_path)

    assert result.returncode == 1
    first = result.stdout.splitlines()[0]
    assert re.fullmatch(
        rf"{re.escape(str(bad))}:7:16: train\.step\.a\.resources\.memory: memory must be .*",
        first,
    )
    assert "Traceback" not in result.stderr
