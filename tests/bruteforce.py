"""Reference optimizer by exhaustive enumeration, and a seeded generator of small random instances.

Written independently of skyplan.optimizer and skyplan.transfers: its own critical path, its own
cost sum along the data's real path, and an exact scheduler for quotas. The real path: a task's
outputs are written once from its location to the plan's storage, and every node of each
downstream task reads them back; each leg is priced at its source side's tier rate and timed at
its tier's bandwidth (upload, then download, between the upstream's end and the downstream's
start). Quota feasibility: for a fixed assignment the earliest-start schedule is
not enough (two tasks may have to be serialised), so the minimum makespan is found by the serial
schedule-generation scheme over every precedence-feasible task order. Each order schedules its
next task at the earliest time that satisfies the precedences (with transfer delays) and the
resource limits throughout its run; this generates every *active* schedule, and for a regular
objective such as the makespan some active schedule is optimal (Kolisch 1996), so the minimum
over all orders is the exact minimum makespan. Instances are kept to ≤ 5 tasks.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from skyplan.models import (
    Bandwidth,
    Candidate,
    Catalog,
    CatalogInfo,
    DataInput,
    Location,
    Objective,
    Offering,
    ResourceOption,
    Spec,
    Task,
    TierRates,
)

EPS = 1e-9

RATES = {
    "aws": TierRates(same_zone=0.0, cross_zone=0.01, inter_region=0.02, internet=0.09),
    "gcp": TierRates(same_zone=0.0, cross_zone=0.01, inter_region=0.02, internet=0.12),
    "azure": TierRates(same_zone=0.0, cross_zone=0.0, inter_region=0.02, internet=0.0875),
    "ssh": TierRates(same_zone=0.0, cross_zone=0.0, inter_region=0.0, internet=0.0),
}

LOCATIONS = (
    Location("aws", "us-east-1", "use1-az1"),
    Location("aws", "us-east-1", "use1-az2"),
    Location("aws", "us-west-2", "usw2-az1"),
    Location("gcp", "us-central1", "us-central1-a"),
    Location("gcp", "us-central1", "us-central1-b"),
    Location("gcp", "europe-west4", "europe-west4-a"),
    Location("azure", "eastus", None),
    Location("azure", "westus2", None),
)


def make_catalog(bandwidth: Bandwidth | None = None) -> Catalog:
    return Catalog(
        offerings=(),
        rates=RATES,
        bandwidth=bandwidth or Bandwidth(),
        info=CatalogInfo(date="2026-11-22", fingerprint="test", source="tests"),
    )


def make_candidate(
    task: str,
    location: Location,
    *,
    hourly: float,
    hours: float,
    instance: str = "m.large",
    spot: bool = False,
    input_egress: float = 0.0,
    preference: int = 0,
    quota: tuple[tuple[str, float], ...] = (),
    nodes: int = 1,
) -> Candidate:
    offering = Offering(
        location=location,
        instance_type=instance,
        accelerator=None,
        accelerator_count=0,
        vcpus=8,
        memory_gib=32,
        price=hourly,
        spot_price=hourly,
    )
    return Candidate(
        task=task,
        offering=offering,
        spot=spot,
        hours=hours,
        hourly_price=hourly,
        num_nodes=nodes,
        input_egress_cost=input_egress,
        preference=preference,
        quota_usage=quota,
    )


# Storage URIs by cloud, for specs whose storage sits at a bucket location.
STORAGE_URI = {"aws": "s3://bkt/plans", "gcp": "gs://bkt/plans", "azure": "az://acct/cont/plans"}


def make_spec(
    name: str,
    deps: dict[str, tuple[str, ...]],
    outputs: dict[str, float],
    *,
    objective: Objective = Objective.COST,
    deadline: float | None = None,
    budget: float | None = None,
    storage: tuple[str, str | None] | None = ("aws", "us-east-1"),
    nodes: dict[str, int] | None = None,
    inputs: dict[str, tuple[DataInput, ...]] | None = None,
) -> Spec:
    """A spec of CPU tasks; `storage` is the (cloud, region) of its storage bucket (None: local).
    `inputs` only time a task's start: their cost is the candidates' `input_egress`."""
    tasks = tuple(
        Task(name=t, options=(ResourceOption(),), outputs_gb=outputs.get(t, 0.0), depends_on=d,
             num_nodes=(nodes or {}).get(t, 1), inputs=(inputs or {}).get(t, ()))
        for t, d in deps.items()
    )
    uri, region = (STORAGE_URI[storage[0]], storage[1]) if storage else (None, None)
    return Spec(name=name, tasks=tasks, objective=objective, deadline_hours=deadline, budget=budget,
                storage=uri, storage_region=region)


@dataclass
class Instance:
    spec: Spec
    candidates: dict[str, list[Candidate]]
    limits: dict[str, float]


def random_instance(
    seed: int,
    *,
    max_tasks: int = 5,
    max_cands: int = 6,
    quotas: bool = False,
    preferences: bool = False,
) -> Instance:
    """A random DAG over 2–3 clouds. Hours are multiples of 0.25 h and data sizes of 5 GB, so
    every duration and transfer is a whole number of seconds and the solver's integer time is exact."""
    rng = random.Random(seed)
    n = rng.randint(1, max_tasks)
    names = [f"t{i}" for i in range(n)]
    clouds = rng.sample(["aws", "gcp", "azure"], rng.randint(2, 3))
    locs = [loc for loc in LOCATIONS if loc.cloud in clouds]
    deps = {t: tuple(names[j] for j in range(i) if rng.random() < 0.45) for i, t in enumerate(names)}
    outputs = {t: float(5 * rng.randint(0, 100)) for t in names}
    nodes = {t: rng.choice([1, 1, 1, 2, 3]) for t in names}
    bucket = rng.choice([loc for loc in LOCATIONS if loc.cloud in clouds])
    storage = (bucket.cloud, rng.choice([bucket.region, bucket.region, None]))
    inputs = {}
    for t in names:
        if rng.random() < 0.3:
            src = rng.choice(LOCATIONS)
            cloud, region = rng.choice([(src.cloud, src.region), (src.cloud, None), (None, None)])
            inputs[t] = (DataInput(f"data://{t}", float(5 * rng.randint(1, 100)), cloud, region),)
    candidates: dict[str, list[Candidate]] = {}
    for t in names:
        cands = []
        for k in range(rng.randint(1, max_cands)):
            hours = 0.25 * rng.randint(2, 16)
            quota: tuple[tuple[str, float], ...] = ()
            if quotas and rng.random() < 0.8:
                quota = ((rng.choice(["qa", "qb"]), float(rng.choice([4, 8, 16]))),)
            cands.append(
                make_candidate(
                    t,
                    rng.choice(locs),
                    hourly=round(rng.uniform(0.5, 12.0), 4),
                    hours=hours,
                    instance=f"type{k}",
                    spot=rng.random() < 0.3,
                    input_egress=round(rng.choice([0.0, 0.0, rng.uniform(0, 20)]), 4),
                    preference=rng.randint(0, 2) if preferences else 0,
                    quota=quota,
                    nodes=nodes[t],
                )
            )
        candidates[t] = cands
    limits = {"qa": float(rng.choice([16, 24, 32])), "qb": float(rng.choice([8, 16]))} if quotas else {}
    spec = make_spec(f"rand{seed}", deps, outputs, storage=storage, nodes=nodes, inputs=inputs)
    return Instance(spec, candidates, limits)


