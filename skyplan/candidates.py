"""Per task, the (offering, spot or not) pairs that satisfy it, priced, with dominated ones pruned.

This is the optimizer's whole view of the catalog: a candidate carries its hours, hourly
price, input-egress cost (skyplan/transfers.py) and quota usage, so the solver never looks at
offerings again.

Spot policy (`resources.use_spot`):
  * `false`: on-demand only.
  * `true`:  spot only.
  * `auto`:  both, so spot is chosen only where it still wins after its overhead.
  A spot candidate's hours are always `hours × (1 + SPOT_OVERHEAD)`, the expected extra runtime
  from preemptions and restarts: cost, makespan and deadline checks must include it whoever chose
  spot (PLAN.md shows these inflated hours).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skyplan.catalog import is_accelerated
from skyplan.errors import CatalogError, InfeasibleError, SpecError
from skyplan.models import (
    Candidate,
    Catalog,
    Location,
    Offering,
    Quantity,
    Quota,
    ResourceOption,
    SourcePos,
    Spec,
    SpotPolicy,
    Task,
)
from skyplan.targets import disks
from skyplan.transfers import input_egress

# Expected extra runtime when a task runs on spot: preemptions, re-provisioning and the work
# redone since the last checkpoint. An assumption, not a measurement: the AWS Spot Instance
# Advisor puts most instance types in its "<5 %" or "5-10 %" monthly interruption-frequency
# buckets, and each interruption costs boot time plus the progress since the last
# checkpoint; 15 % is a middle value for jobs that checkpoint. Jobs that cannot resume
# should use `use_spot: false`.
SPOT_OVERHEAD: float = 0.15

# Targets the optimizer leaves out unless a spec names them (DESIGN.md "Targets": local
# would win every CPU task at price 0). A target's `enabled_by_default` overrides this.
_OFF_BY_DEFAULT: frozenset[str] = frozenset({"local"})

_QUOTA_RESOURCES: tuple[str, ...] = ("vcpus", "accelerators", "nodes")
_QUOTA_MATCH_KEYS: tuple[str, ...] = ("cloud", "region", "zone", "family", "accelerator", "spot")
# An AWS zone *name*: region + letter (us-east-1a, us-gov-west-1b, ap-southeast-4c).
_AWS_ZONE_NAME = re.compile(r"([a-z]{2}(?:-gov)?-[a-z]+-\d+)([a-z])")


# ---------------------------------------------------------------------------------------------
# Exclusions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exclusions:
    """Zones, regions and clouds no candidate may use (spec `exclude_zones`, `--exclude-zone`,
    failover). Build it with `parse_exclusions`, which checks every token against the catalog."""

    zones: frozenset[Location] = frozenset()  # zone-level locations (zone set)
    regions: frozenset[tuple[str, str]] = frozenset()  # (cloud, region)
    clouds: frozenset[str] = frozenset()
    tokens: tuple[str, ...] = ()  # as given, sorted and deduplicated (for plan.json)

    def excludes(self, location: Location) -> bool:
        """Whether `location` is ruled out."""
        return (
            location.cloud in self.clouds
            or (location.cloud, location.region) in self.regions
            or location in self.zones
        )

    def __or__(self, other: Exclusions) -> Exclusions:
        return Exclusions(
            zones=self.zones | other.zones,
            regions=self.regions | other.regions,
            clouds=self.clouds | other.clouds,
            tokens=tuple(sorted(set(self.tokens) | set(other.tokens))),
        )

    def describe(self) -> str:
        """Short human text, e.g. 'excluded zones use1-az1, eastus'."""
        return f"excluded {', '.join(self.tokens)}" if self.tokens else "no exclusions"


def parse_exclusions(
    tokens: Iterable[str], catalog: Catalog, extra: Sequence[Offering] = (), *, spec: Spec | None = None
) -> Exclusions:
    """Resolve exclusion tokens against the catalog (and target offerings such as `local`).

    A token is a zone (`use1-az1`, `us-central1-a`, `local-1`), a region (`eastus`,
    `us-east-1`) or a cloud (`aws`), optionally prefixed with its cloud (`aws:use1-az1`, the
    form `str(Location)` prints). An unknown token fails with close matches; an AWS zone
    *name* such as `us-east-1a` gets the AZ ids of its region, because zone names map to
    different physical zones in each AWS account. A token of `spec.exclude_zones` fails as a
    SpecError at its file:line:key; any other came from `--exclude-zone` (or a failover of it)
    and fails as a CatalogError naming the flag.
    """
    index = _LocationIndex(tuple(catalog.offerings) + tuple(extra))
    zones: set[Location] = set()
    regions: set[tuple[str, str]] = set()
    clouds: set[str] = set()
    given: set[str] = set()
    for raw in tokens:
        token = raw.strip()
        if not token:
            continue
        given.add(token)
        cloud, _, name = token.rpartition(":")
        if cloud and cloud not in index.clouds:
            raise _exclusion_error(spec, token, f"unknown cloud {cloud!r}{_did_you_mean(cloud, index.clouds)}")
        if not cloud and name in index.clouds:
            clouds.add(name)
            continue
        zone_hits = {loc for loc in index.zones.get(name, ()) if not cloud or loc.cloud == cloud}
        region_hits = {r for r in index.regions.get(name, ()) if not cloud or r[0] == cloud}
        if zone_hits:
            zones |= zone_hits
        elif region_hits:
            regions |= region_hits
        else:
            raise _exclusion_error(spec, token, _unknown_location_message(token, name, index))
    return Exclusions(frozenset(zones), frozenset(regions), frozenset(clouds), tuple(sorted(given)))


class _LocationIndex:
    def __init__(self, offerings: Sequence[Offering]):
        self.zones: dict[str, set[Location]] = {}
        self.regions: dict[str, set[tuple[str, str]]] = {}
        self.clouds: set[str] = set()
        for location in {o.location for o in offerings}:
            self.clouds.add(location.cloud)
            self.regions.setdefault(location.region, set()).add((location.cloud, location.region))
            if location.zone is not None:
                self.zones.setdefault(location.zone, set()).add(location)

    def names(self) -> list[str]:
        return sorted(set(self.zones) | set(self.regions) | self.clouds)


def _exclusion_error(spec: Spec | None, token: str, problem: str) -> CatalogError | SpecError:
    if spec is not None and token in spec.exclude_zones:
        pos = spec.where(f"exclude_zones[{token}]") or SourcePos(spec.source_file, 0, "exclude_zones")
        return SpecError(pos, f"{token!r}: {problem}")
    return CatalogError(f"--exclude-zone {token}: {problem}")


def _unknown_location_message(token: str, name: str, index: _LocationIndex) -> str:
    aws_name = _AWS_ZONE_NAME.fullmatch(name)
    if aws_name and ("aws", aws_name.group(1)) in index.regions.get(aws_name.group(1), ()):
        region = aws_name.group(1)
        ids = sorted(
            z
            for z, locs in index.zones.items()
            if any(loc.cloud == "aws" and loc.region == region for loc in locs)
        )
        return (
            "an AWS zone name; zone names point at a different physical "
            f"zone in each AWS account, so skyplan uses AZ ids. The AZ ids of {region} are "
            f"{', '.join(ids)} (`aws ec2 describe-availability-zones --region {region}` shows "
            f"which id is your {name})"
        )
    hint = _did_you_mean(name, index.names())
    return f"no such zone, region or cloud in the catalog{hint}"


def _did_you_mean(word: str, names: Iterable[str]) -> str:
    # Best first; equally close names in their natural order (difflib lists ties backwards).
    scored = sorted((-difflib.SequenceMatcher(None, word, name).ratio(), name) for name in set(names))
    close = [name for score, name in scored if -score >= 0.6][:4]
    if not close:
        return ""
    return f"; did you mean {close[0]}?" if len(close) == 1 else f"; did you mean {', '.join(close[:-1])} or {close[-1]}?"


# ---------------------------------------------------------------------------------------------
# Candidates
# ---------------------------------------------------------------------------------------------


class CandidateSet(dict):
    """`{task name: candidates}` (a plain dict), plus how many there were before pruning."""

    def __init__(self, candidates: Mapping[str, tuple[Candidate, ...]], before: Mapping[str, int]):
        super().__init__(candidates)
        self.before: dict[str, int] = dict(before)

    @property
    def total_before(self) -> int:
        """Candidates of all tasks before dominance pruning."""
        return sum(self.before.values())

    @property
    def total_after(self) -> int:
        """Candidates of all tasks after dominance pruning (what the optimizer sees)."""
        return sum(len(c) for c in self.values())


def count_before(candidates: Mapping[str, tuple[Candidate, ...]]) -> int:
    """Candidates before pruning, for a `build_candidates` result (its size if not a CandidateSet)."""
    if isinstance(candidates, CandidateSet):
        return candidates.total_before
    return sum(len(c) for c in candidates.values())


def build_candidates(
    spec: Spec,
    catalog: Catalog,
    *,
    exclusions: Exclusions | None = None,
    extra_offerings: Sequence[Offering] = (),
    enabled_by_default: Mapping[str, bool] = {},  # noqa: B006 - read only
) -> CandidateSet:
    """Per task name, the candidates satisfying it, pruned and sorted deterministically.

    `spec.exclude_zones` always apply, in addition to `exclusions`. `extra_offerings` are the
    targets' own offerings (local slots, ssh pool hosts). A cloud whose `enabled_by_default`
    is False (default: only `local`) is used only when a spec names it in `allowed.clouds`
    (spec or task) or a resource option's `cloud`.

    Raises InfeasibleError naming, for every task left with no candidate, why.
    """
    for quota in spec.quotas:
        _check_quota(spec, quota)
    offerings = tuple(catalog.offerings) + tuple(extra_offerings)
    excluded = parse_exclusions(spec.exclude_zones, catalog, extra_offerings, spec=spec)
    if exclusions is not None:
        excluded = excluded | exclusions
    index = _OfferingIndex(offerings)
    placed_cache: dict[tuple, _Placed] = {}
    result: dict[str, tuple[Candidate, ...]] = {}
    before: dict[str, int] = {}
    failures: list[str] = []
    for task in spec.tasks:
        kept, count = _task_candidates(spec, task, catalog, index, excluded, enabled_by_default, placed_cache)
        if not kept:
            failures.append(_explain_none(spec, task, index, excluded, enabled_by_default))
            continue
        before[task.name] = count
        result[task.name] = kept
    if failures:
        head = failures[0] if len(failures) == 1 else f"{len(failures)} tasks have no candidate"
        body = "" if len(failures) == 1 else ":\n  " + "\n  ".join(failures)
        raise InfeasibleError(head + body, reasons=tuple(failures))
    return CandidateSet(result, before)


class _OfferingIndex:
    """Offerings by accelerator shape, so a task only scans machines of its shape."""

    def __init__(self, offerings: Sequence[Offering]):
        self.cpu: list[Offering] = []
        self.by_accelerator: dict[tuple[str, int], list[Offering]] = {}
        self.accelerator_names: set[str] = set()
        for offering in offerings:
            if offering.accelerator:
                key = (offering.accelerator, offering.accelerator_count)
                self.by_accelerator.setdefault(key, []).append(offering)
                self.accelerator_names.add(offering.accelerator)
            elif not is_accelerated(offering):
                # Paying for idle GPUs never wins for a CPU task, and leaving GPU machines out
                # keeps the model small.
                self.cpu.append(offering)

    def shaped(self, option: ResourceOption) -> list[Offering]:
        demand = option.accelerator
        pool = self.cpu if demand is None else self.by_accelerator.get((demand.name, demand.count), [])
        return [o for o in pool if _shape_fits(option, o)]


def _shape_fits(option: ResourceOption, offering: Offering) -> bool:
    if option.instance_type is not None and option.instance_type != offering.instance_type:
        return False
    if option.cpus is not None and not option.cpus.admits(offering.vcpus):
        return False
    if option.memory_gib is not None and not option.memory_gib.admits(offering.memory_gib):
        return False
    return True


@dataclass(frozen=True)
class _Placement:
    """Where a task may go: its option's explicit location plus allowed globs."""

    clouds: tuple[str, ...] | None
    regions: tuple[str, ...] | None
    enabled: Mapping[str, bool] = field(default_factory=dict)
    named_clouds: frozenset[str] = frozenset()

    def admits(self, option: ResourceOption, location: Location) -> bool:
        if option.cloud is not None and option.cloud != location.cloud:
            return False
        if option.region is not None and option.region != location.region:
            return False
        if option.zone is not None and option.zone != location.zone:
            return False
        if self.clouds is not None and location.cloud not in self.clouds:
            return False
        if self.regions is not None and not any(
            fnmatch.fnmatchcase(location.region, glob) for glob in self.regions
        ):
            return False
        return self.enabled_for(location.cloud) or option.cloud == location.cloud

    def enabled_for(self, cloud: str) -> bool:
        """Whether the cloud is considered without an option naming it explicitly."""
        return self.enabled.get(cloud, cloud not in _OFF_BY_DEFAULT) or cloud in self.named_clouds


