"""One root stack `DIR/<target>/`: switching tasks on and off in it through the injected Terraform
`Runner` (plan + apply, converge, destroy), staging a starting task's inputs, reaping leftovers."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from skyplan import results
from skyplan.errors import ApplyError, SkyplanError
from skyplan.storage import resolve_relative
from skyplan.terraform import RunResult

from .model import EXIT_INTERRUPTED, _Broken, _slug, _target


class _Stack:
    """One root stack `DIR/<target>/` and what is switched on in it."""

    def __init__(self, directory: Path, name: str, plan_name: str, storage_base: str | None):
        self.name = name
        self.dir = directory / name
        self.target = _target(name)
        # Relative file:// storage lives in the run directory, wherever apply runs from.
        self.storage = resolve_relative(self.target.storage_uri(storage_base, plan_name), directory)
        self.plan_name = plan_name
        self.active: set[str] = set()
        self.extra_vars: dict[str, Any] = {}
        self.initialised = False

    def variables(self, active: set[str]) -> dict[str, Any]:
        return {"active_tasks": sorted(active), "storage": self.storage, "plan": self.plan_name,
                **self.extra_vars}



class StacksMixin:
    """The part of `_Run` that drives Terraform on stacks (see run.py for the attributes it uses)."""

    def _init(self, stack: _Stack) -> None:
        if not stack.initialised:
            self.runner.init(stack.dir)
            stack.initialised = True

    def _tf_event(self, stack: _Stack) -> Callable[[dict], None] | None:
        if self.on_tf_event is None:
            return None
        return lambda ev: self.on_tf_event(stack.name, ev)  # type: ignore[misc]

    # -- signals ---------------------------------------------------------------------------------

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
        from skyplan.staging import stage_task

        try:  # the same for every scheme (skyplan/storage)
            results.prepare_task_storage(stack.storage, _slug(task), self._result_ids().get(task))
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
