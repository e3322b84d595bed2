"""A task's `resources` (SkyPilot spellings) as the resource options it accepts."""

from __future__ import annotations

import difflib
from dataclasses import replace

from skyplan.models import AcceleratorDemand, Quantity, ResourceOption, SpotPolicy
from skyplan.spec import _ranges, _skypilot, _values
from skyplan.spec._nodes import Node
from skyplan.targets import target_names

ALL_TARGETS = target_names()  # the registry's (skyplan/targets/__init__.py)

# Used when a shape says nothing about size; SkyPilot would pick its default instance type.
DEFAULT_CPUS = Quantity(2, at_least=True)

_SHAPE_KEYS = (
    "cpus", "memory", "disk", "disk_size", "disk_tier", "accelerators", "use_spot", "cloud", "region", "zone",
    "infra", "instance_type", "image_id", "ports",
)
_ALTERNATIVES = ("any_of", "ordered")
_ACCEPTED = ("autostop", "labels", "job_recovery", "spot_recovery", "network_tier")  # see _skypilot
REFUSED = {
    "volumes": "attached volumes are not provisioned",
    "local_disk": "local-disk requirements are not in the catalog",
    "max_hourly_cost": "use the spec's `budget` instead",
    "accelerator_args": "TPU runtime arguments are not rendered",
    "priority": "job priorities are not modelled",
    "priority_class": "job priorities are not modelled",
    "ephemeral_storage": "write `disk` instead",
    "docker_login_config": "registry credentials must not be written into the plan",
    "_docker_login_config": "registry credentials must not be written into the plan",
    "hooks": "lifecycle hooks are not run",
    "_no_missing_accel_warnings": "SkyPilot-internal field",
    "_is_image_managed": "SkyPilot-internal field",
    "_requires_fuse": "SkyPilot-internal field",
    "_cluster_config_overrides": "SkyPilot-internal field",
}
_USE_SPOT = "true, false or auto"


def parse_resources(node: Node | None, written: dict[str, Node] | None = None) -> tuple[ResourceOption, ...]:
    """Every resource shape a task accepts, in preference order.

    Each `any_of` / `ordered` alternative (keys given there override the keys beside it) times
    each accelerator choice is one option. `any_of` alternatives and accelerator sets
    (`{A100: 8, V100: 8}`) are equally good (preference 0); `ordered` alternatives and accelerator
    lists (`[A100:8, V100:8]`, SkyPilot's "try in this order") rank 0, 1, 2, … A shape naming no
    cpus, memory, accelerator or instance type gets `cpus: 2+`; no `resources` at all is one such
    shape.

    `written`, when given, gets the node each accelerator choice is written at, as
    `accelerators[<NAME>:<count>]` (the first place, if one is written twice).
    """
    if node is None or node.is_null:
        return (ResourceOption(cpus=DEFAULT_CPUS),)
    fields = _shape_fields(node, allow_alternatives=True)
    any_of, ordered = fields.pop("any_of", None), fields.pop("ordered", None)
    if any_of is not None and ordered is not None:
        ordered.fail("give either `any_of` or `ordered`, not both")
    alternatives: list[tuple[int, dict[str, Node]]] = [(0, fields)]
    if any_of is not None or ordered is not None:
        group = any_of if any_of is not None else ordered
        items = group.items("a list of resource mappings")
        if not items:
            group.expected("a non-empty list of resource mappings")
        alternatives = [
            (0 if ordered is None else rank, {**fields, **_shape_fields(item, allow_alternatives=False)})
            for rank, item in enumerate(items)
        ]
        alternatives = _placeable(group, alternatives)
    ranked: list[tuple[tuple[int, int], ResourceOption]] = []
    for alternative_rank, shape in alternatives:
        for accelerator_rank, option, where in _options(shape):
            ranked.append(((alternative_rank, accelerator_rank), option))
            if written is not None and option.accelerator is not None and where is not None:
                written.setdefault(f"accelerators[{option.accelerator.name}:{option.accelerator.count}]", where)
    return _by_preference(ranked)


