"""The terminal view of `skyplan apply`, `status` and `destroy`: progress lines, the plan table
shown before confirming, the summary, and the status table (or JSON lines for CI)."""

from __future__ import annotations

import json
import re
from typing import Any

from skyplan import results
from skyplan.apply.model import ApplyOutcome, TaskStatus, _address_task
from skyplan.errors import SkyplanError

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
                self.console.print(f"  {task.ljust(width)}  {_shown(uri)}", markup=False, highlight=False)

    def close(self) -> None:
        pass


def _shown(uri: str) -> str:
    """Where outputs are, as the user opens them: a local directory as a path, else the URI."""
    from skyplan.storage import for_uri

    try:
        storage = for_uri(uri)
    except SkyplanError:
        return uri
    return str(storage.root) + "/" if storage.cloud == "local" else uri


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
