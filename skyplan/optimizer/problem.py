"""The placement problem in the solver's integer units: tasks, candidates, edges and their tiers.

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
from dataclasses import dataclass

from skyplan.errors import InfeasibleError, SkyplanError, SpecError
from skyplan.models import Candidate, Catalog, Location, SourcePos, Spec, TierRates

COST_UNITS_PER_USD = 1_000_000
SECONDS_PER_HOUR = 3600
QUOTA_SCALE = 1000  # quota amounts may be fractional (0.5 vCPU); the cumulative needs integers
# CP-SAT's integers are int64; a quarter of its range leaves room for the sums it forms itself.
MAX_MODEL_INT = 2**61

# Transfer tiers, nearest first; rates and (usually) times grow with the tier.
SAME_ZONE, CROSS_ZONE, INTER_REGION, INTERNET = 0, 1, 2, 3

_QUOTA_UNITS = {"vcpus": "vCPUs", "accelerators": "accelerators", "nodes": "nodes"}


def cost_units(usd: float) -> int:
    return round(usd * COST_UNITS_PER_USD)


def seconds_up(hours: float) -> int:
    # The epsilon absorbs float noise (0.35 h * 3600 = 1259.9999…) without rounding real excess down.
    return max(0, math.ceil(hours * SECONDS_PER_HOUR - 1e-6))


def seconds_down(hours: float) -> int:
    return math.floor(hours * SECONDS_PER_HOUR + 1e-6)


def tier(src: Location, dst: Location) -> int:
    """The transfer tier between two locations, as `Catalog.egress_per_gb` defines it."""
    if src.cloud != dst.cloud:
        return INTERNET
    if src.region != dst.region:
        return INTER_REGION
    # A zone-less location (a bucket, an Azure region) serves every zone of its region.
    if src.zone is not None and dst.zone is not None and src.zone != dst.zone:
        return CROSS_ZONE
    return SAME_ZONE


def tier_rates(rates: TierRates) -> tuple[float, float, float, float]:
    return (rates.same_zone, rates.cross_zone, rates.inter_region, rates.internet)


@dataclass(frozen=True)
class Edge:
    src: int  # task index
    dst: int
    gb: float
    # Per source cloud: cost in micro-dollars at each tier (cumulative, monotone by construction).
    cost_by_cloud: Mapping[str, tuple[int, int, int, int]]
    seconds: tuple[int, int, int, int]  # transfer time at each tier

    def cost(self, src: Location, dst: Location) -> int:
        return self.cost_by_cloud[src.cloud][tier(src, dst)]

    def time(self, src: Location, dst: Location) -> int:
        return self.seconds[tier(src, dst)]


@dataclass
class Problem:
    """Index-based view of one solve: task i has candidates `cands[i]` with parallel int arrays."""

    task_names: list[str]
    cands: list[list[Candidate]]
    cost: list[list[int]]  # candidate cost (compute + input egress), micro-dollars
    dur: list[list[int]]  # seconds
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
            pref=[[self.pref[i][j] for j in ks] for i, ks in enumerate(keep)],
            usage=[[self.usage[i][j] for j in ks] for i, ks in enumerate(keep)],
            edges=self.edges,
            limits=self.limits,
            deadline=self.deadline,
            budget=self.budget,
        )


def edge_tier_costs(gb: float, rates: TierRates) -> tuple[int, int, int, int]:
    """Cumulative micro-dollar cost per tier, built from rounded increments so that the model's
    `same + Σ increment·indicator` reproduces these four numbers exactly."""
    r = tier_rates(rates)
    total = cost_units(gb * r[0])
    out = [total]
    for lo, hi in zip(r, r[1:], strict=False):
        if hi < lo - 1e-12:
            raise ValueError(
                f"egress rates are not monotone ({rates}); the optimizer relies on "
                "same_zone ≤ cross_zone ≤ inter_region ≤ internet"
            )
        total += cost_units(gb * (hi - lo))
        out.append(total)
    return (out[0], out[1], out[2], out[3])


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
    src_clouds = {c.location.cloud for cs in cands for c in cs}
    edges: list[Edge] = []
    for u_name, v_name in spec.edges:
        u, v = index[u_name], index[v_name]
        gb = spec.tasks[u].outputs_gb
        seconds = tuple(seconds_up(gb * 8.0 / g / 3600.0) if gb > 0 else 0 for g in gbps)
        edges.append(
            Edge(
                src=u,
                dst=v,
                gb=gb,
                cost_by_cloud={k: edge_tier_costs(gb, catalog.rates[k]) for k in sorted(src_clouds)},
                seconds=seconds,  # type: ignore[arg-type]
            )
        )
    check_scale(spec, cands, edges)
    return Problem(
        task_names=[t.name for t in spec.tasks],
        cands=cands,
        cost=[[cost_units(c.cost) for c in cs] for cs in cands],
        dur=[[seconds_up(c.hours) for c in cs] for cs in cands],
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


def check_scale(spec: Spec, cands: Sequence[Sequence[Candidate]], edges: Sequence[Edge]) -> None:
    """Refuse a problem whose numbers CP-SAT's int64 arithmetic cannot hold, naming the task.

    The spec stage's ranges keep one task far below the limit (spec/_ranges.py); this is the
    defence in depth for what they cannot see: many huge tasks together, the preference
    tie-break (cost × K + Σpreference, K = Σ max preference + 1) and catalog prices."""
    worst = [max(c.cost for c in cs) for cs in cands]
    hours = [max(c.hours for c in cs) for cs in cands]
    k = sum(max(c.preference for c in cs) for cs in cands) + 1
    egress = sum(max(tiers[-1] for tiers in e.cost_by_cloud.values()) for e in edges) / COST_UNITS_PER_USD
    total = math.fsum(worst) + egress
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
