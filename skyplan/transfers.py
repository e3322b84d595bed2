"""The real path of a plan's data, priced and timed: what each task's placement moves, and how long.

Data moves through buckets, never task to task (README "The cost and time model"):

* a task's outputs go up once, from its location to the plan's storage (the spec's `storage:`
  URI; `file://` on the machine running apply when none is given);
* every downstream task reads each upstream's outputs down to each of its nodes;
* an external input is read from its bucket to each node of the task.

The storage is fixed by the spec, so every transfer depends on one task's location only: the
optimizer sees all egress as a per-candidate (unary) cost, and a transfer's time as an upload
term of the upstream plus a download term of the downstream.

A bucket is a location with no zone: it serves every zone of its region at the same-zone rate.
A bucket whose region the spec does not give (`storage: {uri, region}`, `inputs: [{uri, region}]`;
a URI never names it) is taken to be in
whichever region of its cloud reads or writes it: within its cloud it costs the same-zone rate,
leaving its cloud the internet rate. A bucket of no known cloud (an https URL) is free to read,
since no cloud we know bills the sender for it, and reads at the internet bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass

from skyplan.models import Catalog, Location, Spec, Task
from skyplan.spec._tasks import infer_cloud

# Transfer tiers, nearest first; rates grow with the tier (the catalog loader checks it).
SAME_ZONE, CROSS_ZONE, INTER_REGION, INTERNET = 0, 1, 2, 3


@dataclass(frozen=True)
class Bucket:
    """Where a bucket is: its cloud (None when unknown) and region (None when unknown)."""

    cloud: str | None
    region: str | None = None


def storage_bucket(spec: Spec) -> Bucket:
    """The plan's storage: the cloud of the spec's `storage:` URI and the region the spec gives
    for it; `local` (this machine) when the spec gives none."""
    if not spec.storage:
        return Bucket("local")
    return Bucket(infer_cloud(spec.storage), spec.storage_region)


def bucket_tier(bucket: Bucket, location: Location) -> int:
    """The transfer tier between a bucket and a task location (either direction)."""
    if bucket.cloud != location.cloud:
        return INTERNET
    if bucket.region is not None and bucket.region != location.region:
        return INTER_REGION
    return SAME_ZONE


def _rate(catalog: Catalog, source_cloud: str | None, tier: int) -> float:
    rates = catalog.rates.get(source_cloud) if source_cloud is not None else None
    if rates is None:
        return 0.0
    return (rates.same_zone, rates.cross_zone, rates.inter_region, rates.internet)[tier]


def upload_cost(gb: float, location: Location, bucket: Bucket, catalog: Catalog) -> float:
    """USD to write `gb` from a task at `location` into `bucket` (the task's cloud bills it)."""
    if gb <= 0:
        return 0.0
    return gb * _rate(catalog, location.cloud, bucket_tier(bucket, location))


def download_cost(gb: float, bucket: Bucket, location: Location, nodes: int, catalog: Catalog) -> float:
    """USD for each of `nodes` nodes at `location` to read `gb` from `bucket` (its cloud bills it)."""
    if gb <= 0:
        return 0.0
    return gb * nodes * _rate(catalog, bucket.cloud, bucket_tier(bucket, location))


def tier_hours(gb: float, tier: int, catalog: Catalog) -> float:
    """Hours to move `gb` at the catalog's bandwidth for `tier` (nodes read in parallel)."""
    if gb <= 0:
        return 0.0
    bw = catalog.bandwidth
    gbps = (bw.same_zone, bw.cross_zone, bw.inter_region, bw.internet)[tier]
    return gb * 8.0 / gbps / 3600.0


def input_bucket(cloud: str | None, region: str | None) -> Bucket:
    return Bucket(cloud, region)


def input_egress(task: Task, location: Location, catalog: Catalog) -> float:
    """USD for each node of a task at `location` to read its external inputs (part of the
    candidate's own cost, `Candidate.input_egress_cost`)."""
    return sum(
        download_cost(data.size_gb, input_bucket(data.cloud, data.region), location, task.num_nodes, catalog)
        for data in task.inputs
    )


def path_egress(
    spec: Spec, task: Task, location: Location, nodes: int, catalog: Catalog, outputs: dict[str, float]
) -> float:
    """USD of the DAG's data a task at `location` with `nodes` nodes moves: its outputs written to
    the plan's storage, each upstream's outputs (`outputs`: task → GB) read to each node."""
    storage = storage_bucket(spec)
    tier = bucket_tier(storage, location)
    return path_egress_at(task, location.cloud, tier, nodes, storage, catalog, outputs)


def path_egress_at(
    task: Task, cloud: str, tier: int, nodes: int, storage: Bucket, catalog: Catalog, outputs: dict[str, float]
) -> float:
    """`path_egress` for a location of `cloud` at `tier` from the storage: all it depends on."""
    up = task.outputs_gb * _rate(catalog, cloud, tier) if task.outputs_gb > 0 else 0.0
    down_rate = _rate(catalog, storage.cloud, tier)
    total = up
    for dep in task.depends_on:
        gb = outputs[dep]
        if gb > 0:
            total += gb * nodes * down_rate
    return total


def outputs_by_task(spec: Spec) -> dict[str, float]:
    """Task name → outputs_gb (`Spec.task` is a linear scan)."""
    return {t.name: t.outputs_gb for t in spec.tasks}


def input_hours(task: Task, location: Location, catalog: Catalog) -> float:
    """Hours a task at `location` spends reading its external inputs (one after another) before it
    runs; the nodes read in parallel."""
    return sum(
        tier_hours(data.size_gb, bucket_tier(input_bucket(data.cloud, data.region), location), catalog)
        for data in task.inputs
    )


def edge_hours(gb: float, src: Location, dst: Location, storage: Bucket, catalog: Catalog) -> float:
    """Hours between an upstream's end and a downstream's start: `gb` up to storage, then down."""
    return tier_hours(gb, bucket_tier(storage, src), catalog) + tier_hours(gb, bucket_tier(storage, dst), catalog)
