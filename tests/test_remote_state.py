"""Remote state for real: Terraform's S3 backend and skyplan's run state against a moto S3 server.

A `local` DAG is applied with `--backend s3://…`; a run killed with SIGKILL mid-apply is resumed
from a fresh copy of the committed plan that holds no state; a concurrent apply is refused by
the remote run lock; and `skyplan destroy` from a third copy removes everything."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skyplan.targets.local import reap_work_dirs
from tests.moto_backend import MotoS3, moto_s3  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
LOCK_TTL_S = 6  # SKYPLAN_RUN_LOCK_TTL: how long a killed run's lock blocks the next one

SLOW_DAG = """\
name: slowdag
allowed:
  clouds: [local]
storage: file://{storage}
tasks:
  - name: first
    resources: {{cpus: 1+}}
    run: echo one > "$SKYPLAN_OUTPUT_DIR/one.txt"
    hours: 0.01
  - name: second
    depends_on: [first]
    resources: {{cpus: 1+}}
    run: |
      sleep {sleep}
      cat "$SKYPLAN_INPUT_DIR/first/one.txt" > "$SKYPLAN_OUTPUT_DIR/two.txt"
    hours: 0.01
  - name: third
    depends_on: [second]
    resources: {{cpus: 1+}}
    run: cat "$SKYPLAN_INPUT_DIR/second/two.txt" > "$SKYPLAN_OUTPUT_DIR/three.txt"
    hours: 0.01
"""


class Checkout:
    """The committed plan and fresh copies of it, as CI runners would check it out."""

    def __init__(self, root: Path, moto: MotoS3, *, sleep: int = 6):
        self.root, self.moto = root, moto
        # Task outputs go to storage every runner reaches (here a shared folder, in CI a bucket).
        self.storage = root / "storage"
        self.prefix = f"plans/{root.name}"
        # Own CPU slots: local tasks of other tests running on this machine do not take ours.
        self.env = dict(os.environ, PYTHONPATH=str(REPO), SKYPLAN_RUN_LOCK_TTL=str(LOCK_TTL_S),
                        SKYPLAN_LOCAL_SLOTS_DIR=str(root / "slots"), **moto.env)
        spec = root / "slow.yaml"
        spec.write_text(SLOW_DAG.format(storage=self.storage, sleep=sleep))
        self.plan = root / "plan"
        res = self.skyplan("compile", str(spec), "-o", str(self.plan), "--backend",
                           f"s3://{moto.bucket}/{self.prefix}?region=eu-west-1")
        assert res.returncode == 0, res.stderr

    def fresh(self, name: str) -> Path:
        """A copy of the committed plan: no events, no Terraform state, no lock."""
        copy = self.root / name
        shutil.copytree(self.plan, copy)
        return copy

    def skyplan(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "skyplan", *args], env=self.env, capture_output=True,
                              text=True, timeout=600)

    def start_apply(self, directory: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "skyplan", "apply", str(directory), "--auto-approve"],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    def remote_resources(self) -> list:
        doc = json.loads(self.moto.read(f"{self.prefix}/local/terraform.tfstate"))
        return [r for r in doc.get("resources", []) if r.get("instances")]


def events(directory: Path) -> list[dict]:
    path = directory / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def kill_runner(proc: subprocess.Popen, directory: Path) -> None:
    """SIGKILL the apply and everything of its runner (a CI runner that died takes its processes)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    reap_work_dirs(directory / ".skyplan" / "work")


def started(directory: Path, task: str) -> bool:
    return any(e.get("event") == "task_started" and e.get("task") == task for e in events(directory))


def apply_when_unlocked(checkout: Checkout, directory: Path) -> tuple[subprocess.CompletedProcess, int]:
    """`skyplan apply`, retried while the killed run's lock has not expired; the refusals counted."""
    refused = 0
    while True:
        res = checkout.skyplan("apply", str(directory), "--auto-approve")
        if res.returncode == 2 and "remote lock" in res.stderr:
            refused += 1
            assert refused < 60, res.stderr
            time.sleep(0.5)
            continue
        return res, refused


def no_task_processes(*dirs: Path) -> bool:
    needles = [f"SKYPLAN_WORK_DIR={d.resolve()}/".encode() for d in dirs]
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(item.startswith(n) for item in environ for n in needles):
            return False
    return True


def test_apply_keeps_terraform_and_run_state_in_the_backend(tmp_path: Path, moto_s3: MotoS3):  # noqa: F811
    co = Checkout(tmp_path, moto_s3, sleep=0)
    res = co.skyplan("apply", str(co.plan), "--auto-approve")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (co.storage / "slowdag" / "third" / "outputs" / "three.txt").read_text() == "one\n"
    assert moto_s3.keys(co.prefix) == sorted([f"{co.prefix}/.skyplan/events.jsonl",
                                              f"{co.prefix}/.skyplan/plan.applied.json",
                                              f"{co.prefix}/local/terraform.tfstate"])  # lock released
    assert not (co.plan / "local" / "terraform.tfstate").exists()
    assert moto_s3.read(f"{co.prefix}/.skyplan/events.jsonl") == (co.plan / "events.jsonl").read_bytes()
    assert co.remote_resources() == []  # every task's machine was torn down
    # The committed plan is still current: run state never counts for --check.
    check = co.skyplan("compile", str(tmp_path / "slow.yaml"), "--backend",
                       f"s3://{moto_s3.bucket}/{co.prefix}?region=eu-west-1", "--check", str(co.plan))
    assert check.returncode == 0, check.stdout


