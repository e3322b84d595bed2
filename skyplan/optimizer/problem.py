"""The placement problem in the solver's integer units: tasks, candidates, edges and their tiers.

Egress is per candidate (skyplan/transfers.py: with the plan's storage fixed, every transfer
depends on one task's location), so it is part of `cost`; an edge only carries its transfer
times by tier, the upload paid at the upstream's tier to storage and the download at the
downstream's.

Both pruning and the CP-SAT model read these numbers, so a pruned candidate is dominated in
exactly the arithmetic the model optimises.

Units: cost in micro-dollars (rounded to nearest: a plan's reported cost is recomputed exactly
by `evaluate`, the solver's is within 1e-6 $ per term); time in whole seconds, rounded *up*
for durations and transfers and *down* for the deadline, so a plan the solver calls feasible
meets the deadline in exact arithmetic too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass

from skyplan.errors import InfeasibleError, SkyplanError, SpecError
from skyplan.models import Candidate, Catalog, SourcePos, Spec
from skyplan.transfers import bucket_tier, input_hours, outputs_by_task, path_egress_at, storage_bucket

COST_UNITS_PER_USD = 1_000_000
SECONDS_PER_HOUR = 3600
QUOTA_SCALE = 1000  # quota amounts may be fractional (0.5 vCPU); the cumulative needs integers
# CP-SAT's integers are int64; a quarter of its range leaves room for the sums it forms itself.
MAX_MODEL_INT = 2**61


_QUOTA_UNITS = {"vcpus": "vCPUs", "accelerators": "accelerators", "nodes": "nodes"}


def cost_units(usd: float) -> int:
    return round(usd * COST_UNITS_PER_USD)


def seconds_up(hours: float) -> int:
    # The epsilon absorbs float noise (0.35 h * 3600 = 1259.9999…) without rounding real excess down.
    return max(0, math.ceil(hours * SECONDS_PER_HOUR - 1e-6))


def seconds_down(hours: float) -> int:
    return math.floor(hours * SECONDS_PER_HOUR + 1e-6)


@dataclass(frozen=True)
class Edge:
    src: int  # task index
    dst: int
    gb: float
    seconds: tuple[int, int, int, int]  # moving `gb` at each tier (up to or down from storage)

    def up(self, tier_of_src: int) -> int:
        return self.seconds[tier_of_src]

    def down(self, tier_of_dst: int) -> int:
        return self.seconds[tier_of_dst]


@dataclass
class Problem:
    """Index-based view of one solve: task i has candidates `cands[i]` with parallel int arrays."""

    task_names: list[str]
    cands: list[list[Candidate]]
    cost: list[list[int]]  # candidate cost (compute + all its egress), micro-dollars
    dur: list[list[int]]  # seconds
    store_tier: list[list[int]]  # transfer tier between the candidate's location and the storage
    ready: list[list[int]]  # seconds reading external inputs before the task runs
    pref: list[list[int]]
    usage: list[list[dict[str, int]]]  # quota key -> scaled amount held while running
    edges: list[Edge]
    limits: dict[str, int]  # scaled, only keys some candidate uses
    deadline: int | None  # seconds
    budget: int | None  # micro-dollars

    @property
    def n(self) -> int:
        return len(self.task_names)

    def restrict(self, keep: Sequence[Sequence[int]]) -> Problem:
        """The same problem with only the candidate indices in `keep[i]` for task i."""
        return Problem(
            task_names=self.task_names,
            cands=[[self.cands[i][j] for j in ks] for i, ks in enumerate(keep)],
            cost=[[self.cost[i][j] for j in ks] for i, ks in enumerate(keep)],
            dur=[[self.dur[i][j] for j in ks] for i, ks in enumerate(keep)],
            store_tier=[[self.store_tier[i][j] for j in ks] for i, ks in enumerate(keep)],
            ready=[[self.ready[i][j] for j in ks] for i, ks in enumerate(keep)],
            pref=[[self.pref[i][j] for j in ks] for i, ks in enumerate(keep)],
            usage=[[self.usage[i][j] for j in ks] for i, ks in enumerate(keep)],
            edges=self.edges,
            limits=self.limits,
            deadline=self.deadline,
            budget=self.budget,
        )


def build_problem(
    spec: Spec,
    candidates: Mapping[str, Sequence[Candidate]],
    catalog: Catalog,
    limits: Mapping[str, float],
) -> Problem:
    """Integer data for `spec`; drops candidates that alone exceed a quota.

    Raises InfeasibleError when a task has no candidate, or none that fits its quotas."""
    index = {t.name: i for i, t in enumerate(spec.tasks)}
    scaled_limits = {k: math.floor(v * QUOTA_SCALE + 1e-9) for k, v in limits.items()}
    cands: list[list[Candidate]] = []
    for t in spec.tasks:
        given = list(candidates.get(t.name, ()))
        if not given:
            where = f"{t.pos}: " if t.pos else ""
            raise InfeasibleError(f"{where}task '{t.name}' has no candidate offering", (f"task:{t.name}",))
        fitting = [c for c in given if not _over_limit(c, scaled_limits)]
        if not fitting:
            raise _quota_cannot_hold(spec, t.name, given, scaled_limits)
        cands.append(fitting)

    used_keys = {k for cs in cands for c in cs for k, _ in c.quota_usage if k in scaled_limits}
    bw = catalog.bandwidth
    gbps = (bw.same_zone, bw.cross_zone, bw.inter_region, bw.internet)
    edges: list[Edge] = []
    for u_name, v_name in spec.edges:
        u, v = index[u_name], index[v_name]
        gb = spec.tasks[u].outputs_gb
        seconds = tuple(seconds_up(gb * 8.0 / g / 3600.0) if gb > 0 else 0 for g in gbps)
        edges.append(Edge(src=u, dst=v, gb=gb, seconds=seconds))  # type: ignore[arg-type]
    check_scale(spec, cands, catalog)
    costs, tiers, ready = _per_candidate(spec, cands, catalog)
    return Problem(
        task_names=[t.name for t in spec.tasks],
        cands=cands,
        cost=costs,
        dur=[[seconds_up(c.hours) for c in cs] for cs in cands],
        store_tier=tiers,
        ready=ready,
        pref=[[c.preference for c in cs] for cs in cands],
        usage=[
            [{k: math.ceil(a * QUOTA_SCALE - 1e-9) for k, a in c.quota_usage if k in used_keys} for c in cs]
            for cs in cands
        ],
        edges=edges,
        limits={k: scaled_limits[k] for k in sorted(used_keys)},
        deadline=None if spec.deadline_hours is None else seconds_down(spec.deadline_hours),
        budget=None if spec.budget is None else cost_units(spec.budget),
    )


def _per_candidate(
    spec: Spec, cands: Sequence[Sequence[Candidate]], catalog: Catalog
) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Per candidate: cost (compute + input egress + the DAG data its placement moves, in
    micro-dollars), its location's tier to the storage, and the seconds reading its inputs."""
    storage = storage_bucket(spec)
    outputs = outputs_by_task(spec)
    tier_of: dict = {}
    costs, tiers, ready = [], [], []
    for t, cs in zip(spec.tasks, cands, strict=True):
        path: dict = {}
        reading: dict = {}
        cost_row, tier_row, ready_row = [], [], []
        for c in cs:
            loc = c.location
            tier = tier_of.get(loc)
            if tier is None:
                tier = tier_of[loc] = bucket_tier(storage, loc)
            key = (loc.cloud, tier, c.num_nodes)
            if key not in path:
                path[key] = path_egress_at(t, loc.cloud, tier, c.num_nodes, storage, catalog, outputs)
            cost_row.append(cost_units(c.cost + path[key]))
            tier_row.append(tier)
            if not t.inputs:
                ready_row.append(0)
                continue
            if loc not in reading:
                reading[loc] = seconds_up(input_hours(t, loc, catalog))
            ready_row.append(reading[loc])
        costs.append(cost_row)
        tiers.append(tier_row)
        ready.append(ready_row)
    return costs, tiers, ready