def _placement_rules(spec: Spec, task: Task, enabled: Mapping[str, bool]) -> _Placement:
    clouds = task.allowed.clouds if task.allowed.clouds is not None else spec.allowed.clouds
    regions = task.allowed.regions if task.allowed.regions is not None else spec.allowed.regions
    named = set(spec.allowed.clouds or ()) | set(task.allowed.clouds or ())
    return _Placement(clouds, regions, enabled, frozenset(named))


def _task_candidates(
    spec: Spec,
    task: Task,
    catalog: Catalog,
    index: _OfferingIndex,
    excluded: Exclusions,
    enabled: Mapping[str, bool],
    placed_cache: dict[tuple, _Placed],
) -> tuple[tuple[Candidate, ...], int]:
    """The task's pruned candidates and how many there were before pruning.

    Candidates are compared as plain tuples and only the survivors become `Candidate`s: a
    CPU task matches thousands of offerings, of which a few per location survive.
    """
    rules = _placement_rules(spec, task, enabled)
    placed = [
        (option, _placed_offerings(option, rules, index, excluded, placed_cache)) for option in task.options
    ]
    # With one spot policy for all options, the offerings an option matches at one location
    # with one spot flag and the same quota footprint have equal hours, preference and
    # egress, so only the cheapest of them can survive pruning: skip the others early.
    shortcut = len({option.use_spot for option in task.options}) == 1
    if shortcut:
        pairs = [p.pairs(option.use_spot) for option, p in placed]
        before = len(pairs[0]) if len(pairs) == 1 else len(frozenset().union(*pairs))
    chosen: dict[tuple[int, bool], tuple[int, float, Offering, bool, float]] = {}
    for option, group in placed:
        offerings = group.cheapest(option.use_spot, spec) if shortcut else group.offerings
        for offering in offerings:
            hours = task.hours_for(offering.accelerator)
            for spot, price, spot_hours in _price_choices(option.use_spot, offering, hours):
                key = (id(offering), spot)
                held = chosen.get(key)
                # The same machine reached through two options keeps the preferred option.
                if held is None or (option.preference, spot_hours) < held[:2]:
                    chosen[key] = (option.preference, spot_hours, offering, spot, price)
    if not shortcut:
        before = len(chosen)
    chosen = _first_feasible_rank(chosen)
    nodes = task.num_nodes
    egress_at: dict[Location, float] = {}
    key_of: dict[Location, str] = {}
    entries = []
    for preference, hours, offering, spot, price in chosen.values():
        location = offering.location
        if location not in egress_at:
            egress_at[location] = input_egress(task, location, catalog)
            key_of[location] = location.key
        egress = egress_at[location]
        usage = _quota_usage(spec, offering, spot, nodes) if spec.quotas else ()
        # The same arithmetic as Candidate.cost, so the order matches candidate_order exactly.
        cost = hours * price * nodes + egress
        order = (
            cost,
            hours,
            preference,
            key_of[location],
            offering.instance_type,
            spot,
            offering.accelerator or "",
            offering.accelerator_count,
        )
        group = (location, tuple(k for k, _ in usage))
        payload = (offering, spot, hours, price, egress, preference, usage)
        entries.append((order, group, tuple(a for _, a in usage), payload))
    kept = tuple(
        Candidate(
            task=task.name,
            offering=offering,
            spot=spot,
            hours=hours,
            hourly_price=price,
            num_nodes=nodes,
            input_egress_cost=egress,
            preference=preference,
            quota_usage=usage,
        )
        for offering, spot, hours, price, egress, preference, usage in _pareto(entries)
    )
    return kept, before


