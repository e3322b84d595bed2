"""Watching running tasks: their status.json in storage, the watchdog for tasks that never write
one, and the log tail shown when a task fails."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from skyplan import results

# One span for apply's watchdog and the VMs' cloud-side ceiling.
from skyplan.ceiling import GRACE_H as _WATCHDOG_GRACE_H
from skyplan.ceiling import WATCHDOG_FACTOR as _WATCHDOG_FACTOR
from skyplan.errors import SkyplanError

from .model import _slug, _TaskFailed

if TYPE_CHECKING:
    from .stacks import _Stack


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


class WatchMixin:
    """The part of `_Run` that learns when tasks finish (see run.py for the attributes it uses)."""

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
