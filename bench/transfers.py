"""Benchmark: transfer rates of the executor's data mover (rclone) through the loopback storage servers.

    python bench/transfers.py              # 50 MB up and down through each of s3, gcs, azure
    python bench/transfers.py --mb 200 --json

Starts moto server, gcp-storage-emulator and Azurite (tests/storage_servers.py), defines the same
rclone remotes the executor does (the executor's `configure_rclone`, run from the rendered
script) and times `rclone copyto` of one object each way with the executor's flags. The numbers are
the emulators' speed on this machine, not the clouds': they show the data mover's overhead and
that multipart (S3 above 200 MiB, or `--s3-upload-cutoff`) works, nothing about cloud bandwidth.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skyplan.storage import for_uri  # noqa: E402
from tests import storage_servers as servers  # noqa: E402

STARTS = {"s3": servers.start_moto, "gcs": servers.start_gcs, "azure": servers.start_azurite}
MISSING = {"s3": servers.moto_missing, "gcs": servers.gcs_missing, "azure": servers.azurite_missing}
FLAGS = ["--config", "/dev/null", "--checksum", "--retries", "5", "--low-level-retries", "10",
         "--stats", "0", "--log-level", "ERROR"]


def rclone_env(base: str, env: dict[str, str]) -> tuple[dict[str, str], str]:
    """The rclone settings and path for `base` under the emulator settings `env` (skyplan.storage)."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return for_uri(base).rclone_remote("obj.bin")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def measure(kind: str, size_mb: int, workdir: Path) -> dict[str, object]:
    (workdir / kind).mkdir(parents=True, exist_ok=True)
    server = STARTS[kind](workdir / kind)
    try:
        settings, path = rclone_env(servers.new_bucket(server), server.env)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_CA_BUNDLE"))}
        env.update(server.env, **settings)
        src, back = workdir / "obj.bin", workdir / f"back-{kind}.bin"
        if not src.exists():
            src.write_bytes(os.urandom(size_mb * 1_000_000))
        rates = {}
        for direction, (a, b) in {"up": (str(src), path), "down": (path, str(back))}.items():
            start = time.perf_counter()
            done = subprocess.run(["rclone", *FLAGS, "copyto", a, b], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["?"])[-1]
                return {"store": kind, "size_MB": size_mb, "error": f"{direction}: {last}"}
            rates[f"{direction}_MBps"] = round(size_mb / (time.perf_counter() - start), 1)
        assert back.read_bytes() == src.read_bytes(), f"{kind}: the object came back different"
        return {"store": kind, "size_MB": size_mb, **rates}
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50, help="object size in MB (default 50)")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args()
    if shutil.which("rclone") is None:
        print("rclone is not installed (apt-get install rclone)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for kind in STARTS:
            why = MISSING[kind]()
            if why:
                print(f"{kind}: skipped ({why})", file=sys.stderr)
                continue
            rows.append(measure(kind, args.mb, Path(tmp)))
    for row in rows:
        if args.json:
            print(json.dumps(row))
        elif "error" in row:
            print(f"{row['store']:6} {row['size_MB']:>5} MB  failed: {row['error']}")
        else:
            print(f"{row['store']:6} {row['size_MB']:>5} MB  up {row['up_MBps']:>7} MB/s  down {row['down_MBps']:>7} MB/s")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
