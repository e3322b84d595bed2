"""The range every number of the spec must lie in (README "Spec format" lists the same table).

Why these limits: beyond them a value is a typo, not a plan, and within them the optimizer's
integer arithmetic cannot overflow. CP-SAT works in int64 with costs in micro-dollars and times
in seconds (optimizer/problem.py). At the maxima one task costs at most
`MAX_HOURS × (1 + spot overhead) × MAX_NODES × price`, i.e. ≈ 3.4e17 µ$ on the priciest catalog
machine (≈ $29,400/h), and moves at most `MAX_GB × $0.12/GB` ≈ 1.2e11 µ$ per edge: 6× below
the 2^61 the optimizer allows itself (a quarter of int64) for one task. A whole spec can still add up to more (many such tasks, and the
preference tie-break multiplies the cost objective), so the optimizer checks the real sums
before building its model (`optimizer.problem.check_scale`) and refuses with the task's
file:line:key rather than overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

from skyplan.spec._nodes import Node, shown


@dataclass(frozen=True)
class Range:
    """`low < value ≤ high` (`low_open`) or `low ≤ value ≤ high`, optionally whole numbers."""

    low: float
    high: float
    unit: str = ""
    low_open: bool = False
    whole: bool = False

    def text(self) -> str:
        """`> 0 and ≤ 10,000 h`, `1 to 1,000`."""
        unit = f" {self.unit}" if self.unit else ""
        if self.low_open:
            return f"> {_num(self.low)} and ≤ {_num(self.high)}{unit}"
        return f"{_num(self.low)} to {_num(self.high)}{unit}"

    def admits(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high and (not self.whole or value == int(value))

    def check(self, node: Node, value: float, what: str) -> float:
        """`value` if in range, else a SpecError at `node`: "expected <what> <range>, got …"."""
        if not self.admits(value):
            kind = "a whole number " if self.whole else ""
            node.fail(f"expected {what}: {kind}{self.text()}, got {shown(node.yaml.value)}"
                      if node.is_scalar else f"expected {what}: {kind}{self.text()}, got {value:g}")
        return value

    def read(self, node: Node, what: str) -> float:
        """A number node (see `Node.number`) within the range."""
        return self.check(node, node.number(what), what)


def _num(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


MAX_HOURS = 10_000.0  # a task's runtime: over a year of wall time
MAX_GB = 1_000_000.0  # 1 PB per input or per task's outputs

HOURS = Range(0, MAX_HOURS, "h", low_open=True)
DEADLINE = Range(0, 100_000, "h", low_open=True)
BUDGET = Range(0, 1_000_000_000, "USD", low_open=True)
DATA_GB = Range(0, MAX_GB, "GB")
CPUS = Range(0, 10_000, low_open=True)
MEMORY_GIB = Range(0, 100_000, "GiB", low_open=True)
DISK_GB = Range(1, 100_000, "GB", whole=True)
NUM_NODES = Range(1, 1_000, whole=True)
ACCELERATOR_COUNT = Range(1, 1_000, whole=True)
QUOTA = {
    "vcpus": Range(0, 10_000_000),
    "accelerators": Range(0, 1_000_000),
    "nodes": Range(0, 1_000_000),
}
POOL_HOURLY_COST = Range(0, 10_000, "USD/h")
PORT = Range(1, 65_535, whole=True)

# (spec key, range) in the order README's table lists them.
TABLE: tuple[tuple[str, Range], ...] = (
    ("hours (a number, a duration, or each value of a per-accelerator map)", HOURS),
    ("deadline", DEADLINE),
    ("budget", BUDGET),
    ("outputs_gb, each value of outputs", DATA_GB),
    ("inputs[].size_gb, each value of an inputs map", DATA_GB),
    ("resources.cpus", CPUS),
    ("resources.memory", MEMORY_GIB),
    ("resources.disk / disk_size", DISK_GB),
    ("num_nodes", NUM_NODES),
    ("accelerator counts (resources.accelerators, a pool host's accelerators)", ACCELERATOR_COUNT),
    ("quotas[].vcpus", QUOTA["vcpus"]),
    ("quotas[].accelerators", QUOTA["accelerators"]),
    ("quotas[].nodes", QUOTA["nodes"]),
    ("pools[].hourly_cost", POOL_HOURLY_COST),
    ("pools[].hosts[].cpus", CPUS),
    ("pools[].hosts[].memory", MEMORY_GIB),
    ("resources.ports, pools[].hosts[].port", PORT),
)