def check_scale(spec: Spec, cands: Sequence[Sequence[Candidate]], catalog: Catalog) -> None:
    """Refuse a problem whose numbers CP-SAT's int64 arithmetic cannot hold, naming the task.

    The spec stage's ranges keep one task far below the limit (spec/_ranges.py); this is the
    defence in depth for what they cannot see: many huge tasks together, the preference
    tie-break (cost × K + Σpreference, K = Σ max preference + 1) and catalog prices."""
    worst = [max(c.cost for c in cs) for cs in cands]
    hours = [max(c.hours for c in cs) for cs in cands]
    k = sum(max(c.preference for c in cs) for cs in cands) + 1
    # The DAG's data at the dearest rate: written once, read by every node of each downstream.
    top = max((max(astuple(r)) for r in catalog.rates.values()), default=0.0)
    outputs = outputs_by_task(spec)
    moved = sum(outputs.values()) + sum(outputs[d] * t.num_nodes for t in spec.tasks for d in t.depends_on)
    total = math.fsum(worst) + moved * top
    seconds = math.fsum(hours) * SECONDS_PER_HOUR
    if math.isfinite(total) and total * COST_UNITS_PER_USD * k + k <= MAX_MODEL_INT and seconds <= MAX_MODEL_INT:
        return
    i = max(range(len(worst)), key=lambda n: (worst[n], hours[n]))
    task = spec.tasks[i]
    limit = MAX_MODEL_INT / COST_UNITS_PER_USD / k
    if not math.isfinite(total) or total > limit:
        scaled = f" (÷ {k}, the preference tie-break of `ordered` choices)" if k > 1 else ""
        message = (f"the plan could cost up to ${total:,.0f}, more than the optimizer can count "
                   f"(${limit:,.0f}{scaled}); the costliest task, {task.name!r}, could cost "
                   f"${worst[i]:,.0f}: lower its hours or num_nodes, or narrow its resources")
    else:
        message = f"the tasks' hours add up to {seconds / SECONDS_PER_HOUR:,.0f}, more than the optimizer can count"
    if task.pos is not None:
        raise SpecError(task.pos, message)
    raise SkyplanError(message)


