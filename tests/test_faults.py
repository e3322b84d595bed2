"""Fault injection on the `local` target with real Terraform: kills, signals, corrupted and unwritable run files.

Every case ends the same way: nothing of the run is left running (no task process, no Terraform),
`skyplan destroy` leaves an empty state, and a resumed `skyplan apply` produces the right outputs.
The DAG is tiny (two short tasks, `b` reads `a`'s output) so that the whole suite stays within a
few minutes. Kills at random moments use seeded delays, so a failure is reproducible with its seed.

Unwritable DIR and full disk need a mount (tests run as root, and root ignores permission bits):
a read-only bind mount of DIR, and a small tmpfs holding DIR. Without the privilege to mount
they are skipped (failed in CI, see tools.require).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tools import require

from skyplan import procs
from skyplan.runstate import read_events
from skyplan.terraform import find_terraform

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent

SPEC = """\
name: faults
allowed: {clouds: [local]}
tasks:
  - name: a
    resources: {cpus: 1}
    run: |
      while [ -e GATE_A ]; do sleep 0.1; done
      echo from-a > "$SKYPLAN_OUTPUT_DIR/a.txt"
  - name: b
    depends_on: [a]
    resources: {cpus: 1}
    run: |
      while [ -e GATE_B ]; do sleep 0.1; done
      { cat "$SKYPLAN_INPUT_DIR/a/a.txt"; echo from-b; } > "$SKYPLAN_OUTPUT_DIR/b.txt"
