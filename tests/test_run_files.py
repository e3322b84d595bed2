"""Unit tests of the run's safety nets: state recovery, atomic writes, process records, the plan copy, the event log."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from skyplan import procs, tfstate
from skyplan.atomicfile import DiskFullError, describe_os_error, error_from_os, write_bytes
from skyplan.errors import SkyplanError
from skyplan.runfiles import PLAN_COPY, load_plan
from skyplan.runstate import EventLog, read_events


def _stack(tmp_path: Path) -> Path:
    (tmp_path / ".skyplan").mkdir()
    stack = tmp_path / "local"
    stack.mkdir()
    return stack


def _state(serial: int, lineage: str = "L", resources: int = 1) -> str:
    return json.dumps({"version": 4, "serial": serial, "lineage": lineage,
                       "resources": [{"name": f"r{i}"} for i in range(resources)]})


def _serial(stack: Path) -> int:
    return json.loads((stack / "terraform.tfstate").read_text())["serial"]


@pytest.mark.parametrize("damage", [b"", b"\x00\xffgarbage", b'{"version": 4, "serial": 3, "lin'])
def test_a_damaged_state_is_restored_from_the_last_good_copy_and_kept(tmp_path, damage):
    stack = _stack(tmp_path)
    (stack / "terraform.tfstate").write_text(_state(3))
    assert tfstate.guard(stack) == []  # fine: only copied
    (stack / "terraform.tfstate").write_bytes(damage)
    notes = tfstate.guard(stack)
    assert _serial(stack) == 3 and "restored" in notes[-1]
    assert (tmp_path / ".skyplan/state/local/broken-1.tfstate").read_bytes() == damage


def test_the_newest_valid_candidate_of_the_same_lineage_wins(tmp_path):
    stack = _stack(tmp_path)
    (stack / "terraform.tfstate").write_text(_state(4))
    (stack / "terraform.tfstate.backup").write_text(_state(3))
    (stack / "errored.tfstate").write_text(_state(9, lineage="other"))  # another stack's dump: ignored
    tfstate.guard(stack)
    assert _serial(stack) == 4
    assert not (stack / "errored.tfstate").exists()
    assert json.loads((tmp_path / ".skyplan/state/local/errored-1.tfstate").read_text())["serial"] == 9
    (stack / "errored.tfstate").write_text(_state(6))  # Terraform could not write serial 6
    tfstate.guard(stack)
    assert _serial(stack) == 6
    assert len(list((tmp_path / ".skyplan/state/local").glob("errored-*.tfstate"))) == 2  # never lost


def test_without_any_good_copy_the_damaged_state_is_moved_aside(tmp_path):
    stack = _stack(tmp_path)
    (stack / "terraform.tfstate").write_bytes(b"x" * 4096)  # cut by a full disk, no backup
    (stack / "errored.tfstate").write_bytes(b"")
    notes = tfstate.guard(stack)
    assert not (stack / "terraform.tfstate").exists()
    assert "no good copy" in notes[-1]


def test_a_missing_state_is_restored_only_when_the_copy_held_resources(tmp_path):
    stack = _stack(tmp_path)
    (stack / "terraform.tfstate").write_text(_state(2, resources=0))
    tfstate.guard(stack)
    (stack / "terraform.tfstate").unlink()
    assert tfstate.guard(stack) == [] and not (stack / "terraform.tfstate").exists()
    (stack / "terraform.tfstate").write_text(_state(3))
    tfstate.guard(stack)
    (stack / "terraform.tfstate").unlink()
    tfstate.guard(stack)
    assert _serial(stack) == 3


def test_an_older_state_never_replaces_a_newer_copy(tmp_path):
    stack = _stack(tmp_path)
    (stack / "terraform.tfstate").write_text(_state(7))
    tfstate.checkpoint(stack)
    (stack / "terraform.tfstate").write_text(_state(5))
    tfstate.checkpoint(stack)
    assert json.loads((tmp_path / ".skyplan/state/local/last-good.tfstate").read_text())["serial"] == 7


def test_guard_waits_for_a_terraform_holding_the_state_lock(tmp_path):
    stack = _stack(tmp_path)
    (stack / "terraform.tfstate").write_text(_state(1))
    tfstate.guard(stack)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(stack / 'terraform.tfstate')!r}, os.O_RDWR)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\nos.ftruncate(fd, 0)\nprint('held', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SkyplanError, match="holds the state lock"):
            tfstate.guard(stack, lock_wait_s=0.5)
        assert (stack / "terraform.tfstate").read_bytes() == b""  # untouched while locked
    finally:
        holder.kill()
        holder.wait()
    tfstate.guard(stack)
    assert _serial(stack) == 1


def test_atomic_write_replaces_whole_files_and_names_the_path_on_errors(tmp_path):
    target = tmp_path / "sub" / "f.json"
    write_bytes(target, b"one")
    write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and sorted(p.name for p in target.parent.iterdir()) == ["f.json"]
    (tmp_path / "file").write_text("")
    with pytest.raises(SkyplanError, match=str(tmp_path / "file" / "x")):
        write_bytes(tmp_path / "file" / "x", b"")
    full = error_from_os(OSError(errno.ENOSPC, "No space left on device"), tmp_path / "status.json")
    assert isinstance(full, DiskFullError)
    assert f"{tmp_path / 'status.json'}: no space left on the device (disk full;" in full.message
    assert "bytes free" in describe_os_error(OSError(errno.EDQUOT, "Disk quota exceeded"), tmp_path)


def test_process_records_tell_a_live_process_from_a_reused_pid(tmp_path):
    (tmp_path / ".skyplan").mkdir()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = procs.record(tmp_path, "terraform", child.pid, stack="local", command="apply")
        assert [p["pid"] for p in procs.leftovers(tmp_path)] == [child.pid]
        doc = json.loads(path.read_text())
        path.write_text(json.dumps({**doc, "start": doc["start"] - 1}))  # the same PID, another process
        assert procs.leftovers(tmp_path) == [] and not path.exists()
        procs.record(tmp_path, "terraform", child.pid)
        found = procs.wait_for_leftovers(tmp_path, grace_s=0.2)  # outlives the grace: stopped
        assert [p["pid"] for p in found] == [child.pid]
        assert child.wait(timeout=60) == -15
        assert procs.leftovers(tmp_path) == []
    finally:
        child.kill()
        child.wait()


def test_a_damaged_plan_json_is_read_from_the_copy_and_put_back(tmp_path):
    plan = {"format_version": "1.0", "name": "p", "tasks": []}
    (tmp_path / ".skyplan").mkdir()
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert load_plan(tmp_path, restore=True) == plan
    assert json.loads((tmp_path / PLAN_COPY).read_text()) == plan
    (tmp_path / "plan.json").write_text('{"format_ver')
    warned: list[str] = []
    assert load_plan(tmp_path, warn=warned.append) == plan
    assert "not valid JSON" in warned[0] and "using the copy" in warned[0]
    assert load_plan(tmp_path, restore=True) == plan
    assert json.loads((tmp_path / "plan.json").read_text()) == plan
    (tmp_path / "plan.json").unlink()
    (tmp_path / PLAN_COPY).unlink()
    with pytest.raises(SkyplanError, match="no plan here"):
        load_plan(tmp_path)


def test_event_log_survives_torn_lines_bad_bytes_and_an_unwritable_file(tmp_path, capsys):
    (tmp_path / "events.jsonl").write_bytes(b'{"event": "a"}\n{"event": "b", "m": "\xff"}\n{"event": "to')
    EventLog(tmp_path).emit("c")
    assert [e["event"] for e in read_events(tmp_path)] == ["a", "b", "c"]
    assert "events.jsonl:2: not UTF-8" in capsys.readouterr().err
    os.chmod(tmp_path / "events.jsonl", 0o444)
    seen: list[dict] = []
    log = EventLog(tmp_path, on_event=seen.append)
    log.path = tmp_path / "missing-dir" / "events.jsonl"  # unwritable even for root
    log.emit("d")
    assert seen[0]["event"] == "d" and log.write_error is not None
