"""Benchmark model-version archives against a plain copy and Python's zipfile.

Builds an /artefact-like directory (half random bytes, half CSV-like text, plus a few hundred small
files), then times, on the same disk and each in a fresh subprocess so peak memory is its own:

    copy          shutil.copytree
    zipfile pack  zipfile.ZipFile(..., ZIP_DEFLATED), default level
    zipfile unpack ZipFile.extractall
    ours pack     bedrock.models.archive.pack
    ours unpack   bedrock.models.archive.unpack

then, per storage backend (local filesystem, an S3 endpoint, the GCS emulator), storing the
directory as a model version:

    ours          bedrock.models.artefacts.artefact_store into the storage Bedrock's settings
                  build (BEDROCK_STORAGE=...): packed and uploaded at once, in parts
    baseline      zipfile into a temporary file, then the backend's own client uploads it
                  (boto3 upload_file, google-cloud-storage upload_from_filename; locally, zipfile
                  writes straight into the storage directory)

The S3 endpoint is moto's server and the GCS one gcp-storage-emulator, each in a process of its
own on this machine (``--backends`` picks which run). Throughput is always the directory's content
bytes over wall time. Prints tables, then one line of JSON (prefixed ``JSON ``) for machines.

    .venv/bin/python bench/artefacts.py                # 1 GiB
    .venv/bin/python bench/artefacts.py --size 32MiB   # what the test suite runs
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9}
_UNITS |= {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1GiB, 32MiB, 500MB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


# --- Data -----------------------------------------------------------------------------------------


def _text_rows(rng: random.Random) -> list[str]:
    """Row tails for a CSV of events: a few distributions, not one repeated line."""
    vocabulary = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 10)))
        for _ in range(3000)
    ]
    # Zipf-distributed, like words in real text; cumulative so choices() need not re-add them.
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocabulary))))
    cities = [w.capitalize() for w in vocabulary[:250]]
    segments = ["retail", "sme", "corporate", "student", "senior", "premium", "basic"]
    rows = []
    for _ in range(60_000):
        words = " ".join(rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(2, 7)))
        rows.append(
            f"{rng.choice(cities)},{rng.choice(segments)},{rng.gauss(120, 45):.2f},"
            f"{rng.randint(0, 90)},{rng.random():.4f},{rng.choice(('true', 'false'))},{words}\n"
        )
    return rows


def _write_text(path: Path, size: int, rng: random.Random, rows: list[str]) -> None:
    written = 0
    row_id = rng.randint(10**6, 10**7)
    timestamp = 1_600_000_000 + rng.randint(0, 10**7)
    with path.open("w") as f:
        f.write("id,ts,city,segment,amount,age,score,active,notes\n")
        while written < size:
            block = []
            for tail in rng.choices(rows, k=min(20_000, (size - written) // 40 + 1)):
                row_id += 1
                timestamp += rng.randint(0, 90)
                block.append(f"{row_id},{timestamp},{tail}")
            text = "".join(block)[: size - written]
            f.write(text)
            written += len(text)


def _write_random(path: Path, size: int) -> None:
    with path.open("wb") as f:
        for offset in range(0, size, 8 << 20):
            f.write(os.urandom(min(8 << 20, size - offset)))


def make_artefact(root: Path, size: int, seed: int = 7) -> int:
    """About ``size`` bytes: half random, half text, 5 % of it in a few hundred small files."""
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    rows = _text_rows(rng)
    small_count = 300
    small_total = size // 20
    big_each = (size - small_total) // 2 // 4
    (root / "weights").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "small" / "nested" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    for i in range(4):
        _write_random(root / "weights" / f"shard-{i:02d}.bin", big_each)
        _write_text(root / "data" / f"features-{i:02d}.csv", big_each, rng, rows)
    for i in range(small_count):
        folder = root / "small" / ("nested/deeper" if i % 3 == 0 else "nested" if i % 3 else "")
        each = max(1, int(small_total / small_count * rng.uniform(0.2, 1.8)))
        if i % 2:
            _write_random(folder / f"tensor-{i:03d}.npy", each)
        else:
            _write_text(folder / f"config-{i:03d}.json", each, rng, rows)
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# --- Measurements (each in its own process) -----------------------------------------------------


def _peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _zipfile_pack(source: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, dirs, files in os.walk(source):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder, name)
                archive.write(path, path.relative_to(source).as_posix())
            if not dirs and not files:
                archive.write(folder, Path(folder).relative_to(source).as_posix() + "/")


def _zipfile_unpack(source: Path, target: Path) -> None:
    with zipfile.ZipFile(source) as archive:
        archive.extractall(target)


def _ours_pack(source: Path, target: Path) -> None:
    from bedrock.models.archive import pack

    with target.open("wb") as out:
        pack(source, out)


def _ours_unpack(source: Path, target: Path) -> None:
    from bedrock.models.archive import unpack

    unpack(source, target)


MEASURES = {
    "copy": lambda s, t: shutil.copytree(s, t),
    "zipfile-pack": _zipfile_pack,
    "zipfile-unpack": _zipfile_unpack,
    "ours-pack": _ours_pack,
    "ours-unpack": _ours_unpack,
}


# --- Storage backends -----------------------------------------------------------------------------
# A measurement process builds its storage from Bedrock's settings, configured by environment
# variables exactly as a deployment is; the key is the measurement's TARGET.

BUCKET = "bench-artefacts"
BACKENDS = ("local", "s3", "gcs")


def _setup_django() -> None:
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "bedrock.settings"
    django.setup()


def _bench_storage():
    from django.core.files.storage import storages

    if os.environ["BEDROCK_STORAGE"] != "gcs":
        return storages["default"]
    from django.conf import settings
    from google.auth.credentials import AnonymousCredentials

    # The emulator checks no credentials, and uploads need no signing key.
    options = settings.STORAGES["default"]["OPTIONS"]
    return storages.create_storage(
        {
            **settings.STORAGES["default"],
            "OPTIONS": {**options, "credentials": AnonymousCredentials(), "iam_sign_blob": False},
        }
    )


def _store_ours(source: Path, key: str) -> None:
    from bedrock.models.artefacts import artefact_store

    artefact_store(source, key, storage=_bench_storage())


def _store_baseline(source: Path, key: str) -> None:
    backend = os.environ["BEDROCK_STORAGE"]
    if backend == "local":
        target = Path(os.environ["BEDROCK_HOME"], "artefacts", key)
        target.parent.mkdir(parents=True, exist_ok=True)
        _zipfile_pack(source, target)
        return
    with tempfile.NamedTemporaryFile(suffix=".zip", dir=os.environ["BEDROCK_HOME"]) as spool:
        _zipfile_pack(source, Path(spool.name))
        if backend == "s3":
            import boto3

            client = boto3.client(
                "s3",
                endpoint_url=os.environ["BEDROCK_S3_ENDPOINT_URL"],
                region_name=os.environ["BEDROCK_S3_REGION"],
            )
            client.upload_file(spool.name, BUCKET, key)
        else:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            client = storage.Client(project="bench", credentials=AnonymousCredentials())
            client.bucket(BUCKET).blob(key).upload_from_filename(spool.name)


STORES = {"ours": _store_ours, "baseline": _store_baseline}


def _delete_stored(key: str) -> None:
    _setup_django()
    _bench_storage().delete(key)


def _backend_env(backend: str, home: Path, endpoints: dict[str, str]) -> dict[str, str]:
    env = {"BEDROCK_HOME": str(home), "BEDROCK_STORAGE": backend}
    if backend == "s3":
        env |= {
            "BEDROCK_STORAGE_BUCKET": BUCKET,
            "BEDROCK_S3_ENDPOINT_URL": endpoints["s3"],
            "BEDROCK_S3_REGION": "us-east-1",
            "BEDROCK_S3_PATH_STYLE": "on",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
        }
    elif backend == "gcs":
        env |= {"BEDROCK_STORAGE_BUCKET": BUCKET, "STORAGE_EMULATOR_HOST": endpoints["gcs"]}
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_endpoint(backend: str, log: Path) -> tuple[subprocess.Popen, str]:
    """moto's S3 server or the GCS emulator, in a process of its own, with the bench bucket."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    if backend == "s3":
        command = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1"]
        command += ["-p", str(port)]
    else:
        command = [sys.executable, "-m", "gcp_storage_emulator", "start", "-H", "127.0.0.1"]
        command += ["--port", str(port), "--in-memory", "--default-bucket", BUCKET, "-q"]
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit(f"the {backend} endpoint did not start; see {log}") from None
            time.sleep(0.2)
    if backend == "s3":
        # Our own loopback server, http:// by construction.
        request = urllib.request.Request(f"{url}/{BUCKET}", method="PUT")  # noqa: S310
        urllib.request.urlopen(request, timeout=10)  # noqa: S310
    return server, url


