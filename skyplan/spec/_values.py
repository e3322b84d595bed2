"""Small value syntaxes of the spec: durations, `16+` quantities, sizes, money, ports, `A100:8`."""

from __future__ import annotations

import difflib
import math
import re

from skyplan.errors import SpecError
from skyplan.models import AcceleratorDemand, Quantity, SourcePos
from skyplan.spec import _ranges
from skyplan.spec._nodes import Node, shown
from skyplan.spec._ranges import Range

_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(d|h|m|s)", re.IGNORECASE)
_HOURS_PER_UNIT = {"d": 24.0, "h": 1.0, "m": 1 / 60, "s": 1 / 3600}
_QUANTITY = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*(\+?)\s*", re.IGNORECASE)
# Memory and disk are GiB/GB in skyplan (as in SkyPilot); other units are converted.
_GIB_PER_UNIT = {"": 1.0, "g": 1.0, "gb": 1.0, "gi": 1.0, "gib": 1.0, "t": 1024.0, "tb": 1024.0,
                 "ti": 1024.0, "tib": 1024.0, "m": 1 / 1024, "mb": 1 / 1024, "mi": 1 / 1024, "mib": 1 / 1024}
_MONEY = re.compile(r"\s*\$?\s*(\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)\s*(usd)?\s*", re.IGNORECASE)
_PORT_RANGE = re.compile(r"\s*(\d{1,9})\s*(?:-\s*(\d{1,9})\s*)?")
_MAX_PORT_RANGE = 1024  # a wider range is almost certainly a typo (and would bloat security groups)
_LIST_ALL_KNOWN_BELOW = 40

# SkyPilot's spellings of accelerators the catalog names otherwise (lower-case → catalog name).
# SkyPilot's `A100` is the 40 GB part, as it is in the catalog; `H100-80GB` is GKE's name for H100.
ALIASES = {"a100-40gb": "A100", "h100-80gb": "H100"}

HOURS_EXAMPLE = "a number of hours like 36h or 12"


def parse_duration_hours(value: object, pos: SourcePos) -> float:
    """Hours in a duration: a number (hours) or a string like "36h", "90m", "2d", "1h30m", "45s".

    >>> parse_duration_hours("1h30m", SourcePos("x", 1, "k"))
    1.5

    Args:
        value: the value as read from YAML (int, float or str).
        pos: where it was written, for the error.
    Returns:
        The duration in hours, always > 0.
    Raises:
        SpecError: anything else, including zero and negative durations.
    """
    hours: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        hours = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            hours = float(text)
        except ValueError:
            hours = _parse_duration_text(text)
    if hours is None or not math.isfinite(hours) or hours <= 0:
        raise SpecError(pos, f"expected {HOURS_EXAMPLE}, got {shown(value) if isinstance(value, str) else repr(value)}")
    return hours


def _parse_duration_text(text: str) -> float | None:
    total, end = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != end:
            return None
        total += float(match.group(1)) * _HOURS_PER_UNIT[match.group(2).lower()]
        end = match.end()
    if end == 0 or text[end:].strip():
        return None
    return total


def duration_hours(node: Node, limits: Range = _ranges.HOURS) -> float:
    """A duration node (see `parse_duration_hours`) in hours, within `limits`."""
    if node.is_scalar and not node.is_bool():
        try:
            value: object = node.number()
        except SpecError:
            value = node.text()
        return limits.check(node, parse_duration_hours(value, node.pos()), HOURS_EXAMPLE)
    node.expected(HOURS_EXAMPLE)


def quantity(node: Node, what: str, limits: Range, *, sized: bool = False) -> Quantity:
    """`16` exactly 16, `16+` at least 16; with `sized`, units like `32GB`/`1TB+` are read as GiB.
    The amount (in GiB when sized) must lie within `limits`."""
    example = f"{what} like 16 (exactly) or 16+ (at least)"
    if node.is_scalar and not node.is_bool():
        match = _QUANTITY.fullmatch(node.yaml.value)
        if match:
            number, unit, plus = match.groups()
            factor = _GIB_PER_UNIT.get(unit.lower()) if (sized or not unit) else None
            if factor is not None and float(number) > 0:
                return Quantity(limits.check(node, float(number) * factor, what), at_least=bool(plus))
    node.expected(example)


def size_gb(node: Node, what: str = "a size in GB like 256 or 1TB", limits: Range = _ranges.DATA_GB) -> float:
    """A size in GB within `limits`: a number, or a string with a unit (`500GB`, `2TB`)."""
    if node.is_scalar and not node.is_bool():
        match = _QUANTITY.fullmatch(node.yaml.value)
        if match and not match.group(3):
            factor = _GIB_PER_UNIT.get(match.group(2).lower())
            if factor is not None:
                return limits.check(node, float(match.group(1)) * factor, what)
    node.expected(what)