def _first_feasible_rank(chosen: dict[tuple[int, bool], tuple]) -> dict[tuple[int, bool], tuple]:
    """Only the machines of the most preferred rank that has any (values lead with the rank).

    SkyPilot's `ordered` alternatives and accelerator lists mean "try in this order": the first
    alternative with any machine wins outright, however much cheaper a later one is; the later
    ones are fallbacks, reached when failover has excluded every zone of the earlier ones (the
    exclusions are applied before this). A rank that has machines but loses them all to a quota
    or budget is not skipped: the plan is then infeasible, naming that constraint."""
    if not chosen:
        return chosen
    first = min(entry[0] for entry in chosen.values())
    return {key: entry for key, entry in chosen.items() if entry[0] == first}


class _Placed:
    """The offerings one resource shape may use under one set of placement rules."""

    def __init__(self, offerings: list[Offering]):
        self.offerings = offerings
        self._cheapest: dict[SpotPolicy, list[Offering]] = {}
        self._pairs: dict[SpotPolicy, frozenset[tuple[int, bool]]] = {}

    def pairs(self, policy: SpotPolicy) -> frozenset[tuple[int, bool]]:
        """(offering id, spot) for every candidate the policy allows: the count before pruning."""
        if policy not in self._pairs:
            self._pairs[policy] = frozenset(
                (id(o), spot) for o in self.offerings for spot, _, _ in _price_choices(policy, o, 1.0)
            )
        return self._pairs[policy]

    def cheapest(self, policy: SpotPolicy, spec: Spec) -> list[Offering]:
        """Per location, spot flag and quota footprint, the offering first in candidate order
        among equal hours (`spec` only supplies the quotas, the same for a whole build)."""
        if policy not in self._cheapest:
            best: dict[tuple[Location, bool, tuple], tuple[tuple, Offering]] = {}
            for o in self.offerings:
                for spot, price, _ in _price_choices(policy, o, 1.0):
                    rank = (price, o.instance_type, spot, o.accelerator or "", o.accelerator_count)
                    # Amounts scale with the node count, so equal at one node means equal at n.
                    footprint = _quota_usage(spec, o, spot, 1) if spec.quotas else ()
                    key = (o.location, spot, footprint)
                    if key not in best or rank < best[key][0]:
                        best[key] = (rank, o)
            self._cheapest[policy] = list(dict.fromkeys(o for _, o in best.values()))
        return self._cheapest[policy]


