"""The executor's data mover (rclone) against real storage: a directory and the loopback S3, GCS and
Azure Blob servers of tests/storage_servers.py, reached only through their standard emulator settings.

The script under test is the one a cloud VM runs from cloud-init; only SKYPLAN_STORAGE differs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from skyplan.executor import executor_script
from skyplan.models import ResourceOption, Task
from skyplan.runstate import read_status
from skyplan.storage import for_uri
from tests.tools import require_tool

BIG = 12 * 1024 * 1024  # over the 5 MiB upload cutoff set below: S3 takes it in parts


def run(tmp_path: Path, base: str, task: Task, upstream=(), extra=None) -> subprocess.CompletedProcess:
    script = tmp_path / f"{task.name}.sh"
    script.write_text(executor_script(task, plan_name="demo", upstream=list(upstream)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKYPLAN_", "SKYPILOT_", "RCLONE_"))}
    env.update(SKYPLAN_STORAGE=base, SKYPLAN_WORK_DIR=str(tmp_path / "work" / task.name), SKYPLAN_SHUTDOWN="0",
               RCLONE_S3_UPLOAD_CUTOFF="5Mi", RCLONE_S3_CHUNK_SIZE="5Mi", **(extra or {}))
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_outputs_inputs_workdir_and_mounts_move_through_every_store(tmp_path, storage_uri):
    require_tool("rclone")
    store = for_uri(storage_uri)
    big = hashlib.sha256(b"skyplan").digest() * (BIG // 32)
    digest = hashlib.sha256(big).hexdigest()
    (tmp_path / "big.bin").write_bytes(big)
    prep = Task(name="prep", options=(ResourceOption(),),
                run=f'cp {tmp_path}/big.bin "$SKYPLAN_OUTPUT_DIR/big.bin"\n'
                    'mkdir -p "$SKYPLAN_OUTPUT_DIR/sub" && echo rows > "$SKYPLAN_OUTPUT_DIR/sub/data.txt"\n')
    result = run(tmp_path, storage_uri, prep)
    assert result.returncode == 0, result.stderr
    assert json.loads(store.read("prep/status.json"))["exit_code"] == 0
    assert store.list("prep/outputs/") == ["prep/outputs/big.bin", "prep/outputs/sub/data.txt"]

    # What `skyplan apply` stages before train starts: a workdir, a mounted file and a stale output.
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "train.sh").write_text('echo "trained on $(cat "$SKYPLAN_INPUT_DIR/prep/sub/data.txt")"\n')
    store.upload(tmp_path / "wd", "train/workdir")
    store.write("train/mounts/0/file", b"config\n")
    store.write("train/outputs/stale.txt", b"from an earlier attempt")
    store.write("data/set/a.txt", b"a\n")
    mounts = tmp_path / "mnt"
    task = Task(
        name="train", options=(ResourceOption(),), workdir=str(tmp_path / "wd"),
        file_mounts=((str(mounts / "cfg.txt"), str(tmp_path / "cfg.txt")),
                     *(((str(mounts / "set"), store.uri("data/set")),) if not storage_uri.startswith("file") else ())),
        run='sha256sum "$SKYPLAN_INPUT_DIR/prep/big.bin" | cut -c1-64 > "$SKYPLAN_OUTPUT_DIR/sum.txt"\n'
            'bash train.sh > "$SKYPLAN_OUTPUT_DIR/model.txt"\n',
    )
    result = run(tmp_path, storage_uri, task, upstream=["prep"])
    assert result.returncode == 0, result.stderr
    assert json.loads(store.read("train/status.json"))["exit_code"] == 0
    assert read_status(storage_uri, "train")["exit_code"] == 0  # how `skyplan apply` polls cloud tasks
    assert sorted(store.list("train/outputs/")) == ["train/outputs/model.txt", "train/outputs/sum.txt"]
    assert store.read("train/outputs/sum.txt").decode().strip() == digest
    assert store.read("train/outputs/model.txt") == b"trained on rows\n"
    assert (mounts / "cfg.txt").read_text() == "config\n"
    if not storage_uri.startswith("file"):
        assert (mounts / "set" / "a.txt").read_text() == "a\n"


@pytest.mark.slow
def test_a_failed_upstream_stops_the_downstream_at_inputs(tmp_path, storage_uri):
    require_tool("rclone")
    store = for_uri(storage_uri)
    store.write("prep/status.json", b'{"task": "prep", "exit_code": 3}\n')
    task = Task(name="train", options=(ResourceOption(),), run="true\n")
    result = run(tmp_path, storage_uri, task, upstream=["prep"])
    assert result.returncode == 66
    assert json.loads(store.read("train/status.json"))["stage"] == "inputs"
