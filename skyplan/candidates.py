"""Per task, the (offering, spot or not) pairs that satisfy it, priced, with dominated ones pruned.

This is the optimizer's whole view of the catalog: a candidate carries its hours, hourly
price, input-egress cost and quota usage, so the solver never looks at offerings again.

Spot policy (`resources.use_spot`):
  * `false`: on-demand only.
  * `true`:  spot only; the runtime estimate is used as is (the user accepted preemptions).
  * `auto`:  both. The spot candidate's hours are `hours × (1 + SPOT_OVERHEAD)`, the expected
             extra runtime from preemptions and restarts, so spot is chosen only where it still
             wins after that overhead (on cost, and never on time alone).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from skyplan.catalog import is_accelerated
from skyplan.errors import CatalogError, InfeasibleError, SpecError
from skyplan.models import (
    Candidate,
    Catalog,
    Location,
    Offering,
    Quota,
    ResourceOption,
    SourcePos,
    Spec,
    SpotPolicy,
    Task,
)

# Expected extra runtime when a task runs on spot: preemptions, re-provisioning and the work
# redone since the last checkpoint. An assumption, not a measurement: spot interruption
# rates are mostly < 5-10 % per instance-hour (AWS Spot Instance Advisor buckets), and a
# restart costs the lost progress plus boot time; 15 % is a middle value for jobs that
# checkpoint. Raise it for jobs that cannot resume.
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
    tokens: Iterable[str], catalog: Catalog, extra: Sequence[Offering] = ()
) -> Exclusions:
    """Resolve exclusion tokens against the catalog (and target offerings such as `local`).

    A token is a zone (`use1-az1`, `us-central1-a`, `local-1`), a region (`eastus`,
    `us-east-1`) or a cloud (`aws`), optionally prefixed with its cloud (`aws:use1-az1`, the
    form `str(Location)` prints). An unknown token raises CatalogError with close matches;
    an AWS zone *name* such as `us-east-1a` gets the AZ ids of its region, because zone names
    map to different physical zones in each AWS account.
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
            raise CatalogError(f"exclusion {token!r}: unknown cloud {cloud!r}{_did_you_mean(cloud, index.clouds)}")
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
            raise CatalogError(_unknown_location_message(token, name, index))
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


def _unknown_location_message(token: str, name: str, index: _LocationIndex) -> str:
    aws_name = _AWS_ZONE_NAME.fullmatch(name)
    if aws_name and ("aws", aws_name.group(1)) in index.regions.get(aws_name.group(1), ()):
        region = aws_name.group(1)
        ids = sorted(z for z, locs in index.zones.items() if any(
            loc.cloud == "aws" and loc.region == region for loc in locs))
        return (
            f"exclusion {token!r} is an AWS zone name; zone names point at a different physical "
            f"zone in each AWS account, so skyplan uses AZ ids. The AZ ids of {region} are "
            f"{', '.join(ids)} (`aws ec2 describe-availability-zones --region {region}` shows "
            f"which id is your {name})"
        )
    return f"exclusion {token!r}: no such zone, region or cloud in the catalog{_did_you_mean(name, index.names())}"


def _did_you_mean(word: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(names), n=4, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


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
    excluded = parse_exclusions(spec.exclude_zones, catalog, extra_offerings)
    if exclusions is not None:
        excluded = excluded | exclusions
    index = _OfferingIndex(offerings)
    result: dict[str, tuple[Candidate, ...]] = {}
    before: dict[str, int] = {}
    failures: list[str] = []
    for task in spec.tasks:
        found = _task_candidates(spec, task, catalog, index, excluded, enabled_by_default)
        if not found:
            failures.append(_explain_none(spec, task, index, excluded, enabled_by_default))
            continue
        before[task.name] = len(found)
        result[task.name] = prune_dominated(found)
    if failures:
        head = failures[0] if len(failures) == 1 else f"{len(failures)} tasks have no candidate"
        body = "" if len(failures) == 1 else ":\n  " + "\n  ".join(failures)
        raise InfeasibleError(head + body, reasons=tuple(failures))
    return CandidateSet(result, before)


class _OfferingIndex:
    """Offerings by accelerator shape, so a task only scans machines of its shape."""

    def __init__(self, offerings: Sequence[Offering]):
        self.all = offerings
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
) -> list[Candidate]:
    rules = _placement_rules(spec, task, enabled)
    best: dict[tuple[Offering, bool], Candidate] = {}
    for option in task.options:
        for offering in index.shaped(option):
            if not rules.admits(option, offering.location) or excluded.excludes(offering.location):
                continue
            for candidate in _priced(spec, task, option, offering, catalog):
                key = (offering, candidate.spot)
                held = best.get(key)
                # The same machine reached through two options keeps the preferred option.
                if held is None or (candidate.preference, candidate.hours) < (held.preference, held.hours):
                    best[key] = candidate
    return list(best.values())