def test_concurrent_apply_is_refused_by_the_remote_lock(tmp_path: Path, moto_s3: MotoS3):  # noqa: F811
    co = Checkout(tmp_path, moto_s3, sleep=8)
    first, second = co.fresh("runner-1"), co.fresh("runner-2")
    proc = co.start_apply(first)
    try:
        wait_for(lambda: started(first, "second"), "the first run to reach task second")
        res = co.skyplan("apply", str(second), "--auto-approve")
        assert res.returncode == 2, res.stdout + res.stderr
        assert "another skyplan run holds this plan's remote lock" in res.stderr
        assert not events(second), "the refused run recorded events"
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
    finally:
        if proc.poll() is None:
            kill_runner(proc, first)
    assert (co.storage / "slowdag" / "third" / "outputs" / "three.txt").exists()


def test_killed_apply_resumes_from_a_fresh_checkout(tmp_path: Path, moto_s3: MotoS3):  # noqa: F811
    co = Checkout(tmp_path, moto_s3, sleep=30)
    first = co.fresh("runner-1")
    proc = co.start_apply(first)
    wait_for(lambda: started(first, "second"), "the first run to reach task second")
    kill_runner(proc, first)
    assert not (co.storage / "slowdag" / "second" / "outputs" / "two.txt").exists()

    # The next job, on another runner: a fresh checkout that holds no state at all.
    second = co.fresh("runner-2")
    killed_at = time.time()
    res, refused = apply_when_unlocked(co, second)
    done_at = time.time()
    assert res.returncode == 0, res.stdout + res.stderr
    assert refused >= 1, "the killed run's lock did not hold until it expired"
    log = events(second)
    resumed = [e for e in log if e["event"] == "run_started"][-1]["t"]
    relaunched = [e for e in log if e["event"] == "task_started" and e.get("task") == "second"][-1]["t"]
    print(f"\nresume after SIGKILL (lock TTL {LOCK_TTL_S} s, {refused} refusal(s) while it was live): "
          f"run resumed {resumed - killed_at:.1f} s after the kill, task `second` relaunched "
          f"{relaunched - resumed:.1f} s after that, the DAG done {done_at - killed_at:.1f} s after the kill "
          "(task `second` sleeps 30 s)")
    kinds = [(e["event"], e.get("task")) for e in log]
    assert ("task_reused", "first") in kinds, kinds  # the first task ran once, on the killed runner
    assert ("task_started", "second") in kinds  # the interrupted task ran again
    assert [e["event"] for e in log][0] == "run_started" and len([e for e in log if e["event"] == "run_started"]) == 2
    assert (co.storage / "slowdag" / "third" / "outputs" / "three.txt").read_text() == "one\n"
    assert co.remote_resources() == []
    assert moto_s3.keys(f"{co.prefix}/local/") == [f"{co.prefix}/local/terraform.tfstate"]  # no stale tflock


def test_destroy_from_a_third_checkout_leaves_nothing(tmp_path: Path, moto_s3: MotoS3):  # noqa: F811
    co = Checkout(tmp_path, moto_s3, sleep=60)
    first = co.fresh("runner-1")
    proc = co.start_apply(first)
    # Let task `second`'s machine exist in the remote state, then kill the job without its teardown.
    wait_for(lambda: started(first, "second"), "the first run to reach task second")
    wait_for(lambda: co.remote_resources(), "a task resource in the remote state")
    os.killpg(proc.pid, signal.SIGKILL)  # the runner itself lives on: its task process keeps running
    proc.wait()
    assert co.remote_resources()

    third = co.fresh("anywhere")
    # `status` on a checkout that never ran the apply reads the killed run's remote event log.
    shown = co.skyplan("status", str(third), "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    states = {row["task"]: row["state"] for row in json.loads(shown.stdout)}
    assert states["first"] == "succeeded" and states["second"] == "running", states
    deadline = time.monotonic() + 120
    while True:
        res = co.skyplan("destroy", str(third))
        if res.returncode == 2 and "remote lock" in res.stderr and time.monotonic() < deadline:
            time.sleep(0.5)
            continue
        break
    assert res.returncode == 0, res.stdout + res.stderr
    assert co.remote_resources() == []
    assert moto_s3.keys(f"{co.prefix}/local/") == [f"{co.prefix}/local/terraform.tfstate"]
    assert f"{co.prefix}/.skyplan/lock" not in moto_s3.keys(co.prefix)
    wait_for(lambda: no_task_processes(first, third), "the killed run's task processes to stop", timeout=30)
