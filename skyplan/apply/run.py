"""`_Run`: the apply loop that composes scheduling (schedule.py), stacks (stacks.py), watching
(watch.py) and failover (failover.py) for one run directory. Terraform comes in as a `Runner`."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from skyplan import results
from skyplan.errors import ApplyError, GaveUpError, SkyplanError
from skyplan.models import FailureScope
from skyplan.runstate import EventLog, read_events
from skyplan.targets.base import Failure
from skyplan.terraform import Runner

from . import schedule
from .failover import FailoverMixin
from .model import (
    EXIT_INTERRUPTED,
    ApplyOutcome,
    Interrupted,
    _Broken,
    _exclusions,
    _Placement,
    _slug,
    _spec_storage,
    _Stop,
    _TaskFailed,
)
from .stacks import StacksMixin, _Stack
from .status import status
from .watch import _POLL_S, WatchMixin


class _Run(StacksMixin, WatchMixin, FailoverMixin):
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
        from skyplan.targets import target_names

        return stacks_with_state(self.dir, target_names())

    def stack_of(self, task: str) -> _Stack:
        return self.stacks[self.tasks[task]["cloud"]]



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
        limited = schedule.is_limited(self.doc)
        while True:
            if self.stop.is_set():
                raise _Stop
            self._poll_running()
            ready = schedule.ready_tasks(self.tasks, self.done, self.running, limited=limited)
            if not ready and not self.running:
                missing = schedule.never_startable(self.tasks, self.done)
                if missing:
                    raise _Broken(f"tasks {missing} can never start (an upstream task is missing)")
                return
            desired = schedule.desired_active(self.tasks, self.stacks, [*self.running, *ready])
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
