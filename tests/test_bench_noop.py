"""bench/noop.py runs a no-op pipeline as a whole `bedrock run --wait` and prints its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_noop_benchmark_times_a_run_and_says_the_baseline_was_skipped(tmp_path: Path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BEDROCK_", "DATABASE_", "DJANGO_"))
    }
    env["TMPDIR"] = str(tmp_path)
    run = subprocess.run(
        [sys.executable, "bench/noop.py", "--repeat", "1"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "metaflow baseline skipped" in run.stdout
    report = json.loads(run.stdout.rpartition("\nJSON ")[2])
    assert report["metaflow"] is None and report["ratio"] is None
    assert set(report["bedrock"]) == {"wall", "first line"}
    assert report["inside"]["published"] is not None  # the run published its model version
    assert report["bedrock"]["first line"] <= report["bedrock"]["wall"]
