"""Typed values passed between pipeline stages (spec → catalog → candidates → placement → render).

Only plain frozen dataclasses and enums live here, so every stage can import them without
importing another stage. External formats (plan.json) are built from these in `planfile.py`;
these internal types are free to change behind it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# Small enums
# ---------------------------------------------------------------------------------------------


class Objective(str, enum.Enum):
    COST = "cost"
    TIME = "time"


class SpotPolicy(str, enum.Enum):
    ON_DEMAND = "false"
    SPOT = "true"
    AUTO = "auto"


class FailureScope(str, enum.Enum):
    """What a failed provisioning attempt rules out for the rest of the run."""

    ZONE = "zone"
    REGION = "region"
    CLOUD = "cloud"
    RETRY = "none-retry"  # transient (throttling): retry the same placement, exclude nothing
    NONE = "none"  # not a placement problem: fail the run and tell the user



# ---------------------------------------------------------------------------------------------
# Source positions (for errors that name file, line and key)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourcePos:
    file: str
    line: int  # 1-based; 0 when unknown
    key: str  # dotted path, e.g. "tasks[1].resources.cpus"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}" if self.line else f"{self.file}: {self.key}"


# ---------------------------------------------------------------------------------------------
# Spec
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    """A resource amount: `16` means exactly 16, `16+` means at least 16."""

    value: float
    at_least: bool

    def admits(self, offered: float | None) -> bool:
        if offered is None:
            return False
        return offered >= self.value if self.at_least else abs(offered - self.value) < 1e-9


@dataclass(frozen=True)
class AcceleratorDemand:
    name: str  # canonical catalog name, e.g. "A100", "A100-80GB", "tpu-v5p-8"
    count: int


@dataclass(frozen=True)
class ResourceOption:
    """One acceptable resource shape. A task accepts any of its options (SkyPilot `any_of`,
    accelerator sets); `ordered` options carry increasing `preference` (0 = most preferred)."""

    cpus: Quantity | None = None
    memory_gib: Quantity | None = None
    disk_gb: int = 256
    disk_tier: str | None = None  # SkyPilot's low/medium/high/ultra/best; None: the target's default disk
    accelerator: AcceleratorDemand | None = None
    use_spot: SpotPolicy = SpotPolicy.ON_DEMAND
    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = None
    image_id: str | None = None
    ports: tuple[int, ...] = ()
    preference: int = 0


@dataclass(frozen=True)
class Allowed:
    """Placement restrictions; None means unrestricted."""

    clouds: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None  # fnmatch globs on region names


@dataclass(frozen=True)
class DataInput:
    uri: str
    size_gb: float
    cloud: str | None  # inferred from the URI scheme (s3→aws, gs→gcp, azure blob→azure, file→local)
    region: str | None


@dataclass(frozen=True)
class Task:
    name: str
    options: tuple[ResourceOption, ...]  # never empty; a CPU-only default when unspecified
    num_nodes: int = 1
    setup: str | None = None
    run: str | None = None
    envs: tuple[tuple[str, str], ...] = ()  # sorted by key
    secrets: tuple[str, ...] = ()  # names only: values are read from the environment at apply time
    # SkyPilot's `envs: {NAME: }` (null: "a value is required at launch"): these names are in
    # `secrets` too, so their values travel like secrets and are never written into the plan.
    launch_envs: tuple[str, ...] = ()
    inputs: tuple[DataInput, ...] = ()
    outputs_gb: float = 0.0
    # Runtime estimate. `hours_by_accelerator` overrides `hours` for that accelerator name.
    hours: float = 1.0
    hours_by_accelerator: tuple[tuple[str, float], ...] = ()
    hours_given: bool = False  # False ⇒ the 1-hour default was used (PLAN.md says so)
    depends_on: tuple[str, ...] = ()
    allowed: Allowed = Allowed()
    workdir: str | None = None
    # SkyPilot's `workdir: {url, ref}`: (url, ref or "") of a git repository; recorded, not fetched yet.
    workdir_git: tuple[str, str] | None = None
    file_mounts: tuple[tuple[str, str], ...] = ()
    # SkyPilot storage mounts skyplan cannot copy (MOUNT / MOUNT_CACHED modes, buckets by name):
    # (remote path, description); recorded in plan.json, apply refuses until buckets are mounted.
    storage_mounts: tuple[tuple[str, str], ...] = ()
    # Sources (IPv4 CIDRs) the task's `ports` are opened to; empty: the spec's `ingress_from`.
    ingress_from: tuple[str, ...] = ()
    pos: SourcePos | None = None

    def hours_for(self, accelerator: str | None) -> float:
        for name, h in self.hours_by_accelerator:
            if name == accelerator:
                return h
        return self.hours


@dataclass(frozen=True)
class Quota:
    """A limit on a resource used at the same time, e.g. aws us-east-1 on-demand G/VT vCPUs ≤ 64.

    `resource` is one of "vcpus", "accelerators", "nodes"; `match` narrows which offerings count
    (all keys optional): cloud, region (glob), zone (glob), family (instance type glob, e.g.
    "g*"), accelerator (name), spot ("true"/"false"). With `per_region`, the limit holds in
    each matching region separately ("gcp A100 per region ≤ 16"). Pool and local-slot
    capacities are expressed as quotas too (one per host, matching its zone)."""

    name: str
    resource: str
    limit: float
    match: tuple[tuple[str, str], ...] = ()
    per_region: bool = False


@dataclass(frozen=True)
class PoolHost:
    name: str
    address: str
    user: str
    key_path: str | None
    port: int = 22
    cpus: float = 1
    memory_gib: float = 1
    accelerator: str | None = None
    accelerator_count: int = 0


@dataclass(frozen=True)
class Pool:
    """Machines the user owns (ssh target) or local slots. Each host is a zone of the pool."""

    name: str
    hosts: tuple[PoolHost, ...]
    hourly_cost: float = 0.0  # amortized $/h per host
    region: str = "on-prem"


@dataclass(frozen=True)
class Spec:
    name: str
    tasks: tuple[Task, ...]  # topologically sorted, stable
    objective: Objective = Objective.COST
    deadline_hours: float | None = None
    budget: float | None = None
    allowed: Allowed = Allowed()
    exclude_zones: tuple[str, ...] = ()
    storage: str | None = None
    storage_region: str | None = None  # the storage bucket's region, when the spec gives it
    ingress_from: tuple[str, ...] = ()  # sources (IPv4 CIDRs) every task's `ports` are opened to
    quotas: tuple[Quota, ...] = ()
    pools: tuple[Pool, ...] = ()
    source_file: str = "<spec>"
    source_sha256: str = ""
    # Things the spec stage accepted but the user should hear about (e.g. a secret's value
    # written in the file was dropped); the CLI prints them, PLAN.md lists them.
    warnings: tuple[str, ...] = ()
    # Where the keys that constrain a plan are written, so that later stages can point an
    # infeasibility at its cause (file:line:key) without reading the YAML again. Keys:
    # "budget", "deadline", "allowed.clouds", "allowed.regions", "exclude_zones[<token>]",
    # "quotas[<name>]" (its limit), and per task "tasks[<name>].resources",
    # "tasks[<name>].allowed.clouds|regions", "tasks[<name>].accelerators[<NAME>:<count>]".
    # Metadata: not compared, so equal specs from differently laid-out files stay equal.
    origin: Mapping[str, SourcePos] = field(default_factory=dict, compare=False)

    def where(self, key: str) -> SourcePos | None:
        """Where `key` (see `origin`) is written in the spec, if it is."""
        return self.origin.get(key)

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        return tuple((d, t.name) for t in self.tasks for d in t.depends_on)


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Location:
    cloud: str
    region: str
    zone: str | None = None  # None: a region without zones (Azure in this catalog)

    @property
    def key(self) -> str:
        return f"{self.cloud}/{self.region}/{self.zone or '-'}"

    def __str__(self) -> str:
        return f"{self.cloud}:{self.zone or self.region}"


@dataclass(frozen=True)
class Offering:
    """One purchasable machine in one zone. GCP host + attached GPU rows are already combined."""

    location: Location
    instance_type: str
    accelerator: str | None
    accelerator_count: int
    vcpus: float | None
    memory_gib: float | None
    price: float | None  # on-demand USD/h; None when not sold on demand
    spot_price: float | None  # None when no spot market
    host_type: str | None = None  # GCP: host machine type when the GPU is attached separately

    @property
    def cloud(self) -> str:
        return self.location.cloud


@dataclass(frozen=True)
class TierRates:
    """USD per GB leaving a location of this cloud, by how far the destination is."""

    same_zone: float
    cross_zone: float
    inter_region: float
    internet: float  # to another cloud or the internet


@dataclass(frozen=True)
class Bandwidth:
    """Assumed sustained transfer rates in Gbit/s, by tier (documented in README)."""

    same_zone: float = 10.0
    cross_zone: float = 10.0
    inter_region: float = 5.0
    internet: float = 10.0  # SkyPilot's measured S3→GCS average


@dataclass(frozen=True)
class CatalogInfo:
    date: str
    fingerprint: str  # sha256 of the catalog files, in a fixed order
    source: str  # directory or "builtin"


@dataclass(frozen=True)
class Catalog:
    """Every offering skyplan may place a task on, plus what moving data between them costs."""

    offerings: tuple[Offering, ...]
    rates: Mapping[str, TierRates]  # per cloud (source side of a transfer)
    bandwidth: Bandwidth
    info: CatalogInfo

    def egress_per_gb(self, src: Location, dst: Location) -> float:
        """USD per GB moved from `src` to `dst`; the source cloud's rates apply."""
        rates = self.rates[src.cloud]
        if src.cloud != dst.cloud:
            return rates.internet
        if src.region != dst.region:
            return rates.inter_region
        # A bucket (zone None) serves every zone of its region at the same-zone rate.
        if src.zone != dst.zone and src.zone is not None and dst.zone is not None:
            return rates.cross_zone
        return rates.same_zone

    def transfer_hours(self, gigabytes: float, src: Location, dst: Location) -> float:
        """Estimated hours to move `gigabytes` from `src` to `dst` at the tier's bandwidth."""
        if gigabytes <= 0:
            return 0.0
        bw = self.bandwidth
        if src.cloud != dst.cloud:
            gbps = bw.internet
        elif src.region != dst.region:
            gbps = bw.inter_region
        elif src.zone != dst.zone and src.zone is not None and dst.zone is not None:
            gbps = bw.cross_zone
        else:
            gbps = bw.same_zone
        return gigabytes * 8.0 / gbps / 3600.0