"""


# -- harness --------------------------------------------------------------------------------------


class Case:
    """One plan directory under test, with gates that hold task a or b while they exist."""

    def __init__(self, root: Path, out: Path | None = None):
        self.root = root
        self.out = out or root / "out"
        self.gate_a, self.gate_b = root / "gate-a", root / "gate-b"
        self.spec = root / "faults.yaml"
        self.spec.write_text(SPEC.replace("GATE_A", str(self.gate_a)).replace("GATE_B", str(self.gate_b)))
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), self.env.get("PYTHONPATH")) if p)
        self.env["SKYPLAN_LEFTOVER_GRACE_S"] = "60"

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "skyplan.cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def compile(self) -> None:
        done = self.cli("compile", str(self.spec), "-o", str(self.out))
        assert done.returncode == 0, done.stderr

    def start(self) -> subprocess.Popen:
        log = (self.root / f"apply-{time.monotonic_ns()}.log").open("w")
        return subprocess.Popen([sys.executable, "-m", "skyplan.cli", "apply", str(self.out), "--json"],
                                stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def events(self, kind: str | None = None) -> list[dict]:
        return [e for e in read_events(self.out) if kind is None or e["event"] == kind]

    def running(self) -> list[str]:
        """Every process of this run: task processes (SKYPLAN_WORK_DIR in DIR) and anything,
        Terraform included, whose working directory is in DIR."""
        out = str(self.out.resolve())
        needle = f"SKYPLAN_WORK_DIR={out}/".encode()
        found = []
        for entry in Path("/proc").glob("[0-9]*"):
            if int(entry.name) == os.getpid():
                continue
            try:
                stat = (entry / "stat").read_text()
                if stat[stat.rfind(")") + 2:].startswith("Z"):
                    continue
                cwd = os.readlink(entry / "cwd")
                environ = (entry / "environ").read_bytes()
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if needle in environ or cwd == out or cwd.startswith(out + "/"):
                found.append(f"{entry.name}: {cmd}")
        return found

    def task_running(self, task: str) -> bool:
        pid = self.out / ".skyplan" / "work" / task / "node-0" / "pid"
        return pid.exists()

    def state(self) -> list[str]:
        runner = find_terraform()
        stack = self.out / "local"
        return runner.state_resources(stack) if stack.is_dir() else []

    def outputs_ok(self) -> None:
        storage = self.out / ".skyplan-storage" / "faults"
        assert (storage / "a" / "outputs" / "a.txt").read_text() == "from-a\n"
        assert (storage / "b" / "outputs" / "b.txt").read_text() == "from-a\nfrom-b\n"

    # -- the checks every case ends with --------------------------------------------------------

    def destroy_cleans_everything(self) -> None:
        done = self.cli("destroy", str(self.out))
        assert done.returncode == 0, done.stderr + done.stdout
        assert self.running() == []
        assert self.state() == []

    def resume_gives_right_outputs(self) -> None:
        self.gate_a.unlink(missing_ok=True)
        self.gate_b.unlink(missing_ok=True)
        done = self.cli("apply", str(self.out), "--json", timeout=300)
        assert done.returncode == 0, done.stderr + done.stdout[-3000:]
        self.outputs_ok()
        assert self.running() == []
        assert self.state() == []
        runs = [i for i, e in enumerate(self.events()) if e["event"] == "run_started"]
        last = self.events()[runs[-1]:]
        assert not [e for e in last if e["event"] == "task_failed"], last


def wait_for(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=180)


def tf_running(case: Case, command: str) -> bool:
    """A Terraform `command` of the run is running (from the run's own process records)."""
    for path in (case.out / ".skyplan" / "procs").glob("terraform-*.json"):
        try:
            if json.loads(path.read_text()).get("command") == command:
                return True
        except (OSError, ValueError):
            continue
    return False


@pytest.fixture
def case(tmp_path, monkeypatch):
    path = tmp_path / "local.yaml"
    path.write_text(json.dumps({"zones": [{"name": "local-1", "cpus": 2, "memory": 4}]}))
    monkeypatch.setenv("SKYPLAN_LOCAL_CONFIG", str(path))
    monkeypatch.setenv("SKYPLAN_LOCAL_SLOTS_DIR", str(tmp_path / "slots"))
    c = Case(tmp_path)
    c.compile()
    yield c
    # Never leave anything behind, whatever the test did.
    if c.running():
        c.cli("destroy", str(c.out))


# -- kill -9 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_kill_9_at_a_random_moment_then_immediate_apply_resumes(case, seed):
    """9.5: a resumed apply right after a kill -9 never records the in-flight task as failed."""
    delay = random.Random(seed).uniform(0.5, 12.0)
    proc = case.start()
    time.sleep(delay)
    kill(proc)
    case.resume_gives_right_outputs()
    case.destroy_cleans_everything()


def test_kill_9_during_a_task_is_cleaned_by_destroy(case):
    case.gate_b.touch()
    proc = case.start()
    wait_for(lambda: case.task_running("b"), "task b to run")
    kill(proc)
    assert case.running(), "the task outlives a SIGKILLed skyplan"
    case.destroy_cleans_everything()  # item 7: right after the kill, while its Terraform stops
    case.resume_gives_right_outputs()


def test_kill_9_during_a_task_then_immediate_apply_reruns_it(case):
    """9.5: the resumed apply waits for the killed run's Terraform before it reaps the old task,
    so the stopping executor is never taken for the new attempt's result."""
    case.gate_b.touch()
    proc = case.start()
    wait_for(lambda: case.task_running("b"), "task b to run")
    kill(proc)
    case.resume_gives_right_outputs()
    starts = [e["task"] for e in case.events("task_started")]
    reused = [e["task"] for e in case.events("task_reused")]
    assert starts.count("a") == 1, starts  # a is not run again
    # b either runs again, or (when the killed run's b finished while the resumed apply waited for
    # its Terraform) its complete result, with the id it would get now, is reused: never failed.
    assert starts.count("b") == 2 or (starts.count("b") == 1 and "b" in reused), (starts, reused)
    assert not case.events("task_failed")
    case.destroy_cleans_everything()


def test_kill_9_during_terraform_apply_of_a_task(case):
    case.gate_a.touch()
    proc = case.start()
    wait_for(lambda: tf_running(case, "apply"), "terraform apply")
    kill(proc)
    case.destroy_cleans_everything()
    case.resume_gives_right_outputs()


def test_kill_9_during_teardown(case):
    proc = case.start()
    wait_for(lambda: tf_running(case, "destroy"), "the final teardown")
    kill(proc)
    case.destroy_cleans_everything()
    case.resume_gives_right_outputs()


# -- signals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_every_signal_tears_down_like_ctrl_c(case, sig):
    """9.11: SIGTERM (CI cancel) and SIGHUP (terminal closed) end like Ctrl-C: teardown, exit 130."""
    case.gate_b.touch()
    proc = case.start()
    wait_for(lambda: case.task_running("b"), "task b to run")
    assert kill(proc, sig) == 130
    assert case.running() == [] and case.state() == []
    finished = case.events("run_finished")[-1]
    assert finished["exit_code"] == 130
    assert not case.events("task_failed")
    case.destroy_cleans_everything()
    case.resume_gives_right_outputs()


def test_ctrl_c_during_terraform_plan_is_an_interruption(case):
    """9.6: a plan that completes although Ctrl-C came during it applies nothing and fails no task."""
    case.gate_a.touch()
    proc = case.start()
    wait_for(lambda: tf_running(case, "plan"), "terraform plan")
    assert kill(proc, signal.SIGINT) == 130
    assert not case.events("task_failed")
    assert case.running() == [] and case.state() == []
    case.destroy_cleans_everything()
    case.resume_gives_right_outputs()


# -- damaged run files ---------------------------------------------------------------------------


def _killed_mid_task(case: Case) -> None:
    case.gate_b.touch()
    proc = case.start()
    wait_for(lambda: case.task_running("b"), "task b to run")
    kill(proc)
    # Let the Terraform the kill left behind save its state, so that what follows damages it.
    # Its record names it (pid + start time): `running()` alone misses a Terraform whose working
    # directory is outside DIR, and a state read while it rewrites the file would see it empty.
    wait_for(lambda: not procs.leftovers(case.out) and not any("terraform" in p for p in case.running()),
             "the left-behind Terraform to stop", 90)


@pytest.mark.parametrize("damage", [b"", b"\x00garbage{", None])
def test_empty_garbage_or_cut_state_is_recovered_from_the_last_good_copy(case, damage):
    """9.1/9.2: destroy and apply recover the state (last good copy, backup) and reap the task."""
    _killed_mid_task(case)
    state = case.out / "local" / "terraform.tfstate"
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2] if damage is None else damage)
    case.destroy_cleans_everything()
    assert list((case.out / ".skyplan" / "state" / "local").glob("broken-*.tfstate")), "the damaged file is kept"
    case.resume_gives_right_outputs()


