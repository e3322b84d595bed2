"""Tests for workdir and file_mounts: staging uploads (file://, s3:// with moto) and real executor runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from skyplan.errors import RenderError, SkyplanError, SpecError
from skyplan.executor import cloud_init, executor_script, task_slug
from skyplan.models import ResourceOption, SourcePos, Task
from skyplan.staging import stage_task, staged_sources
from tests.tools import require_tool


def make_task(name: str = "train", **kw) -> Task:
    return Task(name=name, options=(ResourceOption(),), **kw)


def run_executor(task: Task, tmp_path: Path, storage: Path, extra_env=None) -> subprocess.CompletedProcess:
    script = tmp_path / "executor.sh"
    script.write_text(executor_script(task, plan_name="demo", upstream=[]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKYPLAN_", "SKYPILOT_"))}
    env.update(
        SKYPLAN_STORAGE=f"file://{storage}", SKYPLAN_WORK_DIR=str(tmp_path / "work"), SKYPLAN_SHUTDOWN="0"
    )
    env.update(extra_env or {})
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)


def status(storage: Path, task: Task) -> dict:
    return json.loads((storage / task_slug(task.name) / "status.json").read_text())


@pytest.fixture
def project(tmp_path) -> Path:
    """A spec directory: src/ (the workdir), config.yaml (a file) and data/ (a directory)."""
    root = tmp_path / "project"
    (root / "src" / "lib").mkdir(parents=True)
    (root / "src" / "prog.sh").write_text(
        'printf "workdir ok in %s\\n" "$(basename "$PWD")"\ncat lib/x.txt\n'
    )
    (root / "src" / "lib" / "x.txt").write_text("from lib\n")
    (root / "config.yaml").write_bytes(b"a: 1\n\x00\xff binary\n")
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "one.bin").write_bytes(bytes(range(256)) * 8)
    (root / "data" / "sub" / "two.txt").write_text("two\n")
    return root


# --- (a) workdir, real local run -------------------------------------------------------------


def test_workdir_is_staged_and_is_the_current_directory(tmp_path, project):
    storage = tmp_path / "storage"
    task = make_task(workdir="./src", setup="test -f prog.sh", run='bash prog.sh > "$SKYPLAN_OUTPUT_DIR/out"')
    written = stage_task(task, spec_dir=project, storage=f"file://{storage}", plan_name="demo")
    assert written == [f"file://{storage}/train/workdir/"]
    result = run_executor(task, tmp_path, storage)
    assert result.returncode == 0, result.stdout + result.stderr
    out = (storage / "train" / "outputs" / "out").read_text()
    assert out == "workdir ok in workdir\nfrom lib\n"
    assert status(storage, task)["exit_code"] == 0


def test_restaging_replaces_stale_workdir_content(tmp_path, project):
    storage = tmp_path / "storage"
    task = make_task(workdir="src", run='ls > "$SKYPLAN_OUTPUT_DIR/ls"')
    stage_task(task, spec_dir=project, storage=f"file://{storage}", plan_name="demo")
    (project / "src" / "prog.sh").unlink()
    (project / "src" / "new.sh").write_text("true\n")
    stage_task(task, spec_dir=project, storage=f"file://{storage}/", plan_name="demo")
    assert sorted(p.name for p in (storage / "train" / "workdir").iterdir()) == ["lib", "new.sh"]
    assert run_executor(task, tmp_path, storage).returncode == 0
    assert (storage / "train" / "outputs" / "ls").read_text() == "lib\nnew.sh\n"


def test_workdir_not_staged_fails_at_inputs(tmp_path):
    storage = tmp_path / "storage"
    task = make_task(workdir="./src", run="true")
    result = run_executor(task, tmp_path, storage)
    assert result.returncode == 66
    assert status(storage, task)["stage"] == "inputs"
    assert "could not fetch the workdir" in result.stderr


def test_without_workdir_commands_run_in_the_work_dir(tmp_path):
    storage = tmp_path / "storage"
    task = make_task(run='pwd > "$SKYPLAN_OUTPUT_DIR/pwd"')
    assert run_executor(task, tmp_path, storage).returncode == 0
    assert (storage / "train" / "outputs" / "pwd").read_text() == f"{tmp_path / 'work'}\n"


# --- (b) file_mounts of local files and directories ------------------------------------------


def test_local_file_and_dir_mounts_land_byte_identical(tmp_path, project):
    storage = tmp_path / "storage"
    remote = tmp_path / "remote"
    home = tmp_path / "home"
    home.mkdir()
    mounts = (
        (str(remote / "etc" / "it's $conf.yaml"), "config.yaml"),  # a single file stays a file
        (str(remote / "datasets"), "./data"),
        ("~/data-copy", str(project / "data")),  # ~ is the executing user's home
    )
    task = make_task(file_mounts=tuple(sorted(mounts)), run="true")
    written = stage_task(task, spec_dir=project, storage=f"file://{storage}", plan_name="demo")
    # sorted by remote path: datasets, etc/…, ~/data-copy
    assert [w.removeprefix(f"file://{storage}/train/") for w in written] == [
        "mounts/0/dir/",
        "mounts/1/file",
        "mounts/2/dir/",
    ]
    for _ in range(2):  # a second run (local/ssh hosts keep their files) finds the paths in place
        result = run_executor(task, tmp_path, storage, {"HOME": str(home)})
        assert result.returncode == 0, result.stdout + result.stderr
    assert (remote / "etc" / "it's $conf.yaml").read_bytes() == (project / "config.yaml").read_bytes()
    for dst in (remote / "datasets", home / "data-copy"):
        assert (dst / "one.bin").read_bytes() == (project / "data" / "one.bin").read_bytes()
        assert (dst / "sub" / "two.txt").read_bytes() == b"two\n"
        assert sorted(p.name for p in dst.iterdir()) == ["one.bin", "sub"]


def test_mount_not_staged_fails_at_inputs(tmp_path):
    storage = tmp_path / "storage"
    task = make_task(file_mounts=((str(tmp_path / "remote"), "./data"),), run="true")
    result = run_executor(task, tmp_path, storage)
    assert result.returncode == 66
    assert status(storage, task)["stage"] == "inputs"
    assert "file_mounts: could not copy" in result.stderr


# A stand-in for the aws CLI: `aws s3 sync|cp [--flags] SRC DST` with s3://X read from $FAKE_S3/X.
FAKE_AWS = r"""#!/usr/bin/env bash
[[ "$1" == s3 ]] || exit 2
op="$2"; shift 2
args=()
for a in "$@"; do [[ "$a" == --* ]] || args+=("${a/#s3:\/\//$FAKE_S3/}"); done
case "$op" in
  sync) [[ -d "${args[0]}" ]] || exit 0; mkdir -p "${args[1]}" && cp -a "${args[0]}/." "${args[1]}/" ;;
  cp) [[ -f "${args[0]}" ]] || { echo "fatal error: 404 ${args[0]}" >&2; exit 1; }; cp "${args[0]}" "${args[1]}" ;;
