"""Benchmark the ``bedrock`` command as a whole process: how fast it starts, and artefact packing.

Each measurement is a fresh process, timed from outside (wall time, the median of several runs),
with its peak RSS as ``/usr/bin/time`` reports it:

    python -c pass            the interpreter's own start: the baseline for the rows below
    bedrock --help            the console script listing its commands
    bedrock validate FILE     a small valid bedrock.hcl (examples/churn)
    zipfile pack              a tiny zipfile script (ZIP_DEFLATED, default level) over DIR
    bedrock artefact pack     DIR into a new OUT.zip
    python -m zipfile -e      extracting the archive zipfile wrote
    bedrock artefact unpack   extracting the archive bedrock wrote

DIR is bench/artefacts.py's generated /artefact (half random bytes, half CSV-like text). Prints a
table, then one line of JSON (prefixed ``JSON ``) for machines.

    .venv/bin/python bench/cli.py                   # a 256 MiB directory
    .venv/bin/python bench/cli.py --size 1GiB
    .venv/bin/python bench/cli.py --size 1MiB --repeat 1 --archive-repeat 1   # the test's run
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from artefacts import _zipfile_pack, make_artefact, parse_size

ROOT = Path(__file__).resolve().parents[1]
TIME = Path("/usr/bin/time")
# A small valid file that ships with the project.
SPEC = ROOT / "bedrock" / "examples" / "churn" / "bedrock.hcl"
# bench/artefacts.py's zipfile baseline, as a script of its own: the child imports only zipfile.
ZIPFILE_PACK = (
    "import os, sys, zipfile\n"
    "from pathlib import Path\n"
    f"{inspect.getsource(_zipfile_pack)}\n"
    "_zipfile_pack(Path(sys.argv[1]), Path(sys.argv[2]))\n"
)


def bedrock_command() -> list[str]:
    """The console script beside this interpreter, as people run it; else the module."""
    script = Path(sys.executable).with_name("bedrock")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bedrock.cli"]


def run_once(command: list[str], work: Path) -> dict[str, float]:
    """One fresh process: its wall time, and its peak RSS from /usr/bin/time.

    The ru_maxrss of a child of this process would include this process's own high-water mark
    (the kernel carries the pre-exec address space's into it); /usr/bin/time's child is forked
    from /usr/bin/time, which is small. Without it, wait4's figure is the larger of the two.
    """
    report = work / "time.txt"
    wrapped = [str(TIME), "-f", "%M", "-o", str(report), *command] if TIME.exists() else command
    started = time.perf_counter()
    child = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{errors}")
    peak_kib = int(report.read_text().split()[-1]) if TIME.exists() else usage.ru_maxrss
    return {"seconds": seconds, "peak_rss": peak_kib * 1024}


def measure(
    command: list[str], work: Path, repeat: int, clean: Path | None = None
) -> dict[str, float]:
    """The median wall time of ``repeat`` runs and the largest peak RSS among them."""
    runs = []
    for _ in range(repeat):
        if clean is not None:
            os.sync()  # the previous run's dirty pages must not be flushed on this run's time
        runs.append(run_once(command, work))
        if clean is not None:
            _remove(clean)
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_rss": max(r["peak_rss"] for r in runs),
        "runs": len(runs),
    }


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def measure_all(work: Path, size: int, repeat: int, archive_repeat: int) -> dict[str, object]:
    bedrock = bedrock_command()
    results: dict[str, dict[str, float]] = {
        "python -c pass": measure([sys.executable, "-c", "pass"], work, repeat),
        "bedrock --help": measure([*bedrock, "--help"], work, repeat),
        "bedrock validate": measure([*bedrock, "validate", str(SPEC)], work, repeat),
    }
    source = work / "artefact"
    content = make_artefact(source, size)
    theirs, ours, out = work / "zipfile.zip", work / "ours.zip", work / "out"
    pack = [sys.executable, "-c", ZIPFILE_PACK, str(source), str(theirs)]
    results["zipfile pack"] = measure(pack, work, archive_repeat, clean=theirs)
    results["bedrock artefact pack"] = measure(
        [*bedrock, "artefact", "pack", str(source), str(ours)], work, archive_repeat, clean=ours
    )
    # Each unpack reads the archive its own side wrote; keep one of each.
    run_once(pack, work)
    run_once([*bedrock, "artefact", "pack", str(source), str(ours)], work)
    results["python -m zipfile -e"] = measure(
        [sys.executable, "-m", "zipfile", "-e", str(theirs), str(out)], work, archive_repeat, out
    )
    results["bedrock artefact unpack"] = measure(
        [*bedrock, "artefact", "unpack", str(ours), str(out)], work, archive_repeat, out
    )
    interpreter = results["python -c pass"]["seconds"]
    ratios = {
        "help_vs_python": results["bedrock --help"]["seconds"] / interpreter,
        "validate_vs_python": results["bedrock validate"]["seconds"] / interpreter,
        "pack_vs_zipfile": results["zipfile pack"]["seconds"]
        / results["bedrock artefact pack"]["seconds"],
        "unpack_vs_zipfile": results["python -m zipfile -e"]["seconds"]
        / results["bedrock artefact unpack"]["seconds"],
    }
    return {"content_bytes": content, "results": results, "ratios": ratios}


def report(measured: dict[str, object]) -> None:
    results: dict[str, dict[str, float]] = measured["results"]  # type: ignore[assignment]
    ratios: dict[str, float] = measured["ratios"]  # type: ignore[assignment]
    content: int = measured["content_bytes"]  # type: ignore[assignment]
    print(f"content {content / 1e6:,.1f} MB, {os.cpu_count()} CPUs, /usr/bin/time: {TIME.exists()}")
    print(f"{'process':<26}{'median s':>10}{'runs':>6}{'peak RSS MB':>13}")
    for name, r in results.items():
        print(f"{name:<26}{r['seconds']:>10.3f}{r['runs']:>6}{r['peak_rss'] / 1e6:>13.1f}")
    print(
        f"\nbedrock --help    {ratios['help_vs_python']:.1f}x python -c pass (goal: 0.3 s)\n"
        f"bedrock validate  {ratios['validate_vs_python']:.1f}x python -c pass (goal: 0.3 s)\n"
        f"artefact pack     {ratios['pack_vs_zipfile']:.2f}x zipfile (goal 5x)\n"
        f"artefact unpack   {ratios['unpack_vs_zipfile']:.2f}x zipfile (goal 1.5x); "
        "peak RSS goal: under 150 MB"
    )
    print("JSON " + json.dumps(measured, sort_keys=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=256 << 20, help="default 256MiB")
    parser.add_argument("--repeat", type=int, default=9, help="runs per start-up row")
    parser.add_argument("--archive-repeat", type=int, default=3, help="runs per archive row")
    parser.add_argument("--dir", type=Path, help="where to work (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-cli-", dir=args.dir) as work:
        measured = measure_all(Path(work), args.size, args.repeat, args.archive_repeat)
    report(measured)


if __name__ == "__main__":
    main()
