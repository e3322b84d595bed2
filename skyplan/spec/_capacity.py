"""Capacity the optimizer must respect: quotas and the user's own machine pools (ssh target)."""

from __future__ import annotations

from dataclasses import replace

from skyplan.models import Pool, PoolHost, Quota
from skyplan.spec import _ranges, _values
from skyplan.spec._nodes import Node
from skyplan.spec._resources import cloud_name

_QUOTA_LIMITS = ("vcpus", "accelerators", "nodes")
_QUOTA_MATCH = ("cloud", "region", "zone", "family", "accelerator", "spot")
_QUOTA_KEYS = ("name", "per", *_QUOTA_MATCH, *_QUOTA_LIMITS)
_POOL_KEYS = ("name", "hourly_cost", "user", "key", "region", "hosts")
_HOST_KEYS = ("name", "address", "port", "user", "key", "cpus", "memory", "accelerators")


def parse_quotas(node: Node) -> tuple[Quota, ...]:
    """A list of quota mappings (see the package docstring for the syntax)."""
    quotas: list[Quota] = []
    names: set[str] = set()
    for item in node.items("a list of quotas"):
        quota, name_node, limit_node = _quota(item)
        if quota.name in names:
            if name_node is not None:
                name_node.fail(f"quota name `{quota.name}` is used twice")
            quota = replace(quota, name=_unique(quota.name, names))
        names.add(quota.name)
        quotas.append(quota)
        # Its limit is what an infeasible plan runs into: point there.
        node.source.origin[f"quotas[{quota.name}]"] = limit_node.pos()
    return tuple(quotas)


def _quota(node: Node) -> tuple[Quota, Node | None, Node]:
    fields = node.fields(_QUOTA_KEYS, what="a quota mapping like {cloud: aws, family: \"g*\", vcpus: 64}")
    limits = [key for key in _QUOTA_LIMITS if key in fields]
    if len(limits) != 1:
        node.fail("a quota needs exactly one of `vcpus`, `accelerators` or `nodes` (its limit)")
    resource = limits[0]
    limit = _ranges.QUOTA[resource].read(fields[resource], f"a limit on {resource}")
    per_region = False
    if "per" in fields:
        if fields["per"].text("`region`").strip() != "region":
            fields["per"].expected("`region` (the limit holds in each region separately)")
        per_region = True
    match: dict[str, str] = {}
    for key in _QUOTA_MATCH:
        if key not in fields or fields[key].is_null:
            continue
        value = fields[key]
        if key == "cloud":
            match[key] = cloud_name(value)
        elif key == "spot":
            match[key] = "true" if value.boolean("true or false (spot or on-demand capacity)") else "false"
        elif key == "accelerator":
            match[key] = _values.canonical_accelerator(value, value.string("an accelerator name"))
        else:
            match[key] = value.string(f"a {key} name or glob")
    name_node = fields.get("name")
    name = name_node.string("a quota name") if name_node else _generated_name(match, resource, per_region)
    quota = Quota(name=name, resource=resource, limit=limit, match=tuple(sorted(match.items())),
                  per_region=per_region)
    return quota, name_node, fields[resource]


def _generated_name(match: dict[str, str], resource: str, per_region: bool) -> str:
    parts = [match[key] for key in ("cloud", "region", "zone", "family", "accelerator") if key in match]
    if "spot" in match:
        parts.append("spot" if match["spot"] == "true" else "on-demand")
    parts.append(resource)
    if per_region:
        parts.append("per-region")
    return "-".join(parts) if len(parts) > 1 else f"all-{resource}"


def _unique(name: str, taken: set[str]) -> str:
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def parse_pools(node: Node) -> tuple[Pool, ...]:
    """A list of pool mappings (see the package docstring); host names are unique across all
    pools because each host is a zone."""
    pools = []
    pool_names: set[str] = set()
    host_names: set[str] = set()
    for item in node.items("a list of pools"):
        fields = item.fields(_POOL_KEYS, what="a pool mapping {name, hourly_cost, user, key, hosts}")
        if "name" not in fields:
            item.fail("a pool needs a `name`")
        name = fields["name"].string("a pool name")
        if name in pool_names:
            fields["name"].fail(f"pool name `{name}` is used twice")
        pool_names.add(name)
        cost = _ranges.POOL_HOURLY_COST.read(fields["hourly_cost"], "an hourly cost in USD") if "hourly_cost" in fields else 0.0
        region = fields["region"].string("a region name") if "region" in fields else "on-prem"
        user = fields["user"].string("a login user name") if "user" in fields else None
        key = fields["key"].string("a private key path") if "key" in fields else None
        if "hosts" not in fields:
            item.fail("a pool needs `hosts`")
        hosts = fields["hosts"].items("a list of hosts {name, address, cpus, memory, accelerators}")
        if not hosts:
            fields["hosts"].expected("at least one host")
        parsed = tuple(_host(host, user, key, host_names) for host in hosts)
        pools.append(Pool(name=name, hosts=parsed, hourly_cost=cost, region=region))
    return tuple(pools)


def _host(node: Node, user: str | None, key: str | None, taken: set[str]) -> PoolHost:
    fields = node.fields(_HOST_KEYS, what="a host mapping {name, address, port, cpus, memory, accelerators}")
    if "address" not in fields:
        node.fail("a host needs an `address`")
    address = fields["address"].string("a host name or IP address")
    name = fields["name"].string("a host name") if "name" in fields else address
    if name in taken:
        (fields.get("name") or fields["address"]).fail(f"host `{name}` appears twice (each host is a zone)")
    taken.add(name)
    host_user = fields["user"].string("a login user name") if "user" in fields else user
    if host_user is None:
        node.fail("a host needs a `user` (or give one for the whole pool)")
    port = int(_ranges.PORT.read(fields["port"], "a port number")) if "port" in fields else 22
    accelerator, count = None, 0
    if "accelerators" in fields and not fields["accelerators"].is_null:
        demand = _values.accelerator(fields["accelerators"], fields["accelerators"].string("an accelerator like A100:4"))
        accelerator, count = demand.name, demand.count
    return PoolHost(
        name=name,
        address=address,
        user=host_user,
        key_path=fields["key"].string("a private key path") if "key" in fields else key,
        port=port,
        cpus=_ranges.CPUS.read(fields["cpus"], "a number of CPUs") if "cpus" in fields else 1,
        memory_gib=_ranges.MEMORY_GIB.read(fields["memory"], "GiB of memory") if "memory" in fields else 1,
        accelerator=accelerator,
        accelerator_count=count,
    )