def _placed_offerings(
    option: ResourceOption,
    rules: _Placement,
    index: _OfferingIndex,
    excluded: Exclusions,
    cache: dict[tuple, _Placed],
) -> _Placed:
    # Tasks of one DAG often ask for the same shape in the same places: filter once.
    key = (
        option.cpus,
        option.memory_gib,
        option.accelerator,
        option.instance_type,
        option.cloud,
        option.region,
        option.zone,
        option.disk_tier,
        rules.clouds,
        rules.regions,
        rules.named_clouds,
    )
    if key not in cache:
        cache[key] = _Placed(
            [
                o
                for o in index.shaped(option)
                if rules.admits(option, o.location) and not excluded.excludes(o.location)
                and disks.supports(o.location.cloud, option.disk_tier)
            ]
        )
    return cache[key]


def _price_choices(policy: SpotPolicy, offering: Offering, hours: float) -> list[tuple[bool, float, float]]:
    """(spot, hourly price, expected hours) for each way the spot policy allows."""
    choices = []
    if policy in (SpotPolicy.ON_DEMAND, SpotPolicy.AUTO) and offering.price is not None:
        choices.append((False, offering.price, hours))
    if policy in (SpotPolicy.SPOT, SpotPolicy.AUTO) and offering.spot_price is not None:
        choices.append((True, offering.spot_price, hours * (1.0 + SPOT_OVERHEAD)))
    return choices