def test_errored_tfstate_is_never_lost(case):
    """Terraform's fallback dump (newer than terraform.tfstate) is kept and becomes the state."""
    _killed_mid_task(case)
    stack = case.out / "local"
    # The killed run's Terraform may itself have left terraform.tfstate empty (item 9.1, seen
    # here about 1 time in 8): take the newest valid copy, as skyplan's recovery does.
    copies = [stack / "terraform.tfstate", stack / "terraform.tfstate.backup",
              case.out / ".skyplan" / "state" / "local" / "last-good.tfstate"]
    docs = [json.loads(p.read_text()) for p in copies if p.is_file() and p.read_text().strip()]
    doc = max(docs, key=lambda d: d["serial"])
    assert doc["resources"], "the killed run's task is in the state"
    doc["serial"] += 1
    (stack / "errored.tfstate").write_text(json.dumps(doc))
    (stack / "terraform.tfstate").write_bytes(b"")
    case.destroy_cleans_everything()
    kept = list((case.out / ".skyplan" / "state" / "local").glob("errored-*.tfstate"))
    assert kept and json.loads(kept[0].read_text())["serial"] == doc["serial"]
    case.resume_gives_right_outputs()


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_plan_json_does_not_block_status_destroy_or_apply(case, damage):
    """9.3: status and destroy read the copy of the plan; apply puts it back and resumes."""
    _killed_mid_task(case)
    plan = case.out / "plan.json"
    if damage == "truncate":
        plan.write_bytes(plan.read_bytes()[:100])
    else:
        plan.unlink()
    shown = case.cli("status", str(case.out), "--json")
    assert shown.returncode == 0, shown.stderr
    assert {r["task"]: r["state"] for r in json.loads(shown.stdout)}["b"] == "running"
    assert "copy of the plan" in shown.stderr
    case.destroy_cleans_everything()
    case.resume_gives_right_outputs()
    assert json.loads(plan.read_text())["name"] == "faults"


