"""Exact cost and makespan of a fixed assignment, and the best single-region plan for comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from skyplan.models import Candidate, Catalog, Spec


def evaluate(spec: Spec, assignment: Mapping[str, Candidate], catalog: Catalog) -> tuple[float, float]:
    """(total_cost, makespan_hours) of running every task on its assigned candidate.

    Cost is each candidate's cost plus, for every edge u→v, outputs_gb(u) times the egress rate
    from u's location to v's. Makespan is the earliest-start critical path, where v starts once
    every predecessor has ended and its output has been transferred. Quotas are not considered
    (the solver's schedule may start tasks later to respect them). Floats, no rounding.
    """
    cost = 0.0
    end: dict[str, float] = {}
    outputs = _outputs(spec)
    for task in spec.tasks:  # topological order
        cand = assignment[task.name]
        cost += cand.cost
        start = 0.0
        for dep in task.depends_on:
            src = assignment[dep].location
            gb = outputs[dep]
            cost += gb * catalog.egress_per_gb(src, cand.location)
            start = max(start, end[dep] + catalog.transfer_hours(gb, src, cand.location))
        end[task.name] = start + cand.hours
    return cost, max(end.values(), default=0.0)


def incoming_egress(spec: Spec, assignment: Mapping[str, Candidate], catalog: Catalog, task: str) -> float:
    """Egress charged to `task`: its inputs plus the outputs of its predecessors moved to it."""
    cand = assignment[task]
    total = cand.input_egress_cost
    for dep in spec.task(task).depends_on:
        gb = spec.task(dep).outputs_gb
        total += gb * catalog.egress_per_gb(assignment[dep].location, cand.location)
    return total


def earliest_schedule(
    spec: Spec, assignment: Mapping[str, Candidate], catalog: Catalog
) -> dict[str, tuple[float, float]]:
    """Task → (start, end) hours of the earliest-start schedule `evaluate` measures."""
    times: dict[str, tuple[float, float]] = {}
    outputs = _outputs(spec)
    for task in spec.tasks:
        cand = assignment[task.name]
        start = 0.0
        for dep in task.depends_on:
            src = assignment[dep].location
            hours = catalog.transfer_hours(outputs[dep], src, cand.location)
            start = max(start, times[dep][1] + hours)
        times[task.name] = (start, start + cand.hours)
    return times


def single_region_baseline(
    spec: Spec, candidates: Mapping[str, Sequence[Candidate]], catalog: Catalog
) -> tuple[str, float] | None:
    """The cheapest plan that keeps every task in one region of one cloud: ("aws:us-east-1", cost).

    What a user pinning the whole job to one region would pay. Per region, the better of two
    plans: each task on its cheapest candidate in the region, or every task in one zone of it
    (saving cross-zone egress). A comparison point, not an optimum. None when no region can host
    every task.
    """
    # Per region, per task, the cheapest candidate at each zone (None: a zone-less location).
    cheapest: dict[tuple[str, str], dict[str, dict[str | None, tuple[tuple, Candidate]]]] = {}
    for task in spec.tasks:
        per_location: dict = {}
        for c in candidates.get(task.name, ()):
            # `_cheapest` inlined: this loop sees every candidate of the problem.
            key = (c.hours * c.hourly_price * c.num_nodes + c.input_egress_cost, c.preference, c.hours)
            loc = c.offering.location
            held = per_location.get(loc)
            if held is None or key < held[0]:
                per_location[loc] = (key, c)
        for loc, held in per_location.items():
            cheapest.setdefault((loc.cloud, loc.region), {}).setdefault(task.name, {})[loc.zone] = held
    best: tuple[str, float] | None = None
    for (cloud, region), per_task in sorted(cheapest.items()):
        if len(per_task) < len(spec.tasks):
            continue
        plans = [{t: min(at.values(), key=_first) for t, at in per_task.items()}]
        zones = sorted({z for at in per_task.values() for z in at if z is not None})
        for zone in zones:
            in_zone = {t: [at[z] for z in (zone, None) if z in at] for t, at in per_task.items()}
            if all(in_zone.values()):
                plans.append({t: min(pairs, key=_first) for t, pairs in in_zone.items()})
        for plan in plans:
            # Egress only adds: a plan whose compute alone is dearer than the best cannot win.
            if best is not None and sum(key[0] for key, _ in plan.values()) >= best[1] - 1e-12:
                continue
            cost = evaluate(spec, {t: c for t, (_, c) in plan.items()}, catalog)[0]
            if best is None or cost < best[1] - 1e-12:
                best = (f"{cloud}:{region}", cost)
    return best


def _first(pair: tuple) -> tuple:
    return pair[0]


def _outputs(spec: Spec) -> dict[str, float]:
    """Task name → outputs_gb (`Spec.task` is a linear scan: O(n) per lookup)."""
    return {t.name: t.outputs_gb for t in spec.tasks}


def _cheapest(c: Candidate) -> tuple[float, int, float]:
    return (c.cost, c.preference, c.hours)
