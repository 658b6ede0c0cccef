"""Benchmark `bedrock validate` on hostile bedrock.hcl documents against the bare parser.

Each document is about 200 KB: nested lists, deep blocks, 100,000 list items, and the same
nesting and items inside a `${…}` (which python-hcl2 parses as an expression). For each, two
whole processes run on the same file, one after the other:

    baseline   python -c "hcl2.loads(text)": what reading the file cost before any limit
    bedrock    bedrock validate FILE: the limits refuse it before either parser runs

and their CPU time (user + system, from the child's rusage) is reported with the ratio
baseline / bedrock. A real file of the corpus shape is measured too, to show the limits cost a
valid file nothing it would notice. Prints a table, then one line of JSON (prefixed ``JSON ``).

    .venv/bin/python bench/hostile_config.py
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def documents() -> dict[str, str]:
    step = 'version = "1.0"\ntrain {\n  step "a" {\n    image = "python:3.11-slim"\n'
    end = "  }\n}\n"
    items = ",".join(["1"] * 100_000)
    return {
        "nested lists": "a = " + "[" * 100_000 + "]" * 100_000 + "\n",
        "deep blocks": "a " + "b {" * 50_000 + "}" * 50_000 + "\n",
        "100,000 items": f"a = [{items}]\n",
        "nested lists in ${}": step
        + '    script = [{sh = ["${'
        + "[" * 100_000
        + "]" * 100_000
        + '}"]}]\n'
        + end,
        "100,000 items in ${}": step + f'    script = [{{sh = ["${{[{items}]}}"]}}]\n' + end,
        "a valid file": step + '    script = [{sh = ["python train.py"]}]\n' + end,
    }


def cpu_of(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and exit code of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, cwd=ROOT, timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, done.returncode


def main() -> None:
    home = tempfile.mkdtemp(prefix="bedrock-bench-")
    env = {**os.environ, "BEDROCK_HOME": home}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    parse = (
        "import sys, hcl2\ntry:\n    hcl2.loads(open(sys.argv[1]).read())\n"
        "except Exception:\n    pass\n"
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, text in documents().items():
            path = Path(scratch) / "bedrock.hcl"
            path.write_text(text)
            base_cpu, base_wall, _ = cpu_of([PYTHON, "-c", parse, str(path)], env)
            ours_cpu, ours_wall, code = cpu_of(
                [PYTHON, "-m", "bedrock.cli", "validate", str(path)], env
            )
            rows.append(
                {
                    "document": name,
                    "bytes": len(text.encode()),
                    "baseline_cpu_s": round(base_cpu, 3),
                    "bedrock_cpu_s": round(ours_cpu, 3),
                    "ratio": round(base_cpu / ours_cpu, 2) if ours_cpu else None,
                    "baseline_wall_s": round(base_wall, 3),
                    "bedrock_wall_s": round(ours_wall, 3),
                    "bedrock_exit": code,
                }
            )
    print(f"{'document':24} {'bytes':>8} {'hcl2 CPU':>9} {'bedrock CPU':>12} {'ratio':>6} exit")
    for row in rows:
        print(
            f"{row['document']:24} {row['bytes']:>8} {row['baseline_cpu_s']:>8.2f}s "
            f"{row['bedrock_cpu_s']:>11.2f}s {row['ratio']:>6} {row['bedrock_exit']:>4}"
        )
    print("bedrock's CPU includes starting Python and Django (the valid file's row shows it).")
    print("JSON " + json.dumps(rows))


if __name__ == "__main__":
    main()