def money(node: Node) -> float:
    """A positive amount of US dollars: `800`, `800.50`, `"$800"`, `"$1,000"`, `800 USD`."""
    if node.is_scalar and not node.is_bool():
        match = _MONEY.fullmatch(node.yaml.value)
        if match and float(match.group(1).replace(",", "")) > 0:
            return _ranges.BUDGET.check(node, float(match.group(1).replace(",", "")), "an amount of US dollars")
    node.expected("an amount of US dollars like 800 or $800")


def ports(node: Node) -> tuple[int, ...]:
    """`8080`, `"8000-8010"` or a list of those, as sorted distinct port numbers."""
    found: set[int] = set()
    for item in [node] if node.is_scalar else node.items("a port, a range like 8000-8010 or a list"):
        what = "a port (1-65535) or a range like 8000-8010"
        match = _PORT_RANGE.fullmatch(item.text(what)) if item.is_scalar and not item.is_bool() else None
        if not match:
            item.expected(what)
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if not 1 <= low <= high <= 65535:
            item.expected(what)
        if high - low >= _MAX_PORT_RANGE:
            item.fail(f"port range {low}-{high} opens more than {_MAX_PORT_RANGE} ports; narrow it")
        found.update(range(low, high + 1))
    return tuple(sorted(found))


def ingress_cidrs(node: Node) -> tuple[str, ...]:
    """`ingress_from`: an IPv4 CIDR or a list of them (`203.0.113.0/24`, a host as `/32`), the
    sources a task's `ports` are opened to; normalised and sorted."""
    import ipaddress

    what = "an IPv4 CIDR like 203.0.113.0/24 (a single host: 198.51.100.7/32)"
    found: set[ipaddress.IPv4Network] = set()
    for item in [node] if node.is_scalar else node.items("a CIDR or a list of CIDRs"):
        text = item.string(what).strip()
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            item.fail(f"`{text}` is not {what}: {exc}")
        if net.version != 4:
            item.fail(f"`{text}`: only IPv4 sources are opened so far (the stacks' rules are IPv4)")
        found.add(net)
    if not found:
        node.expected("at least one CIDR")
    return tuple(str(net) for net in sorted(found))


def accelerator(node: Node, text: str, count: float | None = None) -> AcceleratorDemand:
    """`A100:8`, `A100` (count 1) or a name with a separate `count`, canonicalised to the catalog.

    TPUs are written as SkyPilot does, `tpu-v5p-8`: the name carries the size and the count is 1."""
    name, colon, count_text = text.strip().partition(":")
    name = name.strip()
    if not name:
        node.expected("an accelerator like A100:8")
    if colon:
        if count is not None:
            node.fail(f"`{text}` gives a count twice; write `{name}: {count:g}` or `{text}`")
        try:
            count = float(count_text)
        except ValueError:
            node.fail(f"expected an accelerator count after `{name}:`, got {count_text!r}")
    count = 1.0 if count is None else count
    if 0 < count < 1:
        # SkyPilot's `T4:0.5` shares one GPU between jobs of one cluster; `sky launch` of the
        # task still provisions a whole one, and a skyplan task has its machine to itself.
        node.warn(f"{name}:{count:g} is a share of one {name} (SkyPilot's GPU sharing within a cluster); "
                  f"skyplan gives the task a whole {name}")
        count = 1.0
    if not _ranges.ACCELERATOR_COUNT.admits(count):
        node.fail(f"expected a whole number of {name} accelerators: {_ranges.ACCELERATOR_COUNT.text()}, "
                  f"got {count:g}")
    return AcceleratorDemand(canonical_accelerator(node, name), int(count))


def canonical_accelerator(node: Node, name: str) -> str:
    """The catalog's spelling of `name` (matched case-insensitively); unknown names fail with
    the close matches, and the whole known list when it is short."""
    known = node.source.accelerators
    if not known:
        return name
    canonical = known.get(name.lower()) or known.get(ALIASES.get(name.lower(), "").lower())
    if canonical is not None:
        return canonical
    close = difflib.get_close_matches(name.lower(), list(known), n=3, cutoff=0.5)
    message = f"unknown accelerator `{name}`"
    if close:
        message += f"; did you mean {' or '.join(known[c] for c in close)}?"
    if len(known) <= _LIST_ALL_KNOWN_BELOW:
        message += f" (known: {', '.join(sorted(known.values()))})"
    node.fail(message)