def _priced(
    spec: Spec, task: Task, option: ResourceOption, offering: Offering, catalog: Catalog
) -> list[Candidate]:
    hours = task.hours_for(offering.accelerator)
    choices: list[tuple[bool, float, float]] = []  # (spot, hourly price, hours)
    if option.use_spot in (SpotPolicy.ON_DEMAND, SpotPolicy.AUTO) and offering.price is not None:
        choices.append((False, offering.price, hours))
    if option.use_spot is SpotPolicy.SPOT and offering.spot_price is not None:
        choices.append((True, offering.spot_price, hours))
    if option.use_spot is SpotPolicy.AUTO and offering.spot_price is not None:
        choices.append((True, offering.spot_price, hours * (1.0 + SPOT_OVERHEAD)))
    egress = _input_egress_cost(task, offering.location, catalog)
    return [
        Candidate(
            task=task.name,
            offering=offering,
            spot=spot,
            hours=task_hours,
            hourly_price=price,
            num_nodes=task.num_nodes,
            input_egress_cost=egress,
            preference=option.preference,
            quota_usage=_quota_usage(spec, offering, spot, task.num_nodes),
        )
        for spot, price, task_hours in choices
    ]


def _input_egress_cost(task: Task, location: Location, catalog: Catalog) -> float:
    total = 0.0
    for data in task.inputs:
        # Unknown source cloud, or a cloud without rates (e.g. an https URL): treated as free,
        # since ingress is free on every cloud (egress.md §2) and nobody we know bills the sender.
        if data.cloud is None or data.cloud not in catalog.rates or data.size_gb <= 0:
            continue
        if data.region is None:
            # A bucket of unknown region: leaving its cloud costs the internet rate wherever
            # the bucket is; within its cloud the tier is unknown, so it is counted as free.
            if data.cloud == location.cloud:
                continue
            total += data.size_gb * catalog.rates[data.cloud].internet
            continue
        total += data.size_gb * catalog.egress_per_gb(Location(data.cloud, data.region, None), location)
    return total


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
        raise SpecError(where, f"resource must be one of {', '.join(_QUOTA_RESOURCES)}, got {quota.resource!r}")
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
    ordered = sorted(candidates, key=candidate_order)
    groups: dict[tuple, list[Candidate]] = {}
    kept: list[Candidate] = []
    for candidate in ordered:
        group_key = (candidate.task, candidate.location, tuple(k for k, _ in candidate.quota_usage))
        front = groups.setdefault(group_key, [])
        # Sorted by cost first, so a dominator always comes earlier; and if an earlier
        # candidate was itself pruned, whatever pruned it dominates this one too.
        if any(_dominates(better, candidate) for better in front):
            continue
        front.append(candidate)
        kept.append(candidate)
    return tuple(kept)


def _dominates(a: Candidate, b: Candidate) -> bool:
    """Whether `a` (earlier in candidate_order) is at least as good as `b` in every respect."""
    if a.cost > b.cost or a.hours > b.hours or a.preference > b.preference:
        return False
    # Same quota keys within a group; compare the amounts held.
    return all(ua <= ub for (_, ua), (_, ub) in zip(a.quota_usage, b.quota_usage, strict=True))


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


def _quantity(q) -> str:
    text = f"{q.value:g}"
    return f"{text}+" if q.at_least else text


def _summarize(names: Iterable[str], limit: int = 8) -> str:
    ordered = sorted(set(names))
    shown = ", ".join(ordered[:limit])
    return shown + (f", ... ({len(ordered)} in all)" if len(ordered) > limit else "")


def _explain_none(
    spec: Spec, task: Task, index: _OfferingIndex, excluded: Exclusions, enabled: Mapping[str, bool]
) -> str:
    rules = _placement_rules(spec, task, enabled)
    reasons = [_explain_option(rules, option, index, excluded) for option in task.options]
    unique = list(dict.fromkeys(reasons))
    return f"task {task.name!r}: " + "; ".join(unique)


def _explain_option(
    rules: _Placement, option: ResourceOption, index: _OfferingIndex, excluded: Exclusions
) -> str:
    what = _describe_option(option)
    demand = option.accelerator
    if demand is not None and demand.name not in index.accelerator_names:
        names = sorted(index.accelerator_names)
        same_but_case = [n for n in names if n.lower() == demand.name.lower()]
        close = same_but_case or difflib.get_close_matches(demand.name, names, n=4, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {_summarize(names, 30)}"
        return f"no accelerator named {demand.name!r} in the catalog ({hint})"
    if demand is not None and (demand.name, demand.count) not in index.by_accelerator:
        counts = sorted({c for (n, c) in index.by_accelerator if n == demand.name})
        return f"{demand.name} comes in counts {', '.join(map(str, counts))}, not {demand.count}"
    shaped = index.shaped(option)
    if not shaped:
        return f"no machine in the catalog has {what}"
    placed = [o for o in shaped if rules.admits(option, o.location)]
    where = _where_text(rules, option)
    if not placed:
        regions = {f"{o.location.region}" for o in shaped}
        clouds = sorted({o.cloud for o in shaped})
        text = f"no offering of {what} {where} ({what} exists in: {_summarize(regions)}; clouds: {', '.join(clouds)})"
        off = [c for c in clouds if not rules.enabled_for(c)]
        if off:
            text += f"; {', '.join(off)} is only used when named in allowed.clouds"
        return text
    free = [o for o in placed if not excluded.excludes(o.location)]
    if not free:
        return (
            f"no offering of {what} {where} outside {excluded.describe()} "
            f"(it exists only in: {_summarize(str(o.location) for o in placed)})"
        )
    policy = option.use_spot
    if policy is SpotPolicy.SPOT:
        return f"no spot price for {what} {where} (use_spot: true; try auto)"
    return f"no on-demand price for {what} {where} (only spot is sold; set use_spot: true or auto)"


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