def structured_instance(seed: int, *, n_tasks: int = 5, quotas: bool = False) -> Instance:
    """Like `random_instance`, but prices follow a per-location multiplier and tasks share
    instance types, as in a real catalog: many zones and regions are dominated as a whole, which
    exercises the location-level pruning. Some tasks lack some locations."""
    rng = random.Random(seed)
    names = [f"t{i}" for i in range(n_tasks)]
    factor = {loc: rng.choice([1.0, 1.0, 1.1, 1.25]) for loc in LOCATIONS}
    deps = {t: tuple(names[j] for j in range(i) if rng.random() < 0.4) for i, t in enumerate(names)}
    outputs = {t: float(5 * rng.randint(0, 60)) for t in names}
    candidates: dict[str, list[Candidate]] = {}
    for t in names:
        base = rng.uniform(1.0, 8.0)
        hours = 0.25 * rng.randint(2, 12)
        cands = []
        for loc in LOCATIONS:
            if rng.random() < 0.2:
                continue
            quota = ((f"q-{loc.cloud}", float(rng.choice([8, 16]))),) if quotas else ()
            cands.append(
                make_candidate(t, loc, hourly=round(base * factor[loc], 4), hours=hours, quota=quota)
            )
            if rng.random() < 0.5:
                cands.append(
                    make_candidate(
                        t,
                        loc,
                        hourly=round(base * factor[loc] * 0.4, 4),
                        hours=hours * 1.25,
                        spot=True,
                        quota=quota,
                    )
                )
        candidates[t] = cands or [make_candidate(t, LOCATIONS[0], hourly=base, hours=hours)]
    limits = {"q-aws": 16.0, "q-gcp": 16.0, "q-azure": 8.0} if quotas else {}
    bucket = rng.choice(LOCATIONS)
    return Instance(make_spec(f"struct{seed}", deps, outputs, storage=(bucket.cloud, bucket.region)),
                    candidates, limits)


