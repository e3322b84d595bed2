"""Exact cost and makespan of a fixed assignment, and the best single-region plan for comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from skyplan.models import Candidate, Catalog, Spec, Task
from skyplan.transfers import edge_hours, input_hours, outputs_by_task, path_egress, storage_bucket


def evaluate(spec: Spec, assignment: Mapping[str, Candidate], catalog: Catalog) -> tuple[float, float]:
    """(total_cost, makespan_hours) of running every task on its assigned candidate.

    Cost is the sum of the candidates' costs, each with every transfer its placement pays on the
    real path through storage (skyplan/transfers.py). Makespan is the earliest-start critical
    path: a task starts once it has read its external inputs and, for every predecessor, the
    predecessor has ended, written its outputs to storage and the task has read them back.
    Quotas are not considered (the solver's schedule may start tasks later to respect them).
    Floats, no rounding.
    """
    cost = 0.0
    outputs = _outputs(spec)
    for task in spec.tasks:
        cost += task_cost(spec, task, assignment[task.name], catalog, outputs)
    times = earliest_schedule(spec, assignment, catalog)
    return cost, max((end for _, end in times.values()), default=0.0)


def task_cost(spec: Spec, task: Task, cand: Candidate, catalog: Catalog, outputs: dict[str, float]) -> float:
    """A task's share of the plan's cost on `cand`: compute, input egress and the DAG data it moves."""
    return cand.cost + path_egress(spec, task, cand.location, cand.num_nodes, catalog, outputs)


def task_egress(spec: Spec, task: Task, cand: Candidate, catalog: Catalog, outputs: dict[str, float]) -> float:
    """Egress charged to a task on `cand` (PLAN.md's column): its inputs read to each node, its
    outputs written to storage, each upstream's outputs read to each node."""
    return cand.input_egress_cost + path_egress(spec, task, cand.location, cand.num_nodes, catalog, outputs)


def earliest_schedule(
    spec: Spec, assignment: Mapping[str, Candidate], catalog: Catalog
) -> dict[str, tuple[float, float]]:
    """Task → (start, end) hours of the earliest-start schedule `evaluate` measures."""
    times: dict[str, tuple[float, float]] = {}
    outputs = _outputs(spec)
    storage = storage_bucket(spec)
    for task in spec.tasks:  # topological order
        cand = assignment[task.name]
        start = input_hours(task, cand.location, catalog)
        for dep in task.depends_on:
            hours = edge_hours(outputs[dep], assignment[dep].location, cand.location, storage, catalog)
            start = max(start, times[dep][1] + hours)
        times[task.name] = (start, start + cand.hours)
    return times


def single_region_baseline(
    spec: Spec, candidates: Mapping[str, Sequence[Candidate]], catalog: Catalog
) -> tuple[str, float] | None:
    """The cheapest plan that keeps every task in one region of one cloud: ("aws:us-east-1", cost).

    What a user pinning the whole job to one region would pay: per region, each task on its
    cheapest candidate there. A comparison point, not an optimum. None when no region can host
    every task.
    """
    # Per region, per task, the cheapest candidate at each zone (None: a zone-less location).
    cheapest: dict[tuple[str, str], dict[str, dict[str | None, tuple[tuple, Candidate]]]] = {}
    outputs = _outputs(spec)
    for task in spec.tasks:
        per_location: dict = {}
        path: dict = {}
        for c in candidates.get(task.name, ()):
            loc = c.offering.location
            if (loc, c.num_nodes) not in path:
                path[(loc, c.num_nodes)] = path_egress(spec, task, loc, c.num_nodes, catalog, outputs)
            key = (c.hours * c.hourly_price * c.num_nodes + c.input_egress_cost + path[(loc, c.num_nodes)],
                   c.preference, c.hours)
            held = per_location.get(loc)
            if held is None or key < held[0]:
                per_location[loc] = (key, c)
        for loc, held in per_location.items():
            cheapest.setdefault((loc.cloud, loc.region), {}).setdefault(task.name, {})[loc.zone] = held
    best: tuple[str, float] | None = None
    for (cloud, region), per_task in sorted(cheapest.items()):
        if len(per_task) < len(spec.tasks):
            continue
        # Egress is per candidate, so each task on its cheapest candidate in the region is the
        # region's cheapest plan.
        plan = {t: min(at.values(), key=_first)[1] for t, at in per_task.items()}
        cost = evaluate(spec, plan, catalog)[0]
        if best is None or cost < best[1] - 1e-12:
            best = (f"{cloud}:{region}", cost)
    return best


def _first(pair: tuple) -> tuple:
    return pair[0]


_outputs = outputs_by_task
