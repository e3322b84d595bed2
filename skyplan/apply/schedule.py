"""Which tasks start next: DAG readiness, the plan's capacity rule, and what each stack should run.

Pure functions of plan.json's tasks and the run's sets of finished and running tasks, so the
scheduling rules are testable without Terraform (tests/test_apply_units.py)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

Tasks = Mapping[str, Mapping[str, Any]]  # task name → its plan.json entry


def capacity_allows(tasks: Tasks, task: str, done: Collection[str], *, limited: bool) -> bool:
    """Whether starting `task` now keeps quotas and zone/host capacity as the plan kept them.

    The optimizer's schedule fits every limit at every instant, but tasks finish earlier or
    later than planned. Rule: start a task only once every task planned to END by its planned
    START has finished. Then any two tasks running together have overlapping planned intervals,
    and intervals that overlap pairwise share a common instant (Helly), at which the plan ran
    them all at once within the limits. Plans without limits (`limited` False) start tasks as
    soon as their inputs are ready."""
    if not limited:
        return True
    start = float(tasks[task].get("start_hours", 0.0))
    return all(other in done for other, t in tasks.items()
               if other != task and float(t.get("end_hours", 0.0)) <= start + 1e-9)


def ready_tasks(tasks: Tasks, done: Collection[str], running: Collection[str], *, limited: bool) -> list[str]:
    """Tasks that may start now: not done nor running, every upstream task done, capacity allowing."""
    return [n for n, t in tasks.items()
            if n not in done and n not in running
            and all(d in done for d in t.get("depends_on", ()))
            and capacity_allows(tasks, n, done, limited=limited)]


def never_startable(tasks: Tasks, done: Collection[str]) -> list[str]:
    """With nothing ready and nothing running: the tasks left undone (empty when the DAG is finished)."""
    return sorted(set(tasks) - set(done))


def desired_active(tasks: Tasks, stacks: Iterable[str], active: Iterable[str]) -> dict[str, set[str]]:
    """Each stack's `active_tasks` for the tasks that should have machines now (running + starting)."""
    desired: dict[str, set[str]] = {name: set() for name in stacks}
    for n in active:
        desired[tasks[n]["cloud"]].add(n)
    return desired


def is_limited(plan: Mapping[str, Any]) -> bool:
    """Whether the plan was solved under quotas or capacity (then `capacity_allows` gates starts)."""
    return bool(plan.get("constraints", {}).get("quotas"))