# ---------------------------------------------------------------------------------------------
# Candidates and placement
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One way to run one task: an offering, spot or not, and what it would cost and take."""

    task: str
    offering: Offering
    spot: bool
    hours: float  # expected runtime, including the spot preemption overhead
    hourly_price: float  # per node
    num_nodes: int
    input_egress_cost: float  # reading the task's external inputs to each node at this location
    preference: int = 0
    quota_usage: tuple[tuple[str, float], ...] = ()  # (quota name, amount held while running)

    @property
    def location(self) -> Location:
        return self.offering.location

    @property
    def compute_cost(self) -> float:
        return self.hours * self.hourly_price * self.num_nodes

    @property
    def cost(self) -> float:
        return self.compute_cost + self.input_egress_cost


@dataclass(frozen=True)
class TaskPlacement:
    task: str
    candidate: Candidate
    egress_cost: float  # inputs and upstream outputs read to each node, own outputs written (transfers.py)
    start_hours: float
    end_hours: float

    @property
    def compute_cost(self) -> float:
        return self.candidate.compute_cost


@dataclass(frozen=True)
class SolverStats:
    status: str  # OPTIMAL | FEASIBLE | INFEASIBLE | ...
    objective: float
    wall_s: float
    gap: float = 0.0
    variables: int = 0
    constraints: int = 0
    candidates_before: int = 0
    candidates_after: int = 0
    workers: int = 1
    seed: int = 0


@dataclass(frozen=True)
class RunnerUp:
    task: str
    candidate: Candidate
    total_cost: float
    makespan_hours: float


@dataclass(frozen=True)
class ParetoPoint:
    total_cost: float
    makespan_hours: float
    assignment: tuple[tuple[str, str], ...]  # (task, location key)


@dataclass(frozen=True)
class Placement:
    name: str
    objective: Objective
    tasks: tuple[TaskPlacement, ...]  # in spec (topological) order
    total_cost: float
    makespan_hours: float
    excluded_zones: tuple[str, ...]
    solver: SolverStats
    tight_constraints: tuple[str, ...] = ()
    runners_up: tuple[RunnerUp, ...] = ()
    pareto: tuple[ParetoPoint, ...] = ()
    single_region_baseline: tuple[str, float] | None = None  # (location, cost) of best one-region plan
    extras: Mapping[str, object] = field(default_factory=dict)

    def task(self, name: str) -> TaskPlacement:
        for t in self.tasks:
            if t.task == name:
                return t
        raise KeyError(name)