# --- the reference ------------------------------------------------------------------------------


_SCHEME_CLOUD = {"s3": "aws", "gs": "gcp", "az": "azure"}


def _storage(spec: Spec) -> tuple[str, str | None]:
    """(cloud, region or None) of the spec's storage bucket; the machine running apply when none."""
    if spec.storage is None:
        return ("local", None)
    return (_SCHEME_CLOUD[spec.storage.split("://", 1)[0]], spec.storage_region)


def _leg_tier(bucket: tuple[str | None, str | None], loc: Location) -> str:
    """Tier between a bucket and a task location: a bucket serves its whole region as one zone;
    a bucket of unknown region counts as in the region of whoever reads or writes it."""
    cloud, region = bucket
    if cloud != loc.cloud:
        return "internet"
    if region is not None and region != loc.region:
        return "inter_region"
    return "same_zone"


def _leg_rate(catalog: Catalog, source_cloud: str, tier: str) -> float:
    rates = catalog.rates.get(source_cloud)
    return getattr(rates, tier) if rates is not None else 0.0


def _leg_hours(catalog: Catalog, gb: float, tier: str) -> float:
    return gb * 8.0 / getattr(catalog.bandwidth, tier) / 3600.0 if gb > 0 else 0.0


def plan_cost(spec: Spec, catalog: Catalog, assign: dict[str, Candidate]) -> float:
    total = sum(c.hours * c.hourly_price * c.num_nodes + c.input_egress_cost for c in assign.values())
    bucket = _storage(spec)
    for t in spec.tasks:
        here = assign[t.name]
        # Up: the task's cloud bills writing its outputs, once, whatever reads them.
        total += t.outputs_gb * _leg_rate(catalog, here.location.cloud, _leg_tier(bucket, here.location))
        for d in t.depends_on:
            # Down: the bucket's cloud bills every node's read.
            rate = _leg_rate(catalog, bucket[0], _leg_tier(bucket, here.location))
            total += spec.task(d).outputs_gb * here.num_nodes * rate
    return total


def _lag(spec: Spec, catalog: Catalog, assign: dict[str, Candidate], src: str, dst: str) -> float:
    gb = spec.task(src).outputs_gb
    bucket = _storage(spec)
    up = _leg_hours(catalog, gb, _leg_tier(bucket, assign[src].location))
    return up + _leg_hours(catalog, gb, _leg_tier(bucket, assign[dst].location))