# ---------------------------------------------------------------------------------------------
# Quotas
# ---------------------------------------------------------------------------------------------


def _quota_admits(quota: Quota, offering: Offering, spot: bool) -> bool:
    location = offering.location
    for key, value in quota.match:
        if key == "cloud" and location.cloud != value:
            return False
        if key == "region" and not fnmatch.fnmatchcase(location.region, value):
            return False
        if key == "zone" and (location.zone is None or not fnmatch.fnmatchcase(location.zone, value)):
            return False
        if key == "family" and not fnmatch.fnmatchcase(offering.instance_type, value):
            return False
        if key == "accelerator" and offering.accelerator != value:
            return False
        if key == "spot" and str(spot).lower() != str(value).strip().lower():
            return False
    return True


def _check_quota(spec: Spec, quota: Quota) -> None:
    where = SourcePos(spec.source_file, 0, f"quotas.{quota.name}")
    if quota.resource not in _QUOTA_RESOURCES:
        raise SpecError(
            where, f"resource must be one of {', '.join(_QUOTA_RESOURCES)}, got {quota.resource!r}"
        )
    for key, _ in quota.match:
        if key not in _QUOTA_MATCH_KEYS:
            raise SpecError(where, f"unknown match key {key!r} (known: {', '.join(_QUOTA_MATCH_KEYS)})")


