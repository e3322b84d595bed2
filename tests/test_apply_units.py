"""The apply package's scheduling and failover without Terraform.

The pure rules (skyplan/apply/schedule.py, failover.py) are called directly; the loop
(skyplan/apply/run.py) runs real compiled `local` plans through `apply(runner=FakeRunner())`, a
Runner that keeps its own state and plays the local executor: for every task switched on it
writes the task's status.json into the run's storage, or fails the apply with the diagnostic a
full local zone gives. Everything else (plan.json, events.jsonl, recompiles, exclusions, result
ids) is skyplan's own code.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from skyplan import apply as apply_mod
from skyplan.apply import schedule
from skyplan.apply.failover import _location_token
from skyplan.errors import ApplyError, GaveUpError
from skyplan.models import FailureScope
from skyplan.pipeline import compile_plan
from skyplan.runstate import file_uri_path, join_uri, read_events
from skyplan.terraform import Diagnostic, PlanResult, RunResult

# -- the pure rules ---------------------------------------------------------------------------------

DIAMOND = {
    "a": {"cloud": "local", "depends_on": []},
    "b": {"cloud": "local", "depends_on": ["a"]},
    "c": {"cloud": "ssh", "depends_on": ["a"]},
    "d": {"cloud": "local", "depends_on": ["b", "c"]},
}


def test_ready_tasks_follow_the_dag():
    assert schedule.ready_tasks(DIAMOND, set(), set(), limited=False) == ["a"]
    assert schedule.ready_tasks(DIAMOND, set(), {"a"}, limited=False) == []
    assert schedule.ready_tasks(DIAMOND, {"a"}, set(), limited=False) == ["b", "c"]
    assert schedule.ready_tasks(DIAMOND, {"a", "b"}, {"c"}, limited=False) == []
    assert schedule.ready_tasks(DIAMOND, {"a", "b", "c"}, set(), limited=False) == ["d"]
    assert schedule.never_startable(DIAMOND, {"a", "b", "c", "d"}) == []
    assert schedule.never_startable(DIAMOND, {"a"}) == ["b", "c", "d"]


def test_desired_active_puts_each_task_on_its_stack():
    desired = schedule.desired_active(DIAMOND, ["local", "ssh"], ["b", "c"])
    assert desired == {"local": {"b"}, "ssh": {"c"}}
    assert schedule.desired_active(DIAMOND, ["local", "ssh"], []) == {"local": set(), "ssh": set()}


def test_capacity_rule_waits_for_every_task_planned_to_end_by_the_start():
    # x and y are independent but the plan ran y after x (a quota fits only one at a time).
    tasks = {"x": {"cloud": "aws", "start_hours": 0.0, "end_hours": 2.0},
             "y": {"cloud": "aws", "start_hours": 2.0, "end_hours": 3.0},
             "z": {"cloud": "aws", "start_hours": 0.5, "end_hours": 1.0}}
    assert schedule.ready_tasks(tasks, set(), set(), limited=True) == ["x", "z"]
    assert schedule.ready_tasks(tasks, {"z"}, {"x"}, limited=True) == []  # y waits for x
    assert schedule.ready_tasks(tasks, {"x", "z"}, set(), limited=True) == ["y"]
    assert schedule.ready_tasks(tasks, set(), set(), limited=False) == ["x", "y", "z"]
    assert schedule.is_limited({"constraints": {"quotas": [{"scope": "aws"}]}})
    assert not schedule.is_limited({"constraints": {}})


def test_location_token_names_the_failed_scope():
    task = {"cloud": "aws", "region": "us-east-1", "zone": "us-east-1a"}
    assert _location_token(task, FailureScope.ZONE) == "aws:us-east-1a"
    assert _location_token(task, FailureScope.REGION) == "aws:us-east-1"
    assert _location_token(task, FailureScope.CLOUD) == "aws"
    assert _location_token({"cloud": "azure", "region": "eastus"}, FailureScope.ZONE) == "azure:eastus"


# -- the loop with a fake runner --------------------------------------------------------------------


class FakeRunner:
    """A Runner without Terraform: state is the set of active tasks per stack directory."""

    def __init__(self, *, failing_zones: set[str] = frozenset(), exit_codes: dict[str, int] | None = None,
                 on_apply=None):
        self.failing_zones = set(failing_zones)
        self.exit_codes = exit_codes or {}
        self.on_apply = on_apply
        self.extra_env: dict[str, str] = {}
        self.on_notice = None
        self.state: dict[Path, set[str]] = {}
        self.started: list[list[str]] = []  # tasks switched on, one list per successful apply
        self.destroyed: list[str] = []
        self.interrupted = False
        self._plans: dict[Path, dict] = {}

    def describe(self) -> str:
        return "fake runner"

    def interrupt(self) -> None:
        self.interrupted = True

    def init(self, directory) -> RunResult:
        return RunResult(command="init", returncode=0)

    def plan(self, directory, variables, *, replace=(), on_event=None) -> PlanResult:
        planfile = Path(directory) / "fake.tfplan"
        self._plans[planfile] = dict(variables)
        return PlanResult(command="plan", returncode=0, planfile=planfile)

    def apply(self, directory, planfile, *, on_event=None) -> RunResult:
        directory = Path(directory)
        variables = self._plans.pop(Path(planfile))
        want = set(variables["active_tasks"])
        have = self.state.setdefault(directory, set())
        starting = sorted(want - have)
        if self.on_apply is not None:
            self.on_apply(self)
        if self.interrupted:
            return RunResult(command="apply", returncode=130, interrupted=True)
        zones = {t["name"]: t.get("zone") for t in json.loads((directory.parent / "plan.json").read_text())["tasks"]}
        failed = [n for n in starting if zones.get(n) in self.failing_zones]
        have.clear()
        have.update(want - set(failed))
        if failed:
            diags = [Diagnostic("error", "local-exec provisioner error",
                                f"skyplan-local: zone {zones[n]} has no free slot for task {n}",
                                address=f"module.{n}[0].terraform_data.node[0]") for n in failed]
            return RunResult(command="apply", returncode=1, diagnostics=diags)
        for n in starting:  # what the local executor does: run, then write status.json
            base = join_uri(variables["storage"], n)
            rid_path = file_uri_path(join_uri(base, "result-id"))
            rid = rid_path.read_text().strip() if rid_path.exists() else None
            status = file_uri_path(join_uri(base, "status.json"))
            status.parent.mkdir(parents=True, exist_ok=True)
            status.write_text(json.dumps({"exit_code": self.exit_codes.get(n, 0), "result_id": rid}))
        self.started.append(starting)
        return RunResult(command="apply", returncode=0, changes={"add": len(starting)})

    def destroy(self, directory, variables, *, on_event=None) -> RunResult:
        self.destroyed.append(Path(directory).name)
        removed = len(self.state.get(Path(directory), ()))
        self.state[Path(directory)] = set()
        return RunResult(command="destroy", returncode=0, changes={"remove": removed})

    def state_resources(self, directory) -> list[str]:
        return [f"module.{n}[0].terraform_data.node[0]" for n in sorted(self.state.get(Path(directory), ()))]


DIAMOND_SPEC = """\
name: diamond
allowed: {clouds: [local]}
tasks:
  - {name: a, resources: {cpus: 1}, run: echo a}
  - {name: b, depends_on: [a], resources: {cpus: 1}, run: echo b}
  - {name: c, depends_on: [a], resources: {cpus: 1}, run: echo c}
  - {name: d, depends_on: [b, c], resources: {cpus: 1}, run: echo d}