def test_destroy_works_without_any_plan(case):
    _killed_mid_task(case)
    (case.out / "plan.json").unlink()
    (case.out / ".skyplan" / "plan.applied.json").unlink()
    case.destroy_cleans_everything()


def test_non_utf8_events_do_not_traceback(case):
    """9.7: a bad byte in events.jsonl is replaced, with a warning naming the line."""
    _killed_mid_task(case)
    with (case.out / "events.jsonl").open("ab") as f:
        f.write(b'{"event": "noise", "message": "\xff\xfe"}\n\xc3\x28 torn')
    shown = case.cli("status", str(case.out))
    assert shown.returncode == 0, shown.stderr
    assert "not UTF-8" in shown.stderr and "Traceback" not in shown.stderr
    case.destroy_cleans_everything()
    case.resume_gives_right_outputs()
    assert case.events("run_finished")[-1]["ok"] is True  # the torn line did not swallow an event


# -- the machine fails ---------------------------------------------------------------------------


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    require(None if done.returncode == 0 else f"cannot mount ({done.stderr.strip()}): needs root with CAP_SYS_ADMIN")


def test_unwritable_dir_mid_run_tears_down_and_hints(case):
    """9.4: DIR turns read-only while a task runs; the run stops its tasks, says what to do."""
    case.gate_b.touch()
    proc = case.start()
    wait_for(lambda: case.task_running("b"), "task b to run")
    _mount("--bind", str(case.out), str(case.out))
    try:
        _mount("-o", "remount,ro,bind", str(case.out))
        case.gate_b.unlink()
        rc = proc.wait(timeout=180)
        log = sorted(case.root.glob("apply-*.log"))[-1].read_text()
        assert rc == 1, log
        assert "skyplan destroy" in log and "Read-only file system" in log, log
        assert case.running() == []
    finally:
        subprocess.run(["umount", str(case.out)], check=False)
    case.destroy_cleans_everything()
    case.resume_gives_right_outputs()