def _quota_usage(spec: Spec, offering: Offering, spot: bool, nodes: int) -> tuple[tuple[str, float], ...]:
    usage: list[tuple[str, float]] = []
    for quota in spec.quotas:
        if not _quota_admits(quota, offering, spot):
            continue
        if quota.resource == "vcpus":
            amount = (offering.vcpus or 0.0) * nodes
        elif quota.resource == "accelerators":
            amount = float(offering.accelerator_count * nodes)
        else:
            amount = float(nodes)
        if amount > 0:
            key = f"{quota.name}@{offering.location.region}" if quota.per_region else quota.name
            usage.append((key, amount))
    return tuple(sorted(usage))


def quota_limits(
    spec: Spec, catalog: Catalog | None = None, extra_offerings: Sequence[Offering] = ()
) -> dict[str, float]:
    """Quota key → limit, with the keys `Candidate.quota_usage` uses.

    A per-region quota gets one key `name@region` per region of the catalog (and
    `extra_offerings`) that its match admits, so `catalog` is required when the spec has any.
    """
    limits: dict[str, float] = {}
    for quota in spec.quotas:
        _check_quota(spec, quota)
        if not quota.per_region:
            limits[quota.name] = quota.limit
            continue
        if catalog is None:
            raise TypeError(f"quota_limits: quota {quota.name!r} is per region; pass the catalog")
        location_keys = {k: v for k, v in quota.match if k in ("cloud", "region")}
        for location in {o.location for o in (*catalog.offerings, *extra_offerings)}:
            if location_keys.get("cloud", location.cloud) != location.cloud:
                continue
            if not fnmatch.fnmatchcase(location.region, location_keys.get("region", "*")):
                continue
            limits[f"{quota.name}@{location.region}"] = quota.limit
    return dict(sorted(limits.items()))


# ---------------------------------------------------------------------------------------------
# Dominance pruning
# ---------------------------------------------------------------------------------------------


def candidate_order(candidate: Candidate) -> tuple:
    """The deterministic order candidates are returned in: cheapest, then fastest, then by name."""
    offering = candidate.offering
    return (
        candidate.cost,
        candidate.hours,
        candidate.preference,
        candidate.location.key,
        offering.instance_type,
        candidate.spot,
        offering.accelerator or "",
        offering.accelerator_count,
    )


