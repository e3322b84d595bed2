"""The apply loop: run a compiled plan's stacks through Terraform in DAG order, watch tasks, tear down, fail over.

A task's machines exist exactly while it is in its stack's `active_tasks`. The loop turns a task
on when all its upstream tasks succeeded, with `terraform plan -out` + `apply PLANFILE` on its
stack (stacks of different targets run in parallel threads), and off again once its
`status.json` is in storage; a task finished by a local/ssh apply is turned off by the next apply
of its stack, and everything by a final destroy. A failed apply's diagnostics go to the
target's `classify_failure`: zone/region/cloud ⇒ that location is excluded, the failed task's
half-created resources are destroyed, the plan is recompiled (`pipeline.compile_plan` with the
previous placement as hint) and the loop goes on with tasks that still run kept when their
placement did not change; `none-retry` ⇒ the same placement again after a backoff. A task failing
by its own exit code is never failed over: everything is destroyed and the run ends with exit 1.
Ctrl-C stops starting work, forwards the interrupt to Terraform, destroys everything, exit 130.
Every step is an event in `DIR/events.jsonl` (see `runstate.py`), which is how `skyplan status
DIR` reports. A later apply resumes from storage: a task whose `status.json` there carries the
result id it would get now is reused, not run again (`results.py`).
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyplan import results

# One span for apply's watchdog and the VMs' cloud-side ceiling.
from skyplan.ceiling import GRACE_H as _WATCHDOG_GRACE_H
from skyplan.ceiling import WATCHDOG_FACTOR as _WATCHDOG_FACTOR
from skyplan.errors import ApplyError, GaveUpError, SkyplanError
from skyplan.models import FailureScope
from skyplan.runstate import EventLog, RunLock, file_uri_path, read_events
from skyplan.targets.base import Failure, Target
from skyplan.terraform import Runner, RunResult, find_terraform

EXIT_INTERRUPTED = 130
CLOUD_TARGETS = ("aws", "gcp", "azure")


def _watchdog_seconds(planned_hours: float) -> float:
    """How long a polled (cloud) task may run without writing its status before it is failed.

    `SKYPLAN_TASK_TIMEOUT_S` overrides it (tests, or users who know their tasks overrun)."""
    import os

    override = os.environ.get("SKYPLAN_TASK_TIMEOUT_S")
    if override:
        return float(override)
    return (_WATCHDOG_FACTOR * planned_hours + _WATCHDOG_GRACE_H) * 3600.0


_POLL_S = 5.0  # status polling of tasks whose apply returns before they finish (cloud VMs)
_LOG_TAIL_LINES = 20


class Interrupted(SkyplanError):
    """The user pressed Ctrl-C; everything the run created was destroyed."""

    exit_code = EXIT_INTERRUPTED


@dataclass
class TaskStatus:
    """One task of a run, as `skyplan status` shows it."""

    task: str
    state: str  # pending | running | succeeded | failed | stopped
    cloud: str | None
    zone: str | None
    attempt: int
    cost: float  # hourly price × nodes × hours it ran (so far)
    exit_code: int | None = None
    started: float | None = None
    finished: float | None = None


@dataclass
class ApplyOutcome:
    directory: Path
    ok: bool
    exit_code: int
    attempts: int
    tasks: list[TaskStatus]
    excluded: list[str]
    wall_s: float
    message: str = ""


# -- internal control flow ----------------------------------------------------------------------


class _TaskFailed(Exception):
    def __init__(self, task: str, exit_code: int | None, detail: str):
        super().__init__(task)
        self.task, self.exit_code, self.detail = task, exit_code, detail


class _Placement(Exception):
    """Provisioning failed in a way that rules out a location (or asks for a retry)."""

    def __init__(self, failures: list[tuple[str, Failure]]):
        super().__init__(failures)
        self.failures = failures


class _Broken(Exception):
    """Terraform failed for a reason no target recognises: stop and tell the user."""


class _Stop(Exception):
    pass


def _target(name: str) -> Target:
    try:
        from skyplan.targets import get_target
    except ImportError:  # registry not there (partial checkout): local/ssh are enough here
        get_target = None
    if get_target is not None:
        return get_target(name)
    if name == "local":
        from skyplan.targets.local import LocalTarget

        return LocalTarget()
    if name == "ssh":
        from skyplan.targets.ssh import SshTarget

        return SshTarget()
    raise ApplyError(f"unknown target {name!r}")


def _slug(task: str) -> str:
    from skyplan.hcl import cloud_name

    return cloud_name(task)


def _ids(task: str) -> tuple[str, ...]:
    from skyplan.hcl import cloud_name, hcl_identifier

    return tuple(dict.fromkeys((hcl_identifier(task), cloud_name(task), task)))


def _address_task(address: str | None, tasks: list[str]) -> str | None:
    """The task a resource address belongs to (`module.<id>[0]…`, `…["<task>"]`, `…_<id>`)."""
    if not address:
        return None
    best = None
    for task in tasks:
        for ident in _ids(task):
            if (f"module.{ident}[" in address or f"module.{ident}." in address or f'["{ident}"]' in address
                    or f".{ident}[" in address or address.endswith(f".{ident}")):
                best = task
    return best


def _spec_storage(directory: Path) -> str | None:
    import yaml

    path = directory / ".skyplan" / "spec.yaml"
    if not path.exists():
        return None
    try:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("storage"):
                return str(doc["storage"])
    except yaml.YAMLError:
        return None
    return None


def _exclusions(directory: Path) -> list[str]:
    path = directory / ".skyplan" / "exclusions.json"
    try:
        return list(json.loads(path.read_text()))
    except (OSError, ValueError):
        return []


def _location_token(task: Mapping[str, Any], scope: FailureScope) -> str:
    cloud, region, zone = task["cloud"], task["region"], task.get("zone")
    if scope is FailureScope.CLOUD:
        return cloud
    if scope is FailureScope.REGION or not zone:
        return f"{cloud}:{region}"
    return f"{cloud}:{zone}"


class _Stack:
    """One root stack `DIR/<target>/` and what is switched on in it."""

    def __init__(self, directory: Path, name: str, plan_name: str, storage_base: str | None):
        self.name = name
        self.dir = directory / name
        self.target = _target(name)
        storage = self.target.storage_uri(storage_base, plan_name)
        if storage.startswith("file://") and not storage.startswith("file:///"):
            # Relative file:// storage lives in the run directory, wherever apply runs from.
            storage = "file://" + str((directory / file_uri_path(storage)).resolve())
        self.storage = storage
        self.plan_name = plan_name
        self.active: set[str] = set()
        self.extra_vars: dict[str, Any] = {}
        self.initialised = False

    def variables(self, active: set[str]) -> dict[str, Any]:
        return {"active_tasks": sorted(active), "storage": self.storage, "plan": self.plan_name,
                **self.extra_vars}


class _Run:
    def __init__(self, directory: Path, runner: Runner, log: EventLog, *, max_attempts: int,
                 catalog_dir: str | Path | None, on_tf_event: Callable[[str, dict], None] | None):
        self.dir = directory
        self.runner = runner
        self.log = log
        self.max_attempts = max_attempts
        self.catalog_dir = catalog_dir
        self.on_tf_event = on_tf_event
        self.stop = threading.Event()
        self.stacks: dict[str, _Stack] = {}
        self.doc: dict[str, Any] = {}
        self.hint = None  # Placement of the last recompile (the optimizer's warm start)
        self.attempt = 0
        self.running: dict[str, float] = {}  # task → time it was switched on
        self.done: set[str] = set()
        self.env: dict[str, str] = {}
        self.sessions: ExitStack | None = None  # target sessions (ssh-agent…) held for the run
        self.in_session: set[str] = set()
        self._sigints = 0
        self.first_attempt = 1
        self._spec = None  # the spec's Tasks (workdir, file_mounts), parsed on first need
        self.spec_dir = directory
        self.rerun: set[str] = set()  # `--rerun`: tasks (and their downstream) never reused
        self.ids: dict[str, str | None] | None = None  # result ids for the current plan
        self.stack_only = False  # destroy: without any readable plan, work from the stacks alone
        runner.on_notice = lambda stack_dir, note: log.emit("state_recovered", stack=Path(stack_dir).name,
                                                            message=note)

    # -- plan and stacks -----------------------------------------------------------------------

    def load_plan(self) -> None:
        from skyplan import runfiles

        try:  # a damaged plan.json is put back from the copy this run keeps (9.3)
            self.doc = runfiles.load_plan(self.dir, restore=True,
                                          warn=lambda m: self.log.emit("plan_recovered", message=m))
        except SkyplanError:
            if not self.stack_only:
                raise
            self.doc = runfiles.stack_only_plan(self.dir)  # destroy from the stacks' own files
        self.tasks = {t["name"]: t for t in self.doc["tasks"]}
        self.ids = None  # a recompile may change offerings, so result ids are recomputed
        storage_base = _spec_storage(self.dir)
        for name in sorted({t["cloud"] for t in self.doc["tasks"]} | set(self._stack_dirs_with_state())):
            if name not in self.stacks:
                self.stacks[name] = _Stack(self.dir, name, self.doc["name"], storage_base)
            stack = self.stacks[name]
            stack.initialised = False
            stack.extra_vars = stack.target.stack_variables(self.dir, self.doc)
            if self.sessions is not None and name not in self.in_session:
                # A stack that appears after a failover (e.g. local → ssh) gets its session too.
                self.in_session.add(name)
                extra = self.sessions.enter_context(stack.target.session(self.dir, self.doc))
                self.env.update(extra)
                self.runner.extra_env.update(extra)

    def _stack_dirs_with_state(self) -> list[str]:
        from skyplan.faults import stacks_with_state
        from skyplan.models import ALL_TARGETS

        return stacks_with_state(self.dir, ALL_TARGETS)

    def stack_of(self, task: str) -> _Stack:
        return self.stacks[self.tasks[task]["cloud"]]

    def _init(self, stack: _Stack) -> None:
        if not stack.initialised:
            self.runner.init(stack.dir)
            stack.initialised = True

    def _tf_event(self, stack: _Stack) -> Callable[[dict], None] | None:
        if self.on_tf_event is None:
            return None
        return lambda ev: self.on_tf_event(stack.name, ev)  # type: ignore[misc]

    # -- signals ---------------------------------------------------------------------------------

    def _on_sigint(self, signum: int, frame: object) -> None:
        self._sigints += 1
        if self._sigints == 1:
            self.stop.set()
            self.runner.interrupt()
            self.log.emit("interrupted", signal=signal.Signals(signum).name,
                          message="stopping: no new tasks; destroying what this run created")
        elif self._sigints >= 3:
            raise KeyboardInterrupt
        else:
            self.log.emit("interrupt_ignored", message="still destroying; Ctrl-C once more to abandon "
                          "(then run `skyplan destroy` on this directory)")

    # -- the loop -------------------------------------------------------------------------------

    def execute(self) -> ApplyOutcome:
        started = time.time()
        with ExitStack() as sessions:
            self.sessions = sessions
            try:
                return self._execute(started)
            finally:
                for key in self.env:
                    self.runner.extra_env.pop(key, None)
                self.sessions = None

    def _execute(self, started: float) -> ApplyOutcome:
        self.load_plan()
        previous = list(read_events(self.dir))
        self.done = self._reusable()
        self.attempt = max((e.get("attempt", 0) for e in previous if e.get("event") == "attempt_started"),
                           default=0)
        first_attempt = self.attempt + 1
        self.log.emit("run_started", directory=str(self.dir), terraform=self.runner.describe(),
                      plan=self.doc["name"], already_succeeded=sorted(self.done), max_attempts=self.max_attempts)
        from skyplan.runfiles import settle_leftovers

        # A killed run's Terraform may still be saving its state and waiting on its tasks: let
        # it end before the state is read or its task processes are reaped (item 7, 9.5).
        settle_leftovers(self.dir, self.log.emit)
        for name in sorted(self.done):
            self.log.emit("task_reused", task=name, result_id=self._result_ids()[name],
                          outputs=self._outputs_uri(name))
        self._reap()  # leftovers of a killed run: processes state does not know about
        from skyplan.faults import lift_stale_exclusions

        lift_stale_exclusions(self, previous)  # zones refused only while another run's leftovers ran (9.12)
        self.first_attempt = first_attempt
        self._check_runnable()
        self._check_sources()
        if set(self.tasks) <= self.done:
            self._teardown()  # converge: a previous run may have been killed after its last task
            return self._finish(True, 0, started, f"nothing to do: all {len(self.tasks)} tasks already succeeded")
        return self._attempts(started, first_attempt)

    def _check_runnable(self) -> None:
        """Refuse (exit 2) before anything is created when the plan cannot run as compiled:
        the blockers compile recorded in plan.json, the SDK that reads task status from a
        cloud's storage, programs the local/ssh targets need here or on their hosts
        (`skyplan.preflight`)."""
        from skyplan import preflight

        todo = sorted(set(self.tasks) - self.done)
        on_machines = [p for s in self.stacks.values() for p in s.target.check_machines(self.dir, self.doc, todo)]
        preflight.check(self.doc, skip=self.done, extra=on_machines)

    def _check_sources(self) -> None:
        """Fail before anything is created when a workdir or file_mounts source is missing."""
        from skyplan.staging import staged_sources

        for name in sorted(set(self.tasks) - self.done):
            task = self._spec_task(name)
            if task is not None and (task.workdir or task.file_mounts):
                staged_sources(task, self.spec_dir)

    def _attempts(self, started: float, first_attempt: int) -> ApplyOutcome:
        retries = 0
        while True:
            self.attempt += 1
            self.log.emit("attempt_started", attempt=self.attempt, placement=self._placement_summary())
            try:
                self._run_dag()
            except _Stop:
                self._teardown()
                msg = "interrupted; everything this run created was destroyed"
                self._finish(False, EXIT_INTERRUPTED, started, msg)
                raise Interrupted(msg) from None
            except _TaskFailed as exc:
                self._teardown()
                msg = f"task {exc.task!r} failed (exit code {exc.exit_code}); machines destroyed\n{exc.detail}"
                self._finish(False, ApplyError.exit_code, started, msg)
                raise ApplyError(msg) from None
            except _Broken as exc:
                self._teardown()
                msg = f"terraform failed (not a capacity or quota problem, so no failover):\n{exc}"
                self._finish(False, ApplyError.exit_code, started, msg)
                raise ApplyError(msg) from None
            except _Placement as exc:
                used = self.attempt - first_attempt + 1
                scopes = [f for _, f in exc.failures]
                retry_only = all(f.scope is FailureScope.RETRY for f in scopes)
                if used >= self.max_attempts:
                    self._teardown()
                    msg = (f"gave up after {used} attempt(s): "
                           + "; ".join(f"{t}: {f.code}: {f.message[:200]}" for t, f in exc.failures))
                    self._finish(False, GaveUpError.exit_code, started, msg)
                    raise GaveUpError(msg) from None
                if retry_only:
                    delay = min(30.0, 2.0 ** retries)
                    retries += 1
                    self.log.emit("retry_scheduled", attempt=self.attempt, delay_s=delay)
                    if self.stop.wait(delay):
                        self._teardown()
                        self._finish(False, EXIT_INTERRUPTED, started, "interrupted")
                        raise Interrupted("interrupted; everything this run created was destroyed") from None
                    continue
                try:
                    self._failover(exc.failures)
                except SkyplanError as err:  # nothing left to place the task on
                    self._teardown()
                    msg = f"gave up: no placement left after excluding failed locations: {err.message}"
                    self._finish(False, GaveUpError.exit_code, started, msg)
                    raise GaveUpError(msg) from None
                continue
            except BaseException as exc:
                from skyplan.faults import abort

                raise abort(self, exc, started) from None
            self._teardown()
            msg = f"all {len(self.tasks)} tasks succeeded"
            return self._finish(True, 0, started, msg)

    def _finish(self, ok: bool, code: int, started: float, message: str) -> ApplyOutcome:
        wall = time.time() - started
        self.log.emit("run_finished", ok=ok, exit_code=code, wall_s=round(wall, 3), message=message)
        return ApplyOutcome(self.dir, ok, code, max(0, self.attempt - self.first_attempt + 1), status(self.dir),
                            _exclusions(self.dir), wall, message)

    def _placement_summary(self) -> dict[str, str]:
        return {n: f"{t['cloud']}:{t.get('zone') or t['region']}" for n, t in sorted(self.tasks.items())}

    def _run_dag(self) -> None:
        while True:
            if self.stop.is_set():
                raise _Stop
            self._poll_running()
            ready = [n for n, t in self.tasks.items()
                     if n not in self.done and n not in self.running
                     and all(d in self.done for d in t.get("depends_on", ()))
                     and self._capacity_allows(n)]
            if not ready and not self.running:
                if len(self.done & set(self.tasks)) < len(self.tasks):
                    missing = sorted(set(self.tasks) - self.done)
                    raise _Broken(f"tasks {missing} can never start (an upstream task is missing)")
                return
            desired: dict[str, set[str]] = {name: set() for name in self.stacks}
            for n in [*self.running, *ready]:
                desired[self.tasks[n]["cloud"]].add(n)
            changed = [s for s in self.stacks.values() if desired[s.name] != s.active]
            if not changed:
                self.stop.wait(_POLL_S)
                continue
            applied = self._apply_stacks({s.name: desired[s.name] for s in changed}, ready)
            failures: list[tuple[str, Failure]] = []
            broken = []
            failed: list[_TaskFailed] = []
            for name, (res, starting) in applied.items():
                stack = self.stacks[name]
                if stack.target.apply_waits_for_tasks or not res.ok:
                    failed += self._collect_finished(stack, starting,
                                                     final=res.ok and stack.target.apply_waits_for_tasks)
                if res.ok:
                    stack.active = desired[name]
                    continue
                if self.stop.is_set() or res.interrupted:
                    raise _Stop
                f, b = self._classify(stack, res, starting)
                failures += f
                broken += b
            if failed:  # after every sibling that finished was recorded as succeeded (or failed)
                raise failed[0]
            if failures:
                raise _Placement(failures)
            if broken:
                raise _Broken("\n".join(broken))

    def _capacity_allows(self, task: str) -> bool:
        """Whether starting `task` now keeps quotas and zone/host capacity as the plan kept them.

        The optimizer's schedule fits every limit at every instant, but tasks finish earlier or
        later than planned. Rule: start a task only once every task planned to END by its planned
        START has finished. Then any two tasks running together have overlapping planned intervals,
        and intervals that overlap pairwise share a common instant (Helly), at which the plan ran
        them all at once within the limits. Plans without limits start tasks as soon as their
        inputs are ready."""
        if not self.doc.get("constraints", {}).get("quotas"):
            return True
        start = float(self.tasks[task].get("start_hours", 0.0))
        return all(other in self.done for other, t in self.tasks.items()
                   if other != task and float(t.get("end_hours", 0.0)) <= start + 1e-9)

    def _apply_stacks(self, desired: dict[str, set[str]], ready: list[str]
                      ) -> dict[str, tuple[RunResult, list[str]]]:
        def one(name: str) -> tuple[RunResult, list[str]]:
            stack = self.stacks[name]
            self._init(stack)
            want = desired[name]
            starting = sorted(n for n in want if n in ready)
            for n in starting:
                self._prepare_start(stack, n)
            self.log.emit("stack_apply_started", stack=name, attempt=self.attempt, active=sorted(want),
                          starting=starting, stopping=sorted(stack.active - want))
            for n in starting:
                t = self.tasks[n]
                self.running[n] = time.time()
                self.log.emit("task_started", task=n, attempt=self.attempt, cloud=t["cloud"],
                              region=t["region"], zone=t.get("zone"), instance_type=t.get("instance_type"),
                              hourly_price=t.get("hourly_price", 0.0), num_nodes=t.get("num_nodes", 1))
            from skyplan.faults import leftover_instances

            # A task starting with machines already in the state (a killed run's, whose provisioner
            # finished): replace them, or the apply is a no-op that waits for nothing (9.5).
            replace = leftover_instances(stack.dir, starting) if stack.target.apply_waits_for_tasks else []
            plan = self.runner.plan(stack.dir, stack.variables(want), replace=replace,
                                    on_event=self._tf_event(stack))
            if plan.ok and not self.stop.is_set():
                res = self.runner.apply(stack.dir, plan.planfile, on_event=self._tf_event(stack))
            elif plan.ok:  # interrupted during the plan: nothing was applied, no task ran (9.6)
                res = RunResult(command="apply", returncode=EXIT_INTERRUPTED, interrupted=True)
            else:
                res = plan
            self.log.emit("stack_apply_finished", stack=name, attempt=self.attempt, ok=res.ok,
                          elapsed_s=round(res.elapsed_s + (plan.elapsed_s if res is not plan else 0), 3),
                          changes=res.changes, errors=[d.text[:500] for d in res.errors])
            return res, starting

        names = sorted(desired)
        if len(names) == 1:
            return {names[0]: one(names[0])}
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            futures = {n: pool.submit(one, n) for n in names}
            return {n: f.result() for n, f in futures.items()}

    def _prepare_start(self, stack: _Stack, task: str) -> None:
        """Forget a stale status.json so that only this start's status counts, and stage the
        task's workdir and local file_mounts into the storage its machine reads."""
        from skyplan.runstate import join_uri
        from skyplan.staging import stage_task

        uri = join_uri(stack.storage, _slug(task), "status.json")
        if uri.startswith("file://"):
            file_uri_path(uri).unlink(missing_ok=True)
        elif uri.startswith("s3://"):
            _delete_s3(uri)
        try:
            if not uri.startswith(("file://", "s3://")):  # gs, Azure blob
                results.remove_object(uri)
            results.write_result_id(stack.storage, _slug(task), self._result_ids().get(task))
        except SkyplanError as exc:
            raise _Broken(f"task {task}: {exc.message}") from None
        spec_task = self._spec_task(task)
        if spec_task is not None and (spec_task.workdir or spec_task.file_mounts):
            try:
                uris = stage_task(spec_task, spec_dir=self.spec_dir, storage=stack.storage,
                                  plan_name=self.doc["name"])
            except SkyplanError as exc:
                raise _Broken(f"task {task}: {exc.message}") from None
            self.log.emit("task_staged", task=task, attempt=self.attempt, uris=uris)

    def _result_ids(self) -> dict[str, str | None]:
        """Each task's result id for the current plan (skyplan/results.py), computed once per plan."""
        if self.ids is None:
            defs: dict[str, dict | None] = {}
            for name, t in self.tasks.items():
                try:  # _spec_task sets spec_dir, which relative workdir paths are read against
                    task = self._spec_task(name)
                    defs[name] = None if task is None else results.task_definition(task, t, self.spec_dir)
                except (SkyplanError, OSError):  # never reused; _check_sources names the problem
                    defs[name] = None
            self.ids = results.result_ids(defs, {n: t.get("depends_on", ()) for n, t in self.tasks.items()})
        return self.ids

    def _reusable(self) -> set[str]:
        """Tasks whose result in storage has the id they would get now (and is not `--rerun`)."""
        ids = self._result_ids()
        stored = {}
        for name, rid in ids.items():
            if rid is not None:
                stack = self.stack_of(name)
                try:
                    stored[name] = results.stored_id(stack.target.task_status(stack.storage, _slug(name)))
                except SkyplanError:  # e.g. the storage SDK is missing: _check_runnable says so
                    stored[name] = None
        deps = {n: t.get("depends_on", ()) for n, t in self.tasks.items()}
        return results.reusable(ids, stored, deps, self.rerun)

    def _outputs_uri(self, task: str) -> str:
        from skyplan.runstate import join_uri

        return join_uri(self.stack_of(task).storage, _slug(task), "outputs") + "/"

    def _spec_task(self, task: str):
        """The spec's Task for `task` (from the spec copy in DIR), or None for an unreadable copy."""
        if self._spec is None:
            from skyplan.pipeline import SPEC_COPY, spec_origin
            from skyplan.spec import load_spec

            origin = spec_origin(self.dir)
            self.spec_dir = origin.parent
            self._spec = load_spec(origin, text=(self.dir / SPEC_COPY).read_text())
        try:
            return self._spec.task(task)
        except KeyError:
            return None

    def _collect_finished(self, stack: _Stack, tasks: list[str], *, final: bool) -> list[_TaskFailed]:
        """Record the tasks of `tasks` that have a status; with `final` (an apply that waits for
        its tasks succeeded) a task without one failed: its executor died before writing it.
        Every task is recorded, so a sibling that succeeded beside a failed one counts as
        succeeded; the failures are returned for the caller to raise."""
        failed = []
        for n in tasks:
            st = stack.target.task_status(stack.storage, _slug(n))
            if st is None and final:
                st = {"exit_code": None, "error": "the executor ended without writing status.json:\n"
                      + self._log_tail(n, {})}
            if st is not None:
                try:
                    self._task_done(stack, n, st)
                except _TaskFailed as exc:
                    failed.append(exc)
        return failed

    def _poll_running(self) -> None:
        failed: list[_TaskFailed] = []  # raised once every task that finished was recorded
        for n in list(self.running):
            stack = self.stack_of(n)
            if stack.target.apply_waits_for_tasks:
                continue
            st = stack.target.task_status(stack.storage, _slug(n))
            if st is not None and results.is_other_result(st, self._result_ids().get(n)):
                st = None  # an earlier run's status, not yet replaced by this start's executor
            if st is not None:
                try:
                    self._task_done(stack, n, st)
                except _TaskFailed as exc:
                    failed.append(exc)
                continue
            # A VM that was preempted, hangs, or cannot reach storage never writes status.json;
            # without a limit the loop would wait (and the machine bill) forever.
            planned_h = float(self.tasks[n].get("hours") or 1.0)
            limit_s = _watchdog_seconds(planned_h)
            waited = time.time() - self.running[n]
            if waited > limit_s:
                self.running.pop(n, None)
                detail = (f"no status.json after {waited / 3600:.1f} h ({_WATCHDOG_FACTOR:g}× the planned "
                          f"{planned_h:g} h + {_WATCHDOG_GRACE_H:g} h to boot): the machine was preempted, hangs, "
                          "or cannot write to storage")
                self.log.emit("task_failed", task=n, attempt=self.attempt, cloud=self.tasks[n]["cloud"],
                              zone=self.tasks[n].get("zone"), exit_code=None, reason="watchdog",
                              elapsed_s=round(waited, 3), log_tail=detail)
                failed.append(_TaskFailed(n, None, detail))
        if failed:
            raise failed[0]

    def _task_done(self, stack: _Stack, task: str, st: dict) -> None:
        started = self.running.pop(task, time.time())
        code = st.get("exit_code")
        elapsed = round(time.time() - started, 3)
        t = self.tasks[task]
        common = {"task": task, "attempt": self.attempt, "cloud": t["cloud"], "zone": t.get("zone"),
                  "exit_code": code, "elapsed_s": elapsed}
        if code == 0:
            self.done.add(task)
            self.log.emit("task_succeeded", spec_sha256=self.doc.get("inputs", {}).get("spec_sha256"),
                          result_id=st.get("result_id"), outputs=self._outputs_uri(task), **common)
            return
        tail = self._log_tail(task, st)
        self.log.emit("task_failed", log_tail=tail, log=self._log_file(task), **common)
        raise _TaskFailed(task, code, tail)

    def _log_file(self, task: str) -> str:
        """Where the task's log is for the user to read: its work directory here, else storage."""
        from skyplan.runstate import join_uri

        logs = sorted((self.dir / ".skyplan" / "work" / _slug(task)).glob("node-0/task.log"))
        return str(logs[0]) if logs else join_uri(self.stack_of(task).storage, _slug(task), "log-tail.txt")

    def _log_tail(self, task: str, st: Mapping[str, Any]) -> str:
        from skyplan.runstate import join_uri, read_text

        for key in ("log_tail", "error"):
            if st.get(key):
                return str(st[key])
        try:  # the executor uploads the last lines of its log next to status.json
            text = read_text(join_uri(self.stack_of(task).storage, _slug(task), "log-tail.txt"))
        except SkyplanError:
            text = None
        if text:
            return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])
        logs = sorted((self.dir / ".skyplan" / "work" / _slug(task)).glob("node-*/task.log"))
        if logs:
            lines = logs[0].read_text(errors="replace").splitlines()
            return "\n".join(lines[-_LOG_TAIL_LINES:])
        return "(no log found)"

    def _classify(self, stack: _Stack, res: RunResult, starting: list[str]
                  ) -> tuple[list[tuple[str, Failure]], list[str]]:
        failures: list[tuple[str, Failure]] = []
        broken: list[str] = []
        names = list(self.tasks)
        for diag in res.errors or []:
            task = _address_task(diag.address, names) or (starting[0] if len(starting) == 1 else None)
            failure = stack.target.classify_failure(diag.text)
            if task and failure and failure.scope is not FailureScope.NONE:
                self.running.pop(task, None)
                self.log.emit("failure_classified", task=task, stack=stack.name, attempt=self.attempt,
                              scope=failure.scope.value, code=failure.code, message=failure.message[:500],
                              address=diag.address, zone=self.tasks[task].get("zone"))
                failures.append((task, failure))
            else:
                self.log.emit("failure_unrecognised", task=task, stack=stack.name, attempt=self.attempt,
                              address=diag.address, message=diag.text[:1000],
                              code=failure.code if failure else None)
                broken.append(f"{diag.address or stack.name}: {diag.text}")
        if not res.errors:
            broken.append(f"{stack.name}: terraform exited with {res.returncode}: {res.error_text()[:2000]}")
        for n in starting:
            self.running.pop(n, None)
        return failures, broken

    # -- failover -------------------------------------------------------------------------------

    def _failover(self, failures: list[tuple[str, Failure]]) -> None:
        from skyplan.pipeline import recompile

        # Destroy what the failed attempt half-created: every stack back to what still runs.
        for stack in self.stacks.values():
            keep = {n for n in stack.active if n in self.running}
            if self.runner.state_resources(stack.dir):
                self._converge(stack, keep)
        excluded = _exclusions(self.dir)
        added = []
        for task, failure in failures:
            if failure.scope is FailureScope.RETRY:
                continue
            token = _location_token(self.tasks[task], failure.scope)
            if token not in excluded and token not in added:
                added.append(token)
                self.log.emit("zone_excluded", token=token, scope=failure.scope.value, task=task,
                              code=failure.code, attempt=self.attempt)
        t0 = time.time()
        old = {n: (t["cloud"], t.get("zone"), t["region"], t.get("instance_type")) for n, t in self.tasks.items()}
        result = recompile(self.dir, catalog_dir=self.catalog_dir, exclusions=[*excluded, *added], hint=self.hint)
        self.hint = result.placement
        self.load_plan()
        moved = [n for n, t in self.tasks.items()
                 if old.get(n) != (t["cloud"], t.get("zone"), t["region"], t.get("instance_type"))]
        for n in moved:  # a running task whose placement changed restarts in its new place
            self.running.pop(n, None)
        self.log.emit("recompiled", attempt=self.attempt, wall_s=round(time.time() - t0, 3),
                      excluded=[*excluded, *added], moved=sorted(moved), placement=self._placement_summary())

    def _converge(self, stack: _Stack, active: set[str]) -> None:
        self._init(stack)
        plan = self.runner.plan(stack.dir, stack.variables(active), on_event=self._tf_event(stack))
        res = self.runner.apply(stack.dir, plan.planfile, on_event=self._tf_event(stack)) if plan.ok else plan
        if res.ok:
            stack.active = set(active)
        else:
            self._destroy_stack(stack)

    # -- teardown -------------------------------------------------------------------------------

    def _destroy_stack(self, stack: _Stack) -> None:
        self._init(stack)
        res = self.runner.destroy(stack.dir, stack.variables(set()), on_event=self._tf_event(stack))
        stack.active = set()
        left = self.runner.state_resources(stack.dir)
        self.log.emit("destroyed", stack=stack.name, ok=res.ok and not left, left=left,
                      removed=res.changes.get("remove", 0), elapsed_s=round(res.elapsed_s, 3))
        if left:
            raise ApplyError(f"{stack.dir}: could not destroy {left}: {res.error_text()[:1000]}\n"
                             f"run `skyplan destroy {self.dir}` to try again")

    def _teardown(self) -> None:
        """Destroy every stack and reap leftovers; interrupts during this are not honoured twice."""
        self.running.clear()
        errors = []
        for stack in self.stacks.values():
            try:
                if self.runner.state_resources(stack.dir) or stack.active:
                    self._destroy_stack(stack)
            except SkyplanError as exc:  # disk full, unwritable DIR…: the reap below still runs
                errors.append(exc.message)
        self._reap()
        if errors:
            raise ApplyError("\n".join(errors))

    def _reap(self) -> None:
        for stack in self.stacks.values():
            stopped = stack.target.reap(self.dir)
            if stopped:
                self.log.emit("reaped", stack=stack.name, process_groups=stopped)