def _reading(spec: Spec, catalog: Catalog, assign: dict[str, Candidate], task: str) -> float:
    """Hours a task spends reading its external inputs, one after another, before it runs."""
    loc = assign[task].location
    return sum(_leg_hours(catalog, d.size_gb, _leg_tier((d.cloud, d.region), loc)) for d in spec.task(task).inputs)


def critical_path(spec: Spec, catalog: Catalog, assign: dict[str, Candidate]) -> float:
    end: dict[str, float] = {}
    for t in spec.tasks:
        ready = max((end[d] + _lag(spec, catalog, assign, d, t.name) for d in t.depends_on),
                    default=0.0)
        ready = max(ready, _reading(spec, catalog, assign, t.name))
        end[t.name] = ready + assign[t.name].hours
    return max(end.values())


def min_makespan_with_limits(
    spec: Spec, catalog: Catalog, assign: dict[str, Candidate], limits: dict[str, float]
) -> float:
    """Exact minimum makespan under the concurrent-usage limits (serial SGS over all orders)."""
    names = [t.name for t in spec.tasks]
    deps = {t.name: t.depends_on for t in spec.tasks}
    use = {t: dict(assign[t].quota_usage) for t in names}
    best = float("inf")
    for order in itertools.permutations(names):
        pos = {t: i for i, t in enumerate(order)}
        if any(pos[d] > pos[t] for t in names for d in deps[t]):
            continue
        placed: list[tuple[float, float, str]] = []
        end: dict[str, float] = {}
        for t in order:
            dur = assign[t].hours
            ready = max((end[d] + _lag(spec, catalog, assign, d, t) for d in deps[t]), default=0.0)
            ready = max(ready, _reading(spec, catalog, assign, t))
            for start in sorted({ready} | {e for _, e, _ in placed if e > ready}):
                if _fits(placed, use, t, start, start + dur, limits):
                    break
            placed.append((start, start + dur, t))
            end[t] = start + dur
        best = min(best, max(end.values()))
    return best


def _fits(placed, use, task, start, end, limits) -> bool:
    for key, amount in use[task].items():
        if key not in limits:
            continue
        for p in [start] + [s for s, _, _ in placed if start < s < end]:
            held = sum(use[o].get(key, 0.0) for s, e, o in placed if s <= p + EPS and p < e - EPS)
            if held + amount > limits[key] + EPS:
                return False
    return True


@dataclass
class Best:
    cost: float
    makespan: float
    assignment: dict[str, Candidate]


def brute_force(
    spec: Spec,
    candidates: dict[str, list[Candidate]],
    catalog: Catalog,
    *,
    objective: Objective,
    limits: dict[str, float] | None = None,
    makespan_tiebreak: bool = False,
) -> Best | None:
    """The lexicographically best feasible plan: (cost[, makespan]) or (makespan, cost)."""
    limits = limits or {}
    names = [t.name for t in spec.tasks]
    options = []
    for t in names:
        ok = [
            c for c in candidates[t] if all(a <= limits.get(k, float("inf")) + EPS for k, a in c.quota_usage)
        ]
        options.append(ok)
    needs_time = objective is Objective.TIME or spec.deadline_hours is not None or makespan_tiebreak
    best: Best | None = None
    best_key = None
    for combo in itertools.product(*options):
        assign = dict(zip(names, combo, strict=True))
        cost = plan_cost(spec, catalog, assign)
        if spec.budget is not None and cost > spec.budget + 1e-7:
            continue
        span = 0.0
        if needs_time:
            uses_limits = any(k in limits for c in combo for k, _ in c.quota_usage)
            if uses_limits:
                span = min_makespan_with_limits(spec, catalog, assign, limits)
            else:
                span = critical_path(spec, catalog, assign)
            if spec.deadline_hours is not None and span > spec.deadline_hours + 1e-7:
                continue
        if objective is Objective.TIME:
            key = (round(span, 6), cost)
        else:
            key = (round(cost, 6), span if makespan_tiebreak else 0.0)
        if best_key is None or key < best_key:
            best_key, best = key, Best(cost, span, assign)
    return best
