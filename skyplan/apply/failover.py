"""Failover: a failed apply's diagnostics → per-task failures (the target classifies them), then the
locations to exclude and a re-solve of the plan with the previous placement as hint."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from skyplan.models import FailureScope
from skyplan.targets.base import Failure
from skyplan.terraform import RunResult

from .model import _address_task, _exclusions

if TYPE_CHECKING:
    from .stacks import _Stack


def _location_token(task: Mapping[str, Any], scope: FailureScope) -> str:
    cloud, region, zone = task["cloud"], task["region"], task.get("zone")
    if scope is FailureScope.CLOUD:
        return cloud
    if scope is FailureScope.REGION or not zone:
        return f"{cloud}:{region}"
    return f"{cloud}:{zone}"



class FailoverMixin:
    """The part of `_Run` that classifies failures and re-plans (see run.py for the attributes it uses)."""

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
