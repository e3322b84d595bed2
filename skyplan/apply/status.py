"""`skyplan status`: each task's state, zone, attempt and cost so far, from plan.json and events.jsonl."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from skyplan.runstate import read_events

from .model import TaskStatus


def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


def status(directory: str | Path) -> list[TaskStatus]:
    """Each task's state, zone, attempt and cost so far, from the plan and `events.jsonl`."""
    from skyplan import remoterun
    from skyplan.runfiles import load_plan

    directory = Path(directory)
    doc = load_plan(directory, warn=_warn)
    try:
        remoterun.refresh_local(directory)  # a plan with remote run state: its newest event log
    except OSError as exc:
        _warn(f"could not bring the remote run state into {directory} ({exc.strerror or exc}); "
              "showing what DIR holds")
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