"""


@pytest.fixture
def local_zones(tmp_path, monkeypatch):
    def configure(*zones: dict) -> None:
        path = tmp_path / "local.yaml"
        path.write_text(json.dumps({"zones": list(zones)}))
        monkeypatch.setenv("SKYPLAN_LOCAL_CONFIG", str(path))

    monkeypatch.setenv("SKYPLAN_LOCAL_SLOTS_DIR", str(tmp_path / "slots"))
    configure({"name": "local-1", "cpus": 4, "memory": 8})
    return configure


def compiled(tmp_path: Path, text: str = DIAMOND_SPEC) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    out = tmp_path / "out"
    compile_plan(spec, out)
    return out


def events(directory: Path, kind: str) -> list[dict]:
    return [e for e in read_events(directory) if e["event"] == kind]


def test_tasks_start_in_dag_order_and_everything_is_torn_down(tmp_path, local_zones):
    out = compiled(tmp_path)
    runner = FakeRunner()
    outcome = apply_mod.apply(out, runner=runner)
    assert outcome.ok and outcome.exit_code == 0 and outcome.attempts == 1
    assert runner.started == [["a"], ["b", "c"], ["d"]]
    assert {t.task: t.state for t in outcome.tasks} == dict.fromkeys("abcd", "succeeded")
    assert runner.destroyed == ["local"] and runner.state_resources(out / "local") == []


def test_a_zone_failure_excludes_the_zone_recompiles_and_applies_again(tmp_path, local_zones):
    local_zones({"name": "local-1", "cpus": 4, "memory": 8},
                {"name": "local-2", "cpus": 4, "memory": 8, "price": 0.01})
    out = compiled(tmp_path)
    assert {t["zone"] for t in json.loads((out / "plan.json").read_text())["tasks"]} == {"local-1"}
    runner = FakeRunner(failing_zones={"local-1"})
    outcome = apply_mod.apply(out, runner=runner, max_attempts=3)
    assert outcome.ok and outcome.attempts == 2
    assert [(e["task"], e["scope"], e["code"]) for e in events(out, "failure_classified")] == [
        ("a", "zone", "LocalNoFreeSlot")]
    assert [e["token"] for e in events(out, "zone_excluded")] == ["local:local-1"]
    assert len(events(out, "recompiled")) == 1
    assert outcome.excluded == ["local:local-1"]
    assert {e["zone"] for e in events(out, "task_succeeded")} == {"local-2"}
    assert runner.started == [["a"], ["b", "c"], ["d"]]  # only successful applies are listed


def test_failover_gives_up_after_max_attempts(tmp_path, local_zones):
    local_zones(*({"name": f"local-{i}", "cpus": 4, "memory": 8, "price": i / 100} for i in (1, 2, 3)))
    out = compiled(tmp_path)
    runner = FakeRunner(failing_zones={"local-1", "local-2", "local-3"})
    with pytest.raises(GaveUpError, match=r"gave up after 2 attempt\(s\)"):
        apply_mod.apply(out, runner=runner, max_attempts=2)
    assert [e["token"] for e in events(out, "zone_excluded")] == ["local:local-1"]
    assert runner.started == [] and runner.state_resources(out / "local") == []


def test_failover_gives_up_when_no_location_is_left(tmp_path, local_zones):
    out = compiled(tmp_path)
    with pytest.raises(GaveUpError, match="no placement left"):
        apply_mod.apply(out, runner=FakeRunner(failing_zones={"local-1"}), max_attempts=5)


def test_a_task_failing_by_exit_code_is_not_failed_over(tmp_path, local_zones):
    out = compiled(tmp_path)
    runner = FakeRunner(exit_codes={"b": 3})
    with pytest.raises(ApplyError, match=r"task 'b' failed \(exit code 3\)"):
        apply_mod.apply(out, runner=runner)
    assert events(out, "zone_excluded") == [] and events(out, "recompiled") == []
    assert "d" not in [n for batch in runner.started for n in batch]
    assert runner.state_resources(out / "local") == []


def test_reused_results_are_skipped_and_rerun_runs_again(tmp_path, local_zones):
    out = compiled(tmp_path)
    apply_mod.apply(out, runner=FakeRunner())
    again = FakeRunner()
    outcome = apply_mod.apply(out, runner=again)
    assert outcome.ok and again.started == []
    assert outcome.message == "nothing to do: all 4 tasks already succeeded"
    assert sorted(e["task"] for e in events(out, "task_reused")) == list("abcd")
    partly = FakeRunner()
    apply_mod.apply(out, runner=partly, rerun=["c"])
    assert partly.started == [["c"], ["d"]]  # c and its downstream; a and b are reused


def test_ctrl_c_stops_starting_tasks_and_destroys_everything(tmp_path, local_zones):
    out = compiled(tmp_path)

    def press_ctrl_c_during_b(runner: FakeRunner) -> None:
        if runner.started == [["a"]]:  # the second apply (b and c): the user presses Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)

    runner = FakeRunner(on_apply=press_ctrl_c_during_b)
    with pytest.raises(apply_mod.Interrupted):
        apply_mod.apply(out, runner=runner)
    assert runner.interrupted and runner.started == [["a"]]
    assert runner.state_resources(out / "local") == [] and "local" in runner.destroyed
    finished = events(out, "run_finished")[-1]
    assert finished["exit_code"] == apply_mod.EXIT_INTERRUPTED and not finished["ok"]


# -- what apply asks of targets ---------------------------------------------------------------------


def test_target_facts_come_from_the_registry():
    from skyplan.executor import USER_DATA_LIMITS
    from skyplan.targets import get_target, paid_target_names, price_refreshed_names, target_names

    assert target_names() == ("aws", "gcp", "azure", "local", "ssh")
    assert paid_target_names() == ("aws", "gcp", "azure")
    assert price_refreshed_names() == ("aws", "gcp", "azure")
    assert {n: get_target(n).user_data_limit for n in target_names()} == {
        **USER_DATA_LIMITS, "local": None, "ssh": None}
    assert not get_target("local").paid and get_target("aws").paid