def _placeable(group: Node, alternatives: list[tuple[int, dict[str, Node]]]) -> list[tuple[int, dict[str, Node]]]:
    """The alternatives on clouds skyplan targets; the others are dropped with a warning naming
    them. None left: refused, naming the clouds and what skyplan targets."""
    kept, dropped = [], []
    for rank, shape in alternatives:
        where = shape.get("infra") or shape.get("cloud")
        name = _written_cloud(where) if where is not None and not where.is_null else None
        if name is not None and name not in ALL_TARGETS and name in _skypilot.SKYPILOT_CLOUDS:
            dropped.append(name)
        else:
            kept.append((rank, shape))
    if dropped and not kept:
        group.fail(_not_targeted(dropped))
    if dropped:
        group.warn(f"alternatives on {', '.join(dict.fromkeys(dropped))} dropped: skyplan does not target "
                   f"{'them' if len(set(dropped)) > 1 else 'it'} (it targets {', '.join(ALL_TARGETS)})")
    return kept


def _written_cloud(node: Node) -> str | None:
    text = node.text() if node.is_scalar else ""
    return text.split("/")[0].strip().lower() or None


def _not_targeted(names: list[str]) -> str:
    unique = list(dict.fromkeys(names))
    shown = ", ".join(f"`{n}`" for n in unique)
    them = "them" if len(unique) > 1 else "it"
    return f"unsupported cloud {shown}: skyplan does not target {them}; skyplan targets are {', '.join(ALL_TARGETS)}"


def _shape_fields(node: Node, *, allow_alternatives: bool) -> dict[str, Node]:
    known = _SHAPE_KEYS + (_ALTERNATIVES if allow_alternatives else ())
    hints = {} if allow_alternatives else {k: "alternatives cannot be nested" for k in _ALTERNATIVES}
    fields = node.fields(known + _ACCEPTED, refused=REFUSED, hints=hints, what="a mapping of resources")
    for key in _ACCEPTED:
        if key in fields:
            _skypilot.accept(key, fields.pop(key))
    if "disk" in fields and "disk_size" in fields:
        fields["disk_size"].fail("give either `disk` or `disk_size`, not both")
    if "disk_size" in fields:
        fields["disk"] = fields.pop("disk_size")
    return fields


def _options(shape: dict[str, Node]) -> list[tuple[int, ResourceOption, Node | None]]:
    # SkyPilot writes `null` for "unset"; treat it like an absent key.
    shape = {key: node for key, node in shape.items() if not node.is_null}
    cloud, region, zone = _placement(shape)
    base = ResourceOption(
        cpus=_values.quantity(shape["cpus"], "a number of vCPUs", _ranges.CPUS) if "cpus" in shape else None,
        memory_gib=_values.quantity(shape["memory"], "GiB of memory", _ranges.MEMORY_GIB,
                                                  sized=True) if "memory" in shape else None,
        disk_gb=_disk(shape["disk"]) if "disk" in shape else ResourceOption.disk_gb,
        disk_tier=_disk_tier(shape["disk_tier"]) if "disk_tier" in shape else None,
        use_spot=_use_spot(shape["use_spot"]) if "use_spot" in shape else SpotPolicy.ON_DEMAND,
        cloud=cloud,
        region=region,
        zone=zone,
        instance_type=_optional_string(shape, "instance_type", "an instance type name"),
        image_id=_image_id(shape["image_id"]) if "image_id" in shape else None,
        ports=_values.ports(shape["ports"]) if "ports" in shape else (),
    )
    choices = _accelerators(shape["accelerators"]) if "accelerators" in shape else [(0, None, None)]
    options = []
    for rank, demand, where in choices:
        option = replace(base, accelerator=demand)
        if not (option.cpus or option.memory_gib or option.accelerator or option.instance_type):
            option = replace(option, cpus=DEFAULT_CPUS)
        options.append((rank, option, where))
    return options


def _by_preference(ranked: list[tuple[tuple[int, int], ResourceOption]]) -> tuple[ResourceOption, ...]:
    ranks = sorted({rank for rank, _ in ranked})
    result: list[ResourceOption] = []
    seen: set[ResourceOption] = set()
    for rank, option in sorted(ranked, key=lambda pair: pair[0]):
        option = replace(option, preference=ranks.index(rank))
        # The same shape reachable twice keeps its best preference only.
        shape = replace(option, preference=0)
        if shape not in seen:
            seen.add(shape)
            result.append(option)
    return tuple(result)