def _delete_s3(uri: str) -> None:
    from urllib.parse import urlparse

    try:
        import boto3
    except ImportError:
        return
    parsed = urlparse(uri)
    boto3.client("s3").delete_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))


# -- public API -----------------------------------------------------------------------------------


def apply(
    target_dir_or_spec: str | Path,
    *,
    out_dir: str | Path | None = None,
    catalog_dir: str | Path | None = None,
    auto_approve: bool = False,
    max_attempts: int = 3,
    json_events: bool = False,
    on_event: Callable[[dict], None] | None = None,
    confirm: Callable[[dict], bool] | None = None,
    runner: Runner | None = None,
    rerun: bool | Iterable[str] = (),
) -> ApplyOutcome:
    """Run a compiled DIR (or compile SPEC into `out_dir` first) to completion.

    Args:
        target_dir_or_spec: a compiled output directory, or a spec file.
        out_dir: where a spec is compiled (required with a spec).
        auto_approve: run plans with cloud (paid) tasks without `confirm`.
        max_attempts: attempts (the first one included) before giving up on failover (exit 4).
        json_events: also print every event as one JSON line on stdout.
        on_event: called with every skyplan event, and with `{"event": "terraform", "stack",
            "ui": <Terraform -json UI message>}` for Terraform's own progress.
        confirm: asked (with plan.json) before cloud tasks run when not `auto_approve`, once the
            plan passed `skyplan.preflight` (a plan that cannot run is refused first).
        rerun: True re-runs every task; task names re-run those and their downstream tasks. By
            default a task whose result in storage has its current result id is reused
            (`skyplan.results`).
    Returns:
        The outcome of a successful run.
    Raises:
        ApplyError: a task failed by its own exit code, or Terraform failed unrecognisably (exit 1).
        GaveUpError: failover exhausted `max_attempts` or ran out of locations (exit 4).
        Interrupted: Ctrl-C; everything was destroyed (exit 130).
    """
    directory = _resolve_dir(Path(target_dir_or_spec), out_dir, catalog_dir)

    def emit(ev: dict) -> None:
        if json_events:
            sys.stdout.write(json.dumps(ev, sort_keys=True, default=str) + "\n")
            sys.stdout.flush()
        if on_event is not None:
            on_event(ev)

    from skyplan.runfiles import load_plan

    doc = load_plan(directory)
    names = [t["name"] for t in doc["tasks"]]
    forced = set(names) if rerun is True else set(rerun or ())
    unknown = sorted(forced - set(names))
    if unknown:
        raise SkyplanError(f"--rerun: no task {', '.join(map(repr, unknown))} in the plan "
                           f"(tasks: {', '.join(sorted(names))})")
    from skyplan import preflight

    preflight.check(doc)  # refuse before asking: a prompt for a plan that cannot run misleads
    clouds = sorted({t["cloud"] for t in doc["tasks"]} & set(CLOUD_TARGETS))
    if clouds and not auto_approve:
        if confirm is None or not confirm(doc):
            raise SkyplanError(f"the plan creates paid resources on {', '.join(clouds)}: "
                               "review PLAN.md and pass --auto-approve")
    with RunLock(directory, "apply"):
        log = EventLog(directory, on_event=emit)
        run = _Run(directory, runner or find_terraform(), log, max_attempts=max_attempts,
                   catalog_dir=catalog_dir,
                   on_tf_event=(lambda stack, ev: emit({"event": "terraform", "stack": stack, "ui": ev}))
                   if (on_event or json_events) else None)
        run.rerun = forced
        previous = None
        if threading.current_thread() is threading.main_thread():
            # SIGTERM (CI cancel) and SIGHUP (a closed terminal) end in the same teardown as Ctrl-C.
            previous = {sig: signal.signal(sig, run._on_sigint)
                        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            return run.execute()
        finally:
            for sig, handler in (previous or {}).items():
                signal.signal(sig, handler)


def _resolve_dir(source: Path, out_dir: str | Path | None, catalog_dir: str | Path | None) -> Path:
    if source.is_dir():
        return source.resolve()
    if not source.is_file():
        raise SkyplanError(f"{source}: no such spec file or plan directory")
    if out_dir is None:
        raise SkyplanError(f"{source}: a spec needs an output directory to compile into")
    out = Path(out_dir)
    copy = out / ".skyplan" / "spec.yaml"
    # Re-applying the same spec resumes the run in `out`; a changed spec is compiled afresh.
    if not (copy.exists() and (out / "plan.json").exists() and copy.read_bytes() == source.read_bytes()):
        from skyplan.pipeline import CompileOptions, compile_plan

        compile_plan(source, out, CompileOptions(catalog_dir=catalog_dir))
    return out.resolve()


def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


def status(directory: str | Path) -> list[TaskStatus]:
    """Each task's state, zone, attempt and cost so far, from the plan and `events.jsonl`."""
    from skyplan.runfiles import load_plan

    directory = Path(directory)
    doc = load_plan(directory, warn=_warn)
    rows: dict[str, TaskStatus] = {
        # Azure plans have no zone: show the region (never "azure:None").
        t["name"]: TaskStatus(t["name"], "pending", t["cloud"], t.get("zone") or t.get("region"), 0, 0.0)
        for t in doc["tasks"]
    }
    prices = {t["name"]: (t.get("hourly_price") or 0.0) * (t.get("num_nodes") or 1) for t in doc["tasks"]}
    spent: dict[str, float] = {n: 0.0 for n in rows}
    live = False
    for ev in read_events(directory):
        kind, name = ev.get("event"), ev.get("task")
        if kind == "run_started":
            live = True
        elif kind == "run_finished":
            live = False
            for row in rows.values():
                if row.state == "running":
                    row.state = "stopped"
                    spent[row.task] += prices.get(row.task, 0.0) * (ev["t"] - (row.started or ev["t"])) / 3600
                    row.finished = ev["t"]
        if name not in rows:
            continue
        row = rows[name]
        if kind == "task_started":
            prices[name] = (ev.get("hourly_price") or 0.0) * (ev.get("num_nodes") or 1)
            row.state, row.cloud, row.zone = "running", ev.get("cloud"), ev.get("zone")
            row.attempt, row.started, row.finished, row.exit_code = ev.get("attempt", 0), ev["t"], None, None
        elif kind == "task_reused":
            row.state, row.exit_code, row.finished = "succeeded", 0, ev["t"]
        elif kind in ("task_succeeded", "task_failed"):
            row.state = "succeeded" if kind == "task_succeeded" else "failed"
            row.exit_code = ev.get("exit_code")
            row.finished = ev["t"]
            spent[name] += prices.get(name, 0.0) * (ev["t"] - (row.started or ev["t"])) / 3600
        elif kind == "failure_classified" and row.state == "running":
            row.state = "pending"
            row.finished = ev["t"]
            spent[name] += prices.get(name, 0.0) * (ev["t"] - (row.started or ev["t"])) / 3600
    now = time.time()
    for name, row in rows.items():
        running_cost = 0.0
        if row.state == "running" and live and row.started:
            running_cost = prices.get(name, 0.0) * (now - row.started) / 3600
        row.cost = round(spent[name] + running_cost, 6)
    order = sorted(doc["tasks"], key=lambda t: (t.get("start_hours") or 0.0, t["name"]))
    return [rows[t["name"]] for t in order]


def destroy(directory: str | Path, *, on_event: Callable[[dict], None] | None = None,
            runner: Runner | None = None) -> list[str]:
    """Destroy every stack of DIR that has state and stop leftover task processes; return the stacks."""
    from skyplan.faults import destroy_from_whatever_is_left

    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise SkyplanError(f"{directory}: no such plan directory")
    runner = runner or find_terraform()
    with RunLock(directory, "destroy"):
        log = EventLog(directory, on_event=on_event)
        run = _Run(directory, runner, log, max_attempts=1, catalog_dir=None, on_tf_event=None)
        run.stack_only = True  # no readable plan (nor copy of it) must not keep machines alive
        with ExitStack() as sessions:
            run.sessions = sessions
            try:
                destroyed = destroy_from_whatever_is_left(run)
            finally:
                for key in run.env:
                    runner.extra_env.pop(key, None)
        log.emit("destroy_finished", stacks=destroyed)
        return destroyed


# -- CLI glue (skyplan/cli.py calls these) --------------------------------------------------------


def run_cli(source: Path, directory: Path, *, catalog_dir: str | Path | None, auto_approve: bool,
            max_attempts: int, as_json: bool, interactive: bool, rerun: bool | Iterable[str] = ()) -> int:
    """`skyplan apply`: progress on the terminal (or JSON lines), then a summary; returns the exit code."""
    view = _ApplyView(as_json=as_json)

    def confirm(doc: dict) -> bool:
        if not interactive:
            return False
        import click

        view.show_plan(doc)
        return click.confirm("Create these machines?", default=False, err=True)

    try:
        outcome = apply(source, out_dir=directory, catalog_dir=catalog_dir, auto_approve=auto_approve,
                        max_attempts=max_attempts, on_event=view.on_event, confirm=confirm, rerun=rerun)
    except SkyplanError as exc:
        if view.failed_shown and isinstance(exc, ApplyError):
            # The view already showed the failed task's log (task_failed): say it once.
            exc.message = exc.message.split("\n", 1)[0] + " (its log is above)"
        view.where()
        raise
    finally:
        view.close()
    view.summary(outcome)
    return outcome.exit_code


def status_cli(directory: Path, *, as_json: bool) -> int:
    """`skyplan status DIR`."""
    _print_status(status(directory), as_json=as_json)
    return 0


def destroy_cli(directory: Path, *, as_json: bool) -> int:
    """`skyplan destroy DIR`: progress lines, then one line; with `as_json` exactly one JSON document."""
    view = _ApplyView(as_json=as_json)
    seen: list[dict] = []
    try:
        # JSON: the events go into the one document printed at the end (and to events.jsonl).
        stacks = destroy(directory, on_event=seen.append if as_json else view.on_event)
    finally:
        view.close()
    if as_json:
        removed = sum(e.get("removed", 0) for e in seen if e.get("event") == "destroyed")
        reaped = [p for e in seen if e.get("event") == "reaped" for p in e.get("process_groups", ())]
        print(json.dumps({"destroyed": stacks, "directory": str(directory), "removed": removed,
                          "reaped": reaped}, sort_keys=True))
    else:
        view.console.print(f"destroyed {', '.join(stacks) if stacks else 'nothing (no state left)'} in {directory}")
    return 0


# -- display --------------------------------------------------------------------------------------

_TF_CHATTER = re.compile(
    r"Executing: |Connecting to remote host via SSH|Connected!|\s+(Host|User|Password|Private key|Certificate|"
    r"SSH Agent|Checking Host Key|Target Platform):")
_TF_SHOWN = ("apply_start", "apply_complete", "apply_errored", "diagnostic", "provision_progress")


class _ApplyView:
    """Progress for humans (timestamped lines, task output dimmed) or JSON lines for CI."""

    def __init__(self, as_json: bool):
        from rich.console import Console

        self.as_json = as_json
        self.console = Console(highlight=False, soft_wrap=True)
        self.streamed: set[str] = set()  # resource addresses whose task output was shown live
        self.failed_shown = False  # a task_failed line (with its log) was printed
        self.directory: str | None = None
        self.outputs: dict[str, str] = {}  # task → where its outputs are (succeeded or reused)

    def on_event(self, ev: dict) -> None:
        if ev.get("event") == "terraform":
            ui = ev.get("ui") or {}
            kind = ui.get("type")
            if kind not in _TF_SHOWN:
                return
            if self.as_json:
                out = {"event": "terraform", "stack": ev.get("stack"), "type": kind,
                       "message": ui.get("@message"), "ts": ui.get("@timestamp")}
                if kind == "diagnostic":
                    out["diagnostic"] = ui.get("diagnostic")
                print(json.dumps(out, sort_keys=True), flush=True)
            elif kind == "provision_progress":
                hook = ui.get("hook") or {}
                if _TF_CHATTER.match(str(hook.get("output", ""))):
                    return  # Terraform echoing our wrapper command line or its ssh settings: noise
                addr = (hook.get("resource") or {}).get("addr", "")
                self.streamed.add(addr)
                self.console.print(f"  [dim]{addr}: {hook.get('output', '')}[/]", markup=True,
                                   highlight=False, emoji=False)
            return
        kind = ev.get("event")
        if kind == "run_started":
            self.directory = ev.get("directory")
        elif kind in ("task_succeeded", "task_reused") and ev.get("outputs"):
            self.outputs[ev["task"]] = str(ev["outputs"])
        if self.as_json:
            print(json.dumps(ev, sort_keys=True, default=str), flush=True)
            return
        if kind == "task_failed":
            self.failed_shown = True
            if any(_address_task(a, [ev.get("task", "")]) for a in self.streamed):
                # Its output was streamed above: point at it instead of printing it again.
                where = f" (log: {_esc(ev['log'])})" if ev.get("log") else ""
                text = (f"[red]✘ {_esc(ev.get('task'))} failed[/] (exit code {ev.get('exit_code')}); "
                        f"its output is above{where}")
                self.console.print(f"[dim]{ev.get('ts', '')[11:19]}[/] {text}", markup=True, highlight=False,
                                   emoji=False)
                return
        text = _describe(ev)
        if text:
            clock = ev.get("ts", "")[11:19]
            self.console.print(f"[dim]{clock}[/] {text}", markup=True, highlight=False, emoji=False)

    def show_plan(self, doc: dict) -> None:
        from rich.table import Table

        table = Table("task", "where", "instance", "$/h", "hours")
        for t in doc["tasks"]:
            table.add_row(t["name"], f"{t['cloud']}:{t.get('zone') or t['region']}", t.get("instance_type") or "",
                          f"{t.get('hourly_price', 0):.4f}", f"{t.get('hours', 0):g}")
        self.console.print(table)
        self.console.print(f"estimated total ${doc.get('total_cost', 0):.2f}")

    def summary(self, outcome: ApplyOutcome) -> None:
        if self.as_json:
            return
        _print_status(outcome.tasks, as_json=False, console=self.console)
        self.where()
        if outcome.attempts == 0:
            self.console.print(f"[bold green]done[/]: {_esc(outcome.message)}", markup=True)
            return
        self.console.print(f"[bold green]done[/] in {outcome.wall_s:.1f} s, {outcome.attempts} attempt(s)",
                           markup=True)

    def where(self) -> None:
        """Where the run directory and each finished task's outputs are."""
        if self.as_json or not self.directory:
            return
        self.console.print(f"run directory: {_esc(self.directory)} (skyplan status {_esc(self.directory)})",
                           markup=True)
        if self.outputs:
            self.console.print("outputs:", markup=False)
            width = max(len(t) for t in self.outputs)
            for task, uri in self.outputs.items():
                shown = str(file_uri_path(uri)) + "/" if uri.startswith("file://") else uri
                self.console.print(f"  {task.ljust(width)}  {shown}", markup=False, highlight=False)

    def close(self) -> None:
        pass


def _esc(value: object) -> str:
    from rich.markup import escape

    return escape(str(value))


def _describe(ev: dict) -> str:
    kind = ev.get("event")
    task = _esc(ev.get("task", ""))
    where = _esc(f"{ev.get('cloud')}:{ev.get('zone') or ev.get('region')}")
    if kind == "run_started":
        done = ev.get("already_succeeded") or []
        extra = f", reusing {len(done)} result(s)" if done else ""
        return (f"applying [bold]{_esc(ev.get('plan'))}[/] in {_esc(ev.get('directory'))} with "
                f"{_esc(ev.get('terraform'))}{extra}")
    if kind == "task_reused":
        return f"reused: {task} (result {_esc(results.short(ev.get('result_id')))})"
    if kind == "attempt_started":
        return f"[bold]attempt {ev.get('attempt')}[/]"
    if kind == "task_started":
        return f"[cyan]▶[/] {task} on {where}"
    if kind == "task_succeeded":
        return f"[green]✔[/] {task} succeeded in {ev.get('elapsed_s', 0):.1f} s"
    if kind == "task_failed":
        return f"[red]✘ {task} failed[/] (exit code {ev.get('exit_code')})\n{_esc(ev.get('log_tail', ''))}"
    if kind == "failure_classified":
        return (f"[yellow]![/] {task}: {_esc(ev.get('code'))} ({_esc(ev.get('scope'))} scope) in "
                f"{_esc(ev.get('zone'))}: {_esc(ev.get('message', '')[:200])}")
    if kind == "failure_unrecognised":
        return f"[red]![/] {task or _esc(ev.get('stack'))}: {_esc(ev.get('message', '')[:500])}"
    if kind == "zone_excluded":
        return f"[yellow]excluding {_esc(ev.get('token'))}[/] for the rest of this run"
    if kind == "recompiled":
        return f"re-planned in {ev.get('wall_s', 0):.2f} s; moved: {_esc(', '.join(ev.get('moved') or []) or '-')}"
    if kind == "retry_scheduled":
        return f"retrying the same placement in {ev.get('delay_s')} s"
    if kind == "destroyed":
        return f"destroyed {ev.get('removed', 0)} resource(s) in {_esc(ev.get('stack'))}"
    if kind == "reaped":
        return f"stopped leftover task processes {ev.get('process_groups')}"
    if kind in ("interrupted", "interrupt_ignored"):
        return f"[yellow]{_esc(ev.get('message'))}[/]"
    if kind == "run_finished" and not ev.get("ok"):
        return f"[red]run failed[/] (exit {ev.get('exit_code')}) after {ev.get('wall_s', 0):.1f} s"
    return ""


def _print_status(rows: list[TaskStatus], *, as_json: bool, console: Any = None) -> None:
    if as_json:
        print(json.dumps([r.__dict__ for r in rows], sort_keys=True, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    from skyplan import fmt

    table = Table("task", "state", "where", "attempt", "cost so far", "exit")
    for r in rows:
        table.add_row(r.task, r.state, f"{r.cloud}:{r.zone}" if r.zone else str(r.cloud), str(r.attempt or "-"),
                      fmt.money(r.cost), "" if r.exit_code is None else str(r.exit_code))
    (console or Console(highlight=False)).print(table)