def test_disk_full_says_so_and_recovers_once_space_is_freed(tmp_path, monkeypatch):
    """9.2/9.9: DIR on a full disk; the error names the path and says the disk is full; once
    space is freed destroy and apply work."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt))
    try:
        config = tmp_path / "local.yaml"
        config.write_text(json.dumps({"zones": [{"name": "local-1", "cpus": 2, "memory": 4}]}))
        monkeypatch.setenv("SKYPLAN_LOCAL_CONFIG", str(config))
        monkeypatch.setenv("SKYPLAN_LOCAL_SLOTS_DIR", str(tmp_path / "slots"))
        case = Case(tmp_path, out=mnt / "out")
        case.compile()
        case.gate_a.touch()
        proc = case.start()
        wait_for(lambda: case.task_running("a"), "task a to run")
        filler = mnt / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
        case.gate_a.unlink()
        rc = proc.wait(timeout=180)
        log = sorted(case.root.glob("apply-*.log"))[-1].read_text()
        assert rc != 0, log
        assert "no space left" in log.lower(), log
        assert case.running() == []
        filler.unlink()
        case.destroy_cleans_everything()
        case.resume_gives_right_outputs()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# -- another run's leftovers ---------------------------------------------------------------------


def test_zone_excluded_for_another_runs_leftovers_is_retried_once_they_are_gone(tmp_path, monkeypatch):
    """9.12: orphans of a killed run hold local-1's only slot, so this run fails over to local-2;
    that exclusion is lifted by the next apply once the orphans are gone."""
    config = tmp_path / "local.yaml"
    config.write_text(json.dumps({"zones": [{"name": "local-1", "cpus": 1, "memory": 4, "price": 0},
                                            {"name": "local-2", "cpus": 1, "memory": 4, "price": 1}]}))
    monkeypatch.setenv("SKYPLAN_LOCAL_CONFIG", str(config))
    monkeypatch.setenv("SKYPLAN_LOCAL_SLOTS_DIR", str(tmp_path / "slots"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    killed, other = Case(tmp_path / "a"), Case(tmp_path / "b")
    try:
        killed.compile()
        killed.gate_a.touch()
        proc = killed.start()
        wait_for(lambda: killed.task_running("a"), "task a of the killed run")
        kill(proc)
        other.compile()
        done = other.cli("apply", str(other.out), "--json", timeout=300)
        assert done.returncode == 0, done.stderr + done.stdout[-3000:]
        excluded = other.events("zone_excluded")
        assert [e["token"] for e in excluded] == ["local:local-1"]
        # The refusal names the holder: the killed run's executor and its work directory.
        assert "taken by other runs: pid" in other.events("failure_classified")[0]["message"]
        assert str(killed.out) in other.events("failure_classified")[0]["message"]
        other.outputs_ok()

        killed.destroy_cleans_everything()  # the orphans go, and with them the slot
        done = other.cli("apply", str(other.out), "--json", timeout=300)
        assert done.returncode == 0, done.stderr
        assert [e["tokens"] for e in other.events("exclusion_lifted")] == [["local:local-1"]]
        assert "local:local-1" not in json.loads((other.out / ".skyplan" / "exclusions.json").read_text())
        # The plan may stay where it ran (placement is sticky), but local-1 is no longer ruled out.
        assert "local:local-1" not in json.loads((other.out / "plan.json").read_text())["excluded_zones"]
        other.destroy_cleans_everything()
    finally:
        for c in (killed, other):
            if c.running():
                c.cli("destroy", str(c.out))


# -- item 7: the race behind "No state file was found!" -------------------------------------------

_REWRITER = """
import fcntl, os, sys, time
path, hold = sys.argv[1], float(sys.argv[2])
data = open(path, "rb").read()
fd = os.open(path, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)  # Terraform's own state lock
os.ftruncate(fd, 0)             # Terraform's local backend rewrites the state in place
print("truncated", flush=True)
time.sleep(hold)                # a loaded machine: the rewrite is slow
os.pwrite(fd, data, 0)
"""


def test_destroy_waits_for_the_terraform_a_killed_run_left_behind(case):
    """A Terraform left behind by a killed skyplan is still rewriting terraform.tfstate when
    `skyplan destroy` starts. Destroy must wait for it (its process record), not read the file
    mid-rewrite (the flaky "No state file was found!" of item 7). The rewrite is held for 5 s,
    longer than any re-read would wait, so this fails deterministically without the fix."""
    from skyplan import procs

    _killed_mid_task(case)
    state = case.out / "local" / "terraform.tfstate"
    rewriter = subprocess.Popen([sys.executable, "-c", _REWRITER, str(state), "5"], stdout=subprocess.PIPE,
                                text=True)
    try:
        assert rewriter.stdout.readline().strip() == "truncated"
        procs.record(case.out, "terraform", rewriter.pid, stack="local", command="apply")
        done = case.cli("destroy", str(case.out))
        assert done.returncode == 0, done.stderr + done.stdout
        assert rewriter.poll() == 0, "destroy returned before the left-behind Terraform ended"
    finally:
        rewriter.kill()
        rewriter.wait()
    assert case.events("waiting_for_leftovers")[-1]["processes"][0]["pid"] == rewriter.pid
    assert case.running() == [] and case.state() == []
    case.resume_gives_right_outputs()