def measure_storage(
    backend: str, source: Path, home: Path, endpoints: dict[str, str]
) -> dict[str, dict[str, float]]:
    env = _backend_env(backend, home, endpoints)
    results = {}
    for side in ("baseline", "ours"):
        key = f"bench/{side}.zip"
        results[side] = measure(f"store-{side}", source, Path(key), env=env)
        # Free the endpoint's memory (both keep objects in RAM) before the next measurement.
        subprocess.run(
            [sys.executable, __file__, "--delete", key], env=os.environ | env, check=True
        )
    return results


def measure_here(kind: str, source: Path, target: Path) -> None:
    sys.path.insert(0, str(ROOT))
    if kind.startswith("ours"):
        import bedrock.models.archive  # noqa: F401  (import time is not archive time)
    if kind.startswith("store-"):
        _setup_django()
        for module in ("boto3", "google.cloud.storage", "bedrock.models.artefacts"):
            importlib.import_module(module)  # import time is not store time

        action = lambda s, t: STORES[kind.removeprefix("store-")](s, str(t))  # noqa: E731
    else:
        action = MEASURES[kind]
    start = time.perf_counter()
    action(source, target)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss": _peak_rss_bytes()}))


def measure(
    kind: str, source: Path, target: Path, env: dict[str, str] | None = None
) -> dict[str, float]:
    os.sync()  # earlier runs' dirty pages must not be flushed on this run's time
    done = subprocess.run(
        [sys.executable, __file__, "--measure", kind, str(source), str(target)],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ | (env or {}),
    )
    if done.returncode:
        raise SystemExit(f"{kind} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- Report ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=1 << 30, help="default 1GiB")
    parser.add_argument("--dir", type=Path, help="where to work (default: a temp dir)")
    parser.add_argument(
        "--backends",
        type=lambda text: [b for b in text.split(",") if b],
        default=list(BACKENDS),
        help="storage backends to store the directory into: local,s3,gcs (default all; "
        "an empty value skips them)",
    )
    parser.add_argument(
        "--measure", nargs=3, metavar=("KIND", "SOURCE", "TARGET"), help=argparse.SUPPRESS
    )
    parser.add_argument("--delete", metavar="KEY", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        kind, source, target = args.measure
        measure_here(kind, Path(source), Path(target))
        return
    if args.delete:
        _delete_stored(args.delete)
        return
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {', '.join(BACKENDS)}")

    with tempfile.TemporaryDirectory(prefix="bench-artefacts-", dir=args.dir) as work:
        work_dir = Path(work)
        source = work_dir / "artefact"
        started = time.perf_counter()
        content = make_artefact(source, args.size)
        print(f"built {content / 1e6:,.1f} MB in {time.perf_counter() - started:.1f} s: {source}")

        results: dict[str, dict[str, float]] = {}
        results["copy"] = measure("copy", source, work_dir / "copy")
        shutil.rmtree(work_dir / "copy")
        results["zipfile-pack"] = measure("zipfile-pack", source, work_dir / "zipfile.zip")
        results["zipfile-unpack"] = measure(
            "zipfile-unpack", work_dir / "zipfile.zip", work_dir / "x1"
        )
        shutil.rmtree(work_dir / "x1")
        results["ours-pack"] = measure("ours-pack", source, work_dir / "ours.zip")
        results["ours-unpack"] = measure("ours-unpack", work_dir / "ours.zip", work_dir / "x2")
        shutil.rmtree(work_dir / "x2")
        sizes = {
            "zipfile": (work_dir / "zipfile.zip").stat().st_size,
            "ours": (work_dir / "ours.zip").stat().st_size,
        }
        (work_dir / "zipfile.zip").unlink()
        (work_dir / "ours.zip").unlink()
        stored = store_in_backends(args.backends, source, work_dir)
    report(content, results, sizes, stored)


def store_in_backends(
    backends: list[str], source: Path, work_dir: Path
) -> dict[str, dict[str, dict[str, float]]]:
    stored: dict[str, dict[str, dict[str, float]]] = {}
    servers: list[subprocess.Popen] = []
    try:
        for backend in backends:
            endpoints = {}
            if backend != "local":
                server, endpoints[backend] = _start_endpoint(
                    backend, work_dir / f"{backend}-endpoint.log"
                )
                servers.append(server)
            home = work_dir / f"home-{backend}"
            home.mkdir()
            stored[backend] = measure_storage(backend, source, home, endpoints)
            shutil.rmtree(home)
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
            servers.clear()
    finally:
        for server in servers:
            server.kill()
            server.wait()
    return stored


def report(
    content: int,
    results: dict[str, dict[str, float]],
    sizes: dict[str, int],
    stored: dict[str, dict[str, dict[str, float]]],
) -> None:
    for r in results.values():
        r["mb_per_s"] = content / 1e6 / r["seconds"]
    ratios = {
        "pack_vs_zipfile": results["ours-pack"]["mb_per_s"] / results["zipfile-pack"]["mb_per_s"],
        "unpack_vs_zipfile": (
            results["ours-unpack"]["mb_per_s"] / results["zipfile-unpack"]["mb_per_s"]
        ),
        "pack_vs_copy": results["ours-pack"]["mb_per_s"] / results["copy"]["mb_per_s"],
        "unpack_vs_copy": results["ours-unpack"]["mb_per_s"] / results["copy"]["mb_per_s"],
        "size_vs_zipfile": sizes["ours"] / sizes["zipfile"],
    }
    print(f"\ncontent {content / 1e6:,.1f} MB, {os.cpu_count()} CPUs")
    print(f"{'measurement':<16}{'seconds':>9}{'MB/s':>9}{'peak RSS MB':>13}")
    for kind, r in results.items():
        print(f"{kind:<16}{r['seconds']:>9.2f}{r['mb_per_s']:>9.1f}{r['peak_rss'] / 1e6:>13.1f}")
    print(
        f"\narchive size: zipfile {sizes['zipfile'] / 1e6:,.1f} MB, "
        f"ours {sizes['ours'] / 1e6:,.1f} MB ({ratios['size_vs_zipfile']:.3f}x)"
    )
    print(
        f"pack   {ratios['pack_vs_zipfile']:.2f}x zipfile, {ratios['pack_vs_copy']:.2f}x copy\n"
        f"unpack {ratios['unpack_vs_zipfile']:.2f}x zipfile, {ratios['unpack_vs_copy']:.2f}x copy"
    )
    if stored:
        print(
            f"\nstoring as a model version: ours (artefact_store) vs baseline (zipfile, then the "
            f"backend's client)\n{'backend':<9}{'ours s':>8}{'MB/s':>8}{'RSS MB':>8}"
            f"{'base s':>9}{'MB/s':>8}{'RSS MB':>8}{'speedup':>9}"
        )
    for backend, sides in stored.items():
        for r in sides.values():
            r["mb_per_s"] = content / 1e6 / r["seconds"]
        sides["speedup"] = sides["baseline"]["seconds"] / sides["ours"]["seconds"]
        ours, base = sides["ours"], sides["baseline"]
        print(
            f"{backend:<9}{ours['seconds']:>8.2f}{ours['mb_per_s']:>8.1f}"
            f"{ours['peak_rss'] / 1e6:>8.1f}{base['seconds']:>9.2f}{base['mb_per_s']:>8.1f}"
            f"{base['peak_rss'] / 1e6:>8.1f}{sides['speedup']:>8.2f}x"
        )
    line = {
        "content_bytes": content,
        "results": results,
        "archive_bytes": sizes,
        "ratios": ratios,
        "storage": stored,
    }
    print("JSON " + json.dumps(line, sort_keys=True))


if __name__ == "__main__":
    main()
