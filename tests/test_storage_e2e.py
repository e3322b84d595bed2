"""`skyplan apply` on the `local` target with the run's storage in the loopback S3, GCS and Azure Blob
servers (tests/storage_servers.py), end to end through the executor a VM runs: outputs passed
downstream, status.json polled from storage, the workdir and a local file_mounts source staged
there, and a bucket file_mounts source read from a second, different store (cross-cloud)."""

from __future__ import annotations

import json

import pytest

from skyplan import apply as apply_mod
from skyplan.storage import for_uri
from tests.test_apply_local import compile_dir, write_spec
from tests.test_apply_local import local_zones as local_zones  # the fixture
from tests.tools import require_tool

SPEC = """
name: e2e
storage: {storage}
allowed: {{clouds: [local]}}
tasks:
  - name: prep
    workdir: ./src
    file_mounts:
      {mounted}: ./config.json
    run: bash prep.sh && cp {mounted} "$SKYPLAN_OUTPUT_DIR/"
    hours: 0.01
  - name: train
    depends_on: [prep]
    run: wc -l < "$SKYPLAN_INPUT_DIR/prep/rows.txt" | tr -d ' ' > "$SKYPLAN_OUTPUT_DIR/count.txt"
    hours: 0.01
"""


def run_pipeline(tmp_path, storage: str, extra_task: str = "") -> apply_mod.ApplyOutcome:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "prep.sh").write_text('seq 1 1000 > "$SKYPLAN_OUTPUT_DIR/rows.txt"\n')
    (project / "config.json").write_text('{"lr": 0.1}\n')
    spec = write_spec(project / "spec.yaml",
                      SPEC.format(storage=storage, mounted=tmp_path / "mounted" / "config.json") + extra_task)
    out = compile_dir(spec, tmp_path / "plan")
    return apply_mod.apply(out, max_attempts=1)


def check_results(base: str) -> None:
    store = for_uri(f"{base}/e2e")
    assert json.loads(store.read("prep/status.json"))["exit_code"] == 0
    assert json.loads(store.read("train/status.json"))["exit_code"] == 0
    assert store.read("prep/outputs/config.json") == b'{"lr": 0.1}\n'  # a local file_mounts source, staged
    assert store.read("train/outputs/count.txt") == b"1000\n"  # the workdir's script, its output downstream
    assert store.list("prep/workdir/") == ["prep/workdir/prep.sh"]


@pytest.mark.slow
@pytest.mark.parametrize("server", [
    "s3_server",
    "gcs_server",
    "azurite_server",
])
def test_local_dag_with_its_storage_in_each_emulated_store(tmp_path, local_zones, storage_env, request, server):
    require_tool("rclone")
    require_tool("terraform")
    base = storage_env(request.getfixturevalue(server))
    outcome = run_pipeline(tmp_path, base)
    assert outcome.ok, outcome
    check_results(base)


@pytest.mark.slow
def test_cross_cloud_dag_reads_s3_and_writes_gcs(tmp_path, local_zones, storage_env, s3_server, gcs_server):
    """One task reads an object from the S3 server (a bucket file_mounts source) and writes to the
    run's storage on the GCS server; both reached at once by their standard emulator settings."""
    require_tool("rclone")
    require_tool("terraform")
    source = storage_env(s3_server)
    for_uri(source).write("shared/table.csv", b"a,b\n1,2\n")
    base = storage_env(gcs_server)  # the run's storage; the S3 settings stay in the environment
    extra = f"""  - name: join
    depends_on: [train]
    file_mounts:
      {tmp_path}/table: {source}/shared
    run: cat {tmp_path}/table/table.csv "$SKYPLAN_INPUT_DIR/train/count.txt" > "$SKYPLAN_OUTPUT_DIR/joined.txt"
    hours: 0.01
"""
    outcome = run_pipeline(tmp_path, base, extra)
    assert outcome.ok, outcome
    check_results(base)
    assert for_uri(f"{base}/e2e").read("join/outputs/joined.txt") == b"a,b\n1,2\n1000\n"
