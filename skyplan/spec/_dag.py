"""Dependency checks of the task DAG and its stable topological order."""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Mapping, Sequence

from skyplan.errors import SpecError
from skyplan.models import SourcePos, Task


def order_tasks(tasks: Sequence[Task], dependency_pos: Mapping[str, SourcePos]) -> tuple[Task, ...]:
    """`tasks` topologically sorted; among tasks ready at the same time, spec order is kept.

    Args:
        tasks: in spec order, names already unique.
        dependency_pos: where each task's `depends_on` is written, for errors.
    Raises:
        SpecError: a dependency names no task, or the dependencies form a cycle (named in order).
    """
    index = {task.name: i for i, task in enumerate(tasks)}
    for task in tasks:
        for dependency in task.depends_on:
            if dependency not in index:
                raise SpecError(dependency_pos.get(task.name) or _task_pos(task), _unknown(dependency, index))
    waiting = {task.name: len(task.depends_on) for task in tasks}
    dependents: dict[str, list[str]] = {task.name: [] for task in tasks}
    for task in tasks:
        for dependency in task.depends_on:
            dependents[dependency].append(task.name)
    ready = [index[name] for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[Task] = []
    while ready:
        task = tasks[heapq.heappop(ready)]
        ordered.append(task)
        for dependent in dependents[task.name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, index[dependent])
    if len(ordered) < len(tasks):
        cycle = _find_cycle(tasks, {name for name, count in waiting.items() if count > 0}, index)
        first = tasks[index[cycle[0]]]
        raise SpecError(dependency_pos.get(first.name) or _task_pos(first),
                        "dependency cycle: " + " → ".join(cycle + [cycle[0]]))
    return tuple(ordered)


def _unknown(name: str, index: Mapping[str, int]) -> str:
    close = difflib.get_close_matches(name, list(index), n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close else f" (tasks: {', '.join(index)})"
    return f"depends on `{name}`, which is not a task{hint}"


def _find_cycle(tasks: Sequence[Task], stuck: set[str], index: Mapping[str, int]) -> list[str]:
    """One cycle among the tasks that never became ready, in run order (a → b: b waits for a),
    starting at its earliest task in the spec."""
    by_name = {task.name: task for task in tasks}
    start = min(stuck, key=index.__getitem__)
    path: list[str] = []
    seen: dict[str, int] = {}
    name = start
    # Every stuck task waits for at least one stuck task, so walking "waits for" edges must loop.
    while name not in seen:
        seen[name] = len(path)
        path.append(name)
        name = next(d for d in by_name[name].depends_on if d in stuck)
    waits_for = path[seen[name]:]
    run_order = list(reversed(waits_for))
    earliest = min(range(len(run_order)), key=lambda i: index[run_order[i]])
    return run_order[earliest:] + run_order[:earliest]


def _task_pos(task: Task) -> SourcePos:
    return task.pos or SourcePos("<spec>", 0, f"tasks[{task.name}]")
