"""bench/cli.py runs every row as a whole process and prints its table and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--size", "1MiB", "--repeat", "1", "--archive-repeat", "1"]
CAPTURE: dict[str, Any] = {"capture_output": True, "text": True, "cwd": ROOT, "timeout": 300}
RATIOS = {"help_vs_python", "validate_vs_python", "pack_vs_zipfile", "unpack_vs_zipfile"}
ROWS = {
    "python -c pass",
    "bedrock --help",
    "bedrock validate",
    "zipfile pack",
    "bedrock artefact pack",
    "python -m zipfile -e",
    "bedrock artefact unpack",
}


def test_the_cli_benchmark_prints_its_table_and_json(tmp_path: Path):
    # Bedrock's own settings, as a user's shell has them, with state kept out of the checkout.
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env["BEDROCK_HOME"] = str(tmp_path / "home")
    work = tmp_path / "work"
    work.mkdir()
    run = subprocess.run(
        [sys.executable, "bench/cli.py", *TINY, "--dir", str(work)], env=env, **CAPTURE
    )

    assert run.returncode == 0, run.stderr
    assert "bedrock artefact unpack" in run.stdout and "peak RSS" in run.stdout
    report = json.loads(run.stdout.rpartition("\nJSON ")[2])
    assert set(report["results"]) == ROWS
    assert report["content_bytes"] > 2**20 // 2
    assert all(
        row["seconds"] > 0 and row["peak_rss"] > 0 and row["runs"] == 1
        for row in report["results"].values()
    )
    assert set(report["ratios"]) == RATIOS
    assert set(report["cpu_ratios"]) == {"pack_vs_zipfile", "unpack_vs_zipfile"}
    assert all(row["cpu_seconds"] >= 0 for row in report["results"].values())
    assert list(work.iterdir()) == []  # its scratch directory is cleaned up