def prune_dominated(candidates: Iterable[Candidate]) -> tuple[Candidate, ...]:
    """Drop candidates another candidate at the same location beats, sorted by `candidate_order`.

    Two candidates of one task at one location have the same data transfers to and from every
    other task; if they also count against the same quotas, the one that is no more expensive,
    no slower, no less preferred and uses no more of any quota is at least as good under every
    objective monotone in (cost, hours) and in every constraint. Among equals the first in
    `candidate_order` stays.
    """
    entries = [
        (
            candidate_order(c),
            (c.task, c.location, tuple(k for k, _ in c.quota_usage)),
            tuple(a for _, a in c.quota_usage),
            c,
        )
        for c in candidates
    ]
    return tuple(_pareto(entries))


def _pareto(entries: list[tuple[tuple, tuple, tuple[float, ...], Any]]) -> list[Any]:
    """Payloads of the entries (order key, group, quota amounts, payload) no earlier entry of
    their group dominates, in order-key order. The order key starts with (cost, hours,
    preference), so a dominator always comes first; and if an earlier entry was itself
    dropped, whatever dropped it dominates this one too."""
    fronts: dict[tuple, list[tuple[float, float, int, tuple[float, ...]]]] = {}
    kept = []
    for order, group, amounts, payload in sorted(entries, key=lambda entry: entry[0]):
        cost, hours, preference = order[0], order[1], order[2]
        front = fronts.setdefault(group, [])
        if any(
            c <= cost
            and h <= hours
            and p <= preference
            and all(x <= y for x, y in zip(a, amounts, strict=True))
            for c, h, p, a in front
        ):
            continue
        front.append((cost, hours, preference, amounts))
        kept.append(payload)
    return kept


# ---------------------------------------------------------------------------------------------
# Why a task has no candidate
# ---------------------------------------------------------------------------------------------


def _describe_option(option: ResourceOption) -> str:
    parts = []
    if option.accelerator is not None:
        parts.append(f"{option.accelerator.name}:{option.accelerator.count}")
    if option.instance_type is not None:
        parts.append(option.instance_type)
    if option.cpus is not None:
        parts.append(f"cpus {_quantity(option.cpus)}")
    if option.memory_gib is not None:
        parts.append(f"memory {_quantity(option.memory_gib)} GiB")
    return ", ".join(parts) or "any CPU machine"


def _quantity(q: Quantity) -> str:
    text = f"{q.value:g}"
    return f"{text}+" if q.at_least else text


def _summarize(names: Iterable[str], limit: int = 8) -> str:
    ordered = sorted(set(names))
    shown = ", ".join(ordered[:limit])
    return shown + (f", ... ({len(ordered)} in all)" if len(ordered) > limit else "")


def _explain_none(
    spec: Spec, task: Task, index: _OfferingIndex, excluded: Exclusions, enabled: Mapping[str, bool]
) -> str:
    """Why `task` has no candidate, led by the file:line:key of the spec key that causes it (the
    accelerator, `allowed.regions`, `exclude_zones`, …) or the `--exclude-zone` flag."""
    rules = _placement_rules(spec, task, enabled)
    reasons = list(dict.fromkeys(_explain_option(spec, task, rules, option, index, excluded)
                                 for option in task.options))
    lead = reasons[0][0]
    parts = [text if where in (None, lead) else f"{text} ({where})" for where, text in reasons]
    return (f"{lead}: " if lead else "") + f"task {task.name!r}: " + "; ".join(parts)