def _placement(shape: dict[str, Node]) -> tuple[str | None, str | None, str | None]:
    cloud = _cloud(shape["cloud"]) if "cloud" in shape else None
    region = _optional_string(shape, "region", "a region name")
    zone = _optional_string(shape, "zone", "a zone name")
    infra = shape.get("infra")
    if infra is not None:
        for key in ("cloud", "region", "zone"):
            if key in shape:
                infra.fail(f"give either `infra` or `{key}`, not both")
        parts = [None if part in ("", "*") else part for part in infra.string("cloud[/region[/zone]]").split("/")]
        if len(parts) > 3:
            infra.expected("cloud[/region[/zone]] like aws/us-east-1")
        parts += [None] * (3 - len(parts))
        cloud = _cloud(infra, parts[0]) if parts[0] else None
        region, zone = parts[1], parts[2]
    return cloud, region, zone


def _cloud(node: Node, text: str | None = None) -> str:
    name = (text if text is not None else node.string("a cloud name")).strip().lower()
    if name not in ALL_TARGETS and name in _skypilot.SKYPILOT_CLOUDS:
        node.fail(_not_targeted([name]))
    if name not in ALL_TARGETS:
        close = difflib.get_close_matches(name, ALL_TARGETS, n=1, cutoff=0.5)
        hint = f"did you mean `{close[0]}`? " if close else ""
        node.fail(f"unsupported cloud `{name}`; {hint}skyplan targets are {', '.join(ALL_TARGETS)}")
    return name


def cloud_name(node: Node) -> str:
    """A target name (aws, gcp, azure, local, ssh), case-insensitively."""
    return _cloud(node)


def _optional_string(shape: dict[str, Node], key: str, what: str) -> str | None:
    node = shape.get(key)
    return None if node is None else node.string(what).strip()


def _disk(node: Node) -> int:
    return int(_values.size_gb(node, "a disk size in GB like 256", _ranges.DISK_GB))


def _disk_tier(node: Node) -> str:
    from skyplan.targets.disks import TIERS

    tier = node.string(f"a disk tier ({', '.join(TIERS)})").strip().lower()
    if tier not in TIERS:
        node.expected(f"a disk tier ({', '.join(TIERS)})")
    return tier


def _use_spot(node: Node) -> SpotPolicy:
    if node.is_bool():
        return SpotPolicy.SPOT if node.boolean(_USE_SPOT) else SpotPolicy.ON_DEMAND
    if node.is_scalar and node.text().strip().lower() in ("true", "false", "auto"):
        return SpotPolicy(node.text().strip().lower())
    node.expected(_USE_SPOT)


def _image_id(node: Node) -> str | None:
    if node.is_mapping:
        node.fail("per-region image maps are not supported yet; give one image id")
    return node.optional_text("an image id")


def _accelerators(node: Node) -> list[tuple[int, AcceleratorDemand | None, Node | None]]:
    """(preference rank, demand, where it is written) per accelerator choice."""
    if node.is_scalar:
        text = node.string("an accelerator like A100:8")
        # SkyPilot also reads a set written as a string: "{A100:8, V100:8}".
        if text.strip().startswith("{") and text.strip().endswith("}"):
            names = [part for part in text.strip()[1:-1].split(",") if part.strip()]
            return [(0, _values.accelerator(node, part), node) for part in names]
        return [(0, _values.accelerator(node, text), node)]
    if node.is_sequence:
        items = node.items()
        if not items:
            node.expected("at least one accelerator")
        return [(rank, _values.accelerator(item, item.string("an accelerator like A100:8")), item)
                for rank, item in enumerate(items)]
    choices: list[tuple[int, AcceleratorDemand | None, Node | None]] = []
    for key, value in node.entries("an accelerator like A100:8, a set {A100: 8, V100: 8} or a list"):
        count = None if value.is_null else value.number("a number of accelerators")
        choices.append((0, _values.accelerator(key, key.yaml.value, count), key))
    if not choices:
        node.expected("at least one accelerator")
    return choices