esac
"""


def test_missing_bucket_object_fails_at_inputs(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(FAKE_AWS)
    (bin_dir / "aws").chmod(0o755)
    task = make_task(file_mounts=((str(tmp_path / "remote" / "x"), "s3://nothing/here"),), run="true")
    env = {"FAKE_S3": str(tmp_path / "fake-s3"), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = run_executor(task, tmp_path, tmp_path / "storage", env)
    assert result.returncode == 66
    assert "file_mounts: could not copy s3://nothing/here" in result.stderr


@pytest.mark.parametrize(
    "source",
    ["http://example.com/x", "r2://bucket/x", "s3://bucket/x?X-Amz-Signature=abc", "s3://user:pw@b/x"],
)
def test_unsupported_or_credentialed_mount_sources_are_refused(source):
    task = make_task(file_mounts=(("/x", source),))
    with pytest.raises(RenderError, match="train"):
        executor_script(task, plan_name="demo", upstream=[])


# --- (c) s3:// staging with moto -------------------------------------------------------------


def test_s3_staging_writes_the_expected_keys(tmp_path, project, monkeypatch):
    moto = pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    task = make_task(
        "Train Model",
        workdir="src",
        file_mounts=(("/data", "data"), ("/etc/c.yaml", "config.yaml"), ("/raw", "gs://elsewhere/raw")),
    )
    with moto.mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="runs")
        slug = task_slug(task.name)
        s3.put_object(Bucket="runs", Key=f"p/demo/{slug}/workdir/stale.sh", Body=b"old")
        s3.put_object(Bucket="runs", Key=f"p/demo/{slug}/mounts/0/file", Body=b"was a file")
        written = stage_task(task, spec_dir=project, storage="s3://runs/p/demo/", plan_name="demo")
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="runs")["Contents"])
        body = s3.get_object(Bucket="runs", Key=f"p/demo/{slug}/mounts/1/file")["Body"].read()
    base = f"s3://runs/p/demo/{slug}"
    assert written == [f"{base}/workdir/", f"{base}/mounts/0/dir/", f"{base}/mounts/1/file"]
    # stale objects of an earlier attempt (workdir/stale.sh, mounts/0/file) are gone
    assert keys == [
        f"p/demo/{slug}/mounts/0/dir/one.bin",
        f"p/demo/{slug}/mounts/0/dir/sub/two.txt",
        f"p/demo/{slug}/mounts/1/file",
        f"p/demo/{slug}/workdir/lib/x.txt",
        f"p/demo/{slug}/workdir/prog.sh",
    ]
    assert body == (project / "config.yaml").read_bytes()


@pytest.mark.parametrize("server", ["s3_server", "gcs_server", "azurite_server"])
def test_staging_through_storage_servers(server, request, storage_env, project):
    """The same staging on S3 (moto server), GCS (emulator) and Azure Blob (Azurite), which was
    refused before the storage seam: keys written, stale objects of an earlier attempt removed."""
    from skyplan.storage import for_uri

    base = storage_env(request.getfixturevalue(server))
    task = make_task("Train Model", workdir="src", file_mounts=(("/data", "data"), ("/etc/c.yaml", "config.yaml")))
    slug = task_slug(task.name)
    store = for_uri(base)
    store.write(f"{slug}/workdir/stale.sh", b"old")
    store.write(f"{slug}/mounts/0/file", b"was a file")
    written = stage_task(task, spec_dir=project, storage=base, plan_name="demo")
    assert written == [f"{base}/{slug}/workdir/", f"{base}/{slug}/mounts/0/dir/", f"{base}/{slug}/mounts/1/file"]
    assert store.list(f"{slug}/") == [
        f"{slug}/mounts/0/dir/one.bin",
        f"{slug}/mounts/0/dir/sub/two.txt",
        f"{slug}/mounts/1/file",
        f"{slug}/workdir/lib/x.txt",
        f"{slug}/workdir/prog.sh",
    ]
    assert store.read(f"{slug}/mounts/1/file") == (project / "config.yaml").read_bytes()


def test_gs_without_sdk_is_a_clear_error(project, monkeypatch):
    task = make_task(workdir="src")
    monkeypatch.setitem(sys.modules, "google.cloud", None)  # as if google-cloud-storage were missing
    with pytest.raises(SkyplanError, match="google-cloud-storage"):
        stage_task(task, spec_dir=project, storage="gs://b/p", plan_name="d")


# --- (d) missing local paths -----------------------------------------------------------------


def test_missing_workdir_names_task_and_path(tmp_path):
    task = make_task("prep", workdir="./nope")
    with pytest.raises(SkyplanError) as err:
        stage_task(task, spec_dir=tmp_path, storage=f"file://{tmp_path}/s", plan_name="demo")
    assert "'prep'" in err.value.message and "./nope" in err.value.message
    assert str(tmp_path / "nope") in err.value.message


def test_missing_mount_source_is_a_spec_error_when_the_position_is_known(tmp_path):
    pos = SourcePos(file="spec.yaml", line=7, key="tasks[0]")
    task = make_task("prep", file_mounts=(("/x", "missing.txt"),), pos=pos)
    with pytest.raises(SpecError) as err:
        staged_sources(task, tmp_path)
    assert "'prep'" in err.value.message and "missing.txt" in err.value.message


def test_workdir_that_is_a_file_is_refused(project):
    with pytest.raises(SkyplanError, match="not a directory"):
        staged_sources(make_task(workdir="config.yaml"), project)


# --- (e) lint and size -----------------------------------------------------------------------


def test_shellcheck_passes_with_workdir_and_mounts(tmp_path):
    shellcheck = require_tool("shellcheck")
    task = make_task(
        workdir="./src",
        setup="pip install -r requirements.txt",
        run="python train.py",
        file_mounts=(
            ("/data/raw", "s3://bucket/raw"),
            ("/data/gcs", "gs://bucket/x"),
            ("/data/az", "https://acct.blob.core.windows.net/c/p"),
            ("~/.config/it's $x `y`.yaml", "./x.yaml"),
            ("~", "./home"),
            ("rel/path", "./lib"),
        ),
    )
    script = tmp_path / "executor.sh"
    script.write_text(executor_script(task, plan_name="demo", upstream=["prep"]))
    result = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_script_is_deterministic_and_fits_aws_user_data():
    task = make_task(workdir="./src", file_mounts=(("/a", "./a"), ("/b", "s3://b/p")), run="true")
    first = executor_script(task, plan_name="demo", upstream=[])
    assert first == executor_script(task, plan_name="demo", upstream=[])
    user_data = cloud_init(first, task_name=task.name, plan_name="demo", storage="s3://b/runs")
    # Room left under AWS's limit: a third of it for user text beside the executor, its staging
    # code and SkyPilot's node variables (tests/test_executor.py bounds the plain task tighter).
    assert len(user_data.encode()) < 16384 * 2 // 3