def _over_limit(c: Candidate, scaled_limits: Mapping[str, int]) -> bool:
    return any(
        k in scaled_limits and math.ceil(a * QUOTA_SCALE - 1e-9) > scaled_limits[k] for k, a in c.quota_usage
    )


def quota_pos(spec: Spec, key: str) -> SourcePos | None:
    """Where the spec's quota behind a quota key (`name` or `name@region`) sets its limit."""
    for q in spec.quotas:
        if key == q.name or (q.per_region and key.startswith(f"{q.name}@")):
            return spec.where(f"quotas[{q.name}]")
    return None


def quota_unit(spec: Spec, key: str) -> str:
    """Human unit of a quota key ("vCPUs"), from the spec's quota whose name prefixes the key."""
    for q in spec.quotas:
        if key == q.name or key.startswith(q.name):
            return _QUOTA_UNITS.get(q.resource, q.resource)
    return ""


def _fmt_amount(value: float, unit: str) -> str:
    text = f"{value:g}"
    return f"{text} {unit}" if unit else text


def _quota_cannot_hold(
    spec: Spec, task: str, given: Sequence[Candidate], scaled_limits: Mapping[str, int]
) -> InfeasibleError:
    # For each quota that rules out some candidate: the smallest amount any candidate of the task needs.
    need: dict[str, float] = {}
    for c in given:
        for k, a in c.quota_usage:
            if k in scaled_limits and math.ceil(a * QUOTA_SCALE - 1e-9) > scaled_limits[k]:
                need[k] = min(need.get(k, math.inf), a)
    parts = []
    for k in sorted(need):
        unit = quota_unit(spec, k)
        limit = scaled_limits[k] / QUOTA_SCALE
        pos = quota_pos(spec, k)
        parts.append(
            (f"{pos}: " if pos else "")
            + f"quota {k} ({_fmt_amount(limit, unit)}) cannot hold task '{task}' "
            f"({_fmt_amount(need[k], unit)}) at any time"
        )
    return InfeasibleError("; ".join(parts), tuple(f"quota:{k}" for k in sorted(need)))