def _explain_option(
    spec: Spec, task: Task, rules: _Placement, option: ResourceOption, index: _OfferingIndex,
    excluded: Exclusions,
) -> tuple[str | None, str]:
    """(where the cause is written, why) for one resource option without a candidate."""
    what = _describe_option(option)
    demand = option.accelerator
    resources = _where(spec, f"tasks[{task.name}].resources")
    if demand is not None:
        written = _where(spec, f"tasks[{task.name}].accelerators[{demand.name}:{demand.count}]") or resources
        if demand.name not in index.accelerator_names:
            names = sorted(index.accelerator_names)
            same_but_case = [n for n in names if n.lower() == demand.name.lower()]
            close = same_but_case or difflib.get_close_matches(demand.name, names, n=4, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {_summarize(names, 30)}"
            return written, f"no accelerator named {demand.name!r} in the catalog ({hint})"
        if (demand.name, demand.count) not in index.by_accelerator:
            counts = sorted({c for (n, c) in index.by_accelerator if n == demand.name})
            return written, f"{demand.name} comes in counts {', '.join(map(str, counts))}, not {demand.count}"
    shaped = index.shaped(option)
    if not shaped:
        return resources, f"no machine in the catalog has {what}"
    placed = [o for o in shaped if rules.admits(option, o.location)]
    where = _where_text(rules, option)
    if not placed:
        regions = _summarize(o.location.region for o in shaped)
        clouds = sorted({o.cloud for o in shaped})
        text = f"no offering of {what} {where} ({what} exists in: {regions}; clouds: {', '.join(clouds)})"
        off = [c for c in clouds if not rules.enabled_for(c)]
        if off:
            text += f"; {', '.join(off)} is only used when named in allowed.clouds"
        return _placement_cause(spec, task, option, rules, shaped) or resources, text
    free = [o for o in placed if not excluded.excludes(o.location)]
    if not free:
        return _exclusion_cause(spec, excluded, placed), (
            f"no offering of {what} {where} outside {excluded.describe()} "
            f"(it exists only in: {_summarize(str(o.location) for o in placed)})"
        )
    policy = option.use_spot
    if policy is SpotPolicy.SPOT:
        return resources, f"no spot price for {what} {where} (use_spot: true; try auto)"
    return resources, f"no on-demand price for {what} {where} (only spot is sold; set use_spot: true or auto)"


def _where(spec: Spec, key: str) -> str | None:
    pos = spec.where(key)
    return str(pos) if pos is not None else None


def _placement_cause(
    spec: Spec, task: Task, option: ResourceOption, rules: _Placement, shaped: Sequence[Offering]
) -> str | None:
    """The key that rules out every location of `shaped`: the option's own cloud/region/zone
    (its `resources`), else `allowed.clouds`, else `allowed.regions` (the task's if it sets
    them, else the spec's)."""
    bare = _Placement(None, None, rules.enabled, rules.named_clouds)
    if not any(bare.admits(option, o.location) for o in shaped):
        return _where(spec, f"tasks[{task.name}].resources")
    for key in ("clouds", "regions"):
        narrowed = _Placement(rules.clouds if key == "clouds" else None, rules.regions if key == "regions" else None,
                              rules.enabled, rules.named_clouds)
        if not any(narrowed.admits(option, o.location) for o in shaped):
            return _where(spec, f"tasks[{task.name}].allowed.{key}") or _where(spec, f"allowed.{key}")
    return None


def _exclusion_cause(spec: Spec, excluded: Exclusions, placed: Sequence[Offering]) -> str | None:
    """The first exclusion ruling out one of `placed`: its spec position, or the flag."""
    for token in excluded.tokens:
        cloud, _, name = token.rpartition(":")
        if any((not cloud or o.cloud == cloud) and name in (o.cloud, o.location.region, o.location.zone)
               for o in placed):
            if token in spec.exclude_zones:
                return _where(spec, f"exclude_zones[{token}]")
            return f"--exclude-zone {token}"
    return None


def _where_text(rules: _Placement, option: ResourceOption) -> str:
    parts = []
    if option.zone:
        parts.append(f"zone {option.zone}")
    elif option.region:
        parts.append(f"region {option.region}")
    if option.cloud:
        parts.append(f"cloud {option.cloud}")
    if rules.clouds is not None:
        parts.append(f"clouds {', '.join(rules.clouds)}")
    if rules.regions is not None:
        parts.append(f"regions {', '.join(rules.regions)}")
    return "in " + " and ".join(parts) if parts else "anywhere"
