"""Benchmark: replay the real spot traces of "Can't Be Late" (Wu et al., NSDI'24) against spot policies.

    python bench/spot.py                       # a table, the default task (48 h work, 52 h deadline)
    python bench/spot.py --json --task-hours 48 --deadline-hours 52 --restart-hours 0.2

Traces: ``bench/spot-traces/`` (copied from the paper's public repository; see its README and
PROVENANCE). **Values**: in those files a value is the number of spot instances available at a
tick, so in a 1-node file 1 means spot is available. The paper's own simulator (``sky_spot``)
reads its inputs the other way round: ``TraceEnv.spot_available()`` is ``not trace[tick]``, and
its conversion script turns availability into "1 = preempted" before simulating. Here a tick
has spot when its value is at least ``--nodes`` (1).

Model (the paper simulator's, ``sky_spot/env.py`` and ``strategies/strategy.py``): time moves in
the trace's ticks (``gap_seconds``). At each tick the policy sees which zones have spot and
chooses spot, on-demand or idle for the tick; a spot VM whose zone loses spot is preempted at
that tick. Every launch, the first included, pays the restart overhead (no progress until it is
spent); every tick with a VM running is billed in full at p3.2xlarge prices (on-demand
$3.06/h, spot $0.9731/h, ``sky_spot/utils.py``), the tick the work ends included. Runs start
every 6 h of each trace, as many as fit the deadline window.

Policies: ``on_demand``; ``greedy`` (the paper's: spot when there is, idle otherwise, on-demand
to the end once the deadline forces it); ``uniform_progress`` (the paper's ``rc_cr_threshold``
strategy, rule for rule); ``skyplan`` (``skyplan.spotpolicy.decide`` on the trace's own zone);
``skyplan_multi_region`` (the same ``decide`` over every zone of the trace's folder holding the
same instance type, starting in the trace's zone, paying the restart overhead plus the checkpoint
transfer, time and egress dollars, on each move). The simulator calls the same policy code as
``apply``; there is no copy of it here.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from skyplan.spotpolicy import (  # noqa: E402
    AvailabilityEstimate,
    PolicyConfig,
    TaskState,
    Tenancy,
    Zone,
    decide,
)

TRACES = REPO / "bench" / "spot-traces"
ON_DEMAND_PRICE = 3.06  # p3.2xlarge, $/h (sky_spot/utils.py)
SPOT_PRICE = 0.9731  # p3.2xlarge spot, $/h (sky_spot/utils.py)
START_EVERY_HOURS = 6.0
POLICIES = ("on_demand", "greedy", "uniform_progress", "skyplan", "skyplan_multi_region")
# AWS/GCP egress, $/GB (skyplan/data/egress.yaml): another zone of the region, another region.
CROSS_ZONE_PER_GB = 0.01
INTER_REGION_PER_GB = 0.02


@dataclass(frozen=True)
class Trace:
    """One trace file: its path (as given to the output), zone, instance type and ticks."""

    path: str
    zone: str
    itype: str
    gap_seconds: int
    values: tuple[int, ...]


def load_trace(path: Path) -> Trace:
    """Read one trace file, plain or gzip'd JSON. The zone and type come from ``ZONE_TYPE.json``."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as f:
        doc = json.load(f)
    stem = path.name.removesuffix(".gz").removesuffix(".json")
    zone, _, itype = stem.partition("_")
    try:
        rel = str(path.resolve().relative_to(REPO))
    except ValueError:
        rel = str(path)
    return Trace(rel, zone, itype, int(doc["metadata"]["gap_seconds"]), tuple(int(v) for v in doc["data"]))


def find_traces(root: Path) -> list[Path]:
    """Every trace file under ``root``, sorted."""
    return sorted(p for p in root.rglob("*") if p.name.endswith((".json", ".json.gz")))


def region_of(zone: str) -> str:
    """``us-east-1a`` -> ``us-east-1``, ``us-central1-a`` -> ``us-central1``."""
    return zone[:-2] if zone[-2] == "-" else zone[:-1]


@dataclass(frozen=True)
class Setup:
    """One benchmark configuration (hours)."""

    task_hours: float
    deadline_hours: float
    restart_hours: float
    checkpoint_gb: float = 50.0
    transfer_gbps: float = 1.0
    nodes: int = 1


@dataclass
class Sim:
    """The state of one run, per the paper simulator's accounting."""

    kind: str = "idle"  # what runs in the current tick: idle | spot | on_demand
    zone: str | None = None  # where the VM is (or where the checkpoint was left)
    pending: float = 0.0  # restart overhead left, hours
    done: float = 0.0  # work done, hours
    cost: float = 0.0


# A policy sees (sim, tick index, hours elapsed, availability per zone) and returns (kind, zone).
Policy = Callable[[Sim, int, float, dict[str, bool]], tuple[str, str | None]]


def _on_demand(setup: Setup, home: str) -> Policy:
    return lambda sim, k, t, avail: ("on_demand", home)


def _greedy(setup: Setup, home: str, gap: float) -> Policy:
    """The paper's Greedy (sky_spot ``strawman``): spot if any, else idle; on-demand when forced."""
    d = setup.restart_hours

    def policy(sim: Sim, k: int, t: float, avail: dict[str, bool]) -> tuple[str, str | None]:
        left = setup.task_hours - sim.done
        kind = "spot" if avail[home] else "idle"
        remaining_time = setup.deadline_hours - t
        need = math.ceil((left + d) / gap - 1e-9) * gap
        if need >= remaining_time - 1e-9:
            kind = "spot" if sim.kind == "spot" else "on_demand"
            if d == 0 and avail[home]:
                kind = "spot"
        return kind, home

    return policy


def _uniform_progress(setup: Setup, home: str, gap: float) -> Policy:
    """Uniform Progress as ``sky_spot/strategies/rc_cr_threshold.py`` does it, rule for rule."""
    c0, r0, d = setup.task_hours, setup.deadline_hours, setup.restart_hours

    def policy(sim: Sim, k: int, t: float, avail: dict[str, bool]) -> tuple[str, str | None]:
        has_spot = avail[home]
        c_t = c0 - sim.done
        if c_t <= 1e-3 / 3600:
            return "idle", home
        remaining_time = math.floor((r0 - t) / gap + 1e-9) * gap
        kind = "spot" if has_spot else "idle"
        cur = sim.kind  # after the preemption of this tick (env.cluster_type)
        # _condition() < 0: behind the uniform progress line t*C0/R0.
        if (c0 - c_t) - t * c0 / r0 < 0:
            kind = "spot" if has_spot else "on_demand"
        # Hysteresis: on on-demand, stay unless spot is there and (t+2d)*C0/R0 - cp < 0.
        if cur == "on_demand" and (not has_spot or (t + 2 * d) * c0 / r0 - (c0 - c_t) >= 0):
            kind = "on_demand"
        total = math.ceil((c_t + d) / gap - 1e-9) * gap
        total_2d = math.ceil((c_t + 2 * d) / gap - 1e-9) * gap
        if total_2d >= remaining_time - 1e-9 and cur in ("idle", "on_demand"):
            kind = "on_demand"  # safety net: R(t) < C(t) + 2d
        if total >= remaining_time - 1e-9:
            kind = "spot" if cur == "spot" and sim.pending < 1e-3 / 3600 else "on_demand"
            if d == 0 and has_spot:
                kind = "spot"
        return kind, home

    return policy


def _move_cost(setup: Setup, src: str | None, dst: str, done: float = 1.0) -> tuple[float, float]:
    """(dollars, hours) to bring the checkpoint from ``src`` to ``dst`` (none before any work)."""
    if src is None or src == dst or done <= 0:
        return 0.0, 0.0
    per_gb = CROSS_ZONE_PER_GB if region_of(src) == region_of(dst) else INTER_REGION_PER_GB
    hours = setup.checkpoint_gb * 8 / setup.transfer_gbps / 3600
    return setup.checkpoint_gb * per_gb, hours


def _skyplan(setup: Setup, zones: list[str], gap: float, config: PolicyConfig) -> Policy:
    """``skyplan.spotpolicy.decide`` over ``zones`` with an online availability estimate."""
    estimate = AvailabilityEstimate()

    def policy(sim: Sim, k: int, t: float, avail: dict[str, bool]) -> tuple[str, str | None]:
        estimate.observe({z: avail[z] for z in zones}, gap)
        current = Tenancy(sim.kind, sim.zone if sim.kind != "idle" else None)  # type: ignore[arg-type]
        state = TaskState(
            work_total_hours=setup.task_hours,
            work_done_hours=sim.done,
            hours_to_deadline=setup.deadline_hours - t,
            restart_hours=setup.restart_hours,
            step_hours=gap,
            current=current,
            pending_overhead_hours=sim.pending if sim.kind != "idle" else 0.0,
            elapsed_hours=t,
        )
        options = []
        for z in zones:
            dollars, hours = _move_cost(setup, sim.zone, z, sim.done)
            options.append(Zone(z, avail[z], SPOT_PRICE, ON_DEMAND_PRICE, dollars, hours))
        decision = decide(state, options, estimate, config)
        return decision.kind, decision.zone

    return policy


def run_once(setup: Setup, policy: Policy, avail: dict[str, list[bool]], home: str, gap: float) -> tuple[float, bool]:
    """One run over a window of ticks: returns (cost in $, deadline met)."""
    sim = Sim(zone=home)
    n = math.floor(setup.deadline_hours / gap + 1e-9)
    price = {"spot": SPOT_PRICE, "on_demand": ON_DEMAND_PRICE}
    for k in range(n):
        t = k * gap
        now = {z: a[k] for z, a in avail.items()}
        if sim.kind == "spot" and not now[sim.zone]:  # type: ignore[index]
            sim.kind, sim.pending = "idle", 0.0  # preempted at this tick
        kind, zone = policy(sim, k, t, now)
        zone = zone or sim.zone
        if kind == "spot" and not now[zone]:
            raise AssertionError(f"policy asked for spot in {zone} without spot at tick {k}")
        if kind != "idle" and (kind, zone) != (sim.kind, sim.zone):
            dollars, hours = _move_cost(setup, sim.zone, zone, sim.done)  # type: ignore[arg-type]
            sim.cost += dollars
            sim.pending = setup.restart_hours + hours
        sim.kind = kind
        if kind == "idle":
            sim.pending = 0.0
            continue
        sim.zone = zone
        sim.cost += price[kind] * gap
        productive = max(gap - sim.pending, 0.0)
        sim.pending = max(sim.pending - gap, 0.0)
        sim.done = min(sim.done + productive, setup.task_hours)
        if sim.done >= setup.task_hours - 1e-9:
            return sim.cost, (k + 1) * gap <= setup.deadline_hours + 1e-9
    return sim.cost, False


def _groups(traces: list[Trace]) -> dict[tuple[str, str], list[Trace]]:
    groups: dict[tuple[str, str], list[Trace]] = {}
    for tr in traces:
        groups.setdefault((str(Path(tr.path).parent), tr.itype), []).append(tr)
    return groups


def evaluate(
    setup: Setup, paths: list[Path], policies: tuple[str, ...] = POLICIES, config: PolicyConfig | None = None
) -> list[dict]:
    """Every policy on every trace: ``{trace, policy, mean_cost, deadline_met, runs}`` rows."""
    config = config or PolicyConfig()
    traces = [load_trace(p) for p in paths]
    groups = _groups(traces)
    rows = []
    for tr in traces:
        gap = tr.gap_seconds / 3600
        siblings = [s for s in groups[(str(Path(tr.path).parent), tr.itype)] if s.gap_seconds == tr.gap_seconds]
        window = math.floor(setup.deadline_hours / gap + 1e-9)
        every = START_EVERY_HOURS / gap
        starts = []
        i = 0
        while math.floor(i * every) + window <= len(tr.values):
            starts.append(math.floor(i * every))
            i += 1
        for name in policies:
            costs, met = [], 0
            for s in starts:
                zones = [tr] if name != "skyplan_multi_region" else siblings
                # A sibling that ends before the window does has no spot past its end.
                avail = {
                    z.zone: [s + k < len(z.values) and z.values[s + k] >= setup.nodes for k in range(window)]
                    for z in zones
                }
                if name == "on_demand":
                    pol = _on_demand(setup, tr.zone)
                elif name == "greedy":
                    pol = _greedy(setup, tr.zone, gap)
                elif name == "uniform_progress":
                    pol = _uniform_progress(setup, tr.zone, gap)
                else:
                    pol = _skyplan(setup, sorted(avail), gap, config)
                cost, ok = run_once(setup, pol, avail, tr.zone, gap)
                costs.append(cost)
                met += ok
            rows.append(
                {
                    "trace": tr.path,
                    "policy": name,
                    "mean_cost": round(sum(costs) / len(costs), 4) if costs else None,
                    "deadline_met": met == len(starts),
                    "runs": len(starts),
                    "_met": met,
                }
            )
    return rows


def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per policy: mean over traces of mean_cost, traces with every deadline met, and runs."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["policy"] for r in rows):
        mine = [r for r in rows if r["policy"] == name and r["runs"]]
        out[name] = {
            "mean_cost": sum(r["mean_cost"] for r in mine) / len(mine),
            "traces": len(mine),
            "all_met": sum(r["deadline_met"] for r in mine),
            "runs": sum(r["runs"] for r in mine),
            "runs_met": sum(r["_met"] for r in mine),
        }
    return out


GRID_DEADLINES = (52.0, 70.0, 92.0)
GRID_OVERHEADS = (0.02, 0.2, 0.4)


def _grid_cell(args: tuple[Setup, list[Path]]) -> tuple[Setup, dict[str, dict[str, float]]]:
    setup, paths = args
    return setup, summarize(evaluate(setup, paths))


def grid_table(base: Setup, paths: list[Path], jobs: int = 1) -> str:
    """The markdown table of bench/RESULTS.md: every deadline x overhead of the literature."""
    cells = [
        (Setup(base.task_hours, dl, d, base.checkpoint_gb, base.transfer_gbps, base.nodes), paths)
        for dl in GRID_DEADLINES
        for d in GRID_OVERHEADS
    ]
    if jobs > 1:
        from multiprocessing import Pool

        with Pool(jobs) as pool:
            results = pool.map(_grid_cell, cells)
    else:
        results = [_grid_cell(c) for c in cells]
    head = (
        "| deadline h | restart h | on_demand | greedy (runs late) | uniform_progress | skyplan | "
        "skyplan_multi_region | skyplan vs UP | multi vs UP | runs late (UP / skyplan / multi) |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for setup, s in results:
        up = s["uniform_progress"]["mean_cost"]

        def late(name: str, s: dict[str, dict[str, float]] = s) -> int:
            return int(s[name]["runs"] - s[name]["runs_met"])

        lines.append(
            f"| {setup.deadline_hours:g} | {setup.restart_hours:g} | ${s['on_demand']['mean_cost']:.2f} | "
            f"${s['greedy']['mean_cost']:.2f} ({late('greedy')}) | ${up:.2f} | ${s['skyplan']['mean_cost']:.2f} | "
            f"${s['skyplan_multi_region']['mean_cost']:.2f} | {100 * (s['skyplan']['mean_cost'] / up - 1):+.1f} % | "
            f"{100 * (s['skyplan_multi_region']['mean_cost'] / up - 1):+.1f} % | "
            f"{late('uniform_progress')} / {late('skyplan')} / {late('skyplan_multi_region')} |"
        )
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    ap.add_argument("--task-hours", type=float, default=48.0)
    ap.add_argument("--deadline-hours", type=float, default=52.0)
    ap.add_argument("--restart-hours", type=float, default=0.2)
    ap.add_argument("--checkpoint-gb", type=float, default=50.0, help="checkpoint moved on a zone change")
    ap.add_argument("--transfer-gbps", type=float, default=1.0, help="bandwidth of that move")
    ap.add_argument("--nodes", type=int, default=1, help="a tick has spot when its value is >= this")
    ap.add_argument("--grid", action="store_true", help="the RESULTS.md table: deadlines 52/70/92 h x restart 0.02/0.2/0.4 h")
    ap.add_argument("--jobs", type=int, default=1, help="processes for --grid")
    ap.add_argument("--policies", default=",".join(POLICIES), help="comma-separated subset")
    ap.add_argument("traces", nargs="*", type=Path, help=f"trace files or folders (default: {TRACES.relative_to(REPO)})")
    args = ap.parse_args(argv)
    policies = tuple(p for p in args.policies.split(",") if p)
    bad = [p for p in policies if p not in POLICIES]
    if bad:
        ap.error(f"unknown policy {bad[0]!r}; choose from {', '.join(POLICIES)}")
    if args.deadline_hours < args.task_hours + args.restart_hours:
        ap.error("--deadline-hours must leave room for --task-hours plus one --restart-hours")
    paths: list[Path] = []
    for p in args.traces or [TRACES]:
        if p.is_dir():
            paths += find_traces(p)
        elif p.is_file():
            paths.append(p)
        else:
            ap.error(f"{p}: no such trace file or folder")
    setup = Setup(args.task_hours, args.deadline_hours, args.restart_hours, args.checkpoint_gb, args.transfer_gbps, args.nodes)
    if args.grid:
        print(grid_table(setup, paths, args.jobs), end="")
        return 0
    rows = evaluate(setup, paths, policies)
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows], indent=1))
        return 0
    print(f"task {setup.task_hours} h, deadline {setup.deadline_hours} h, restart {setup.restart_hours} h")
    for r in rows:
        print(f"{r['trace']:70s} {r['policy']:22s} ${r['mean_cost']:8.2f} met={r['deadline_met']} runs={r['runs']}")
    for name, s in summarize(rows).items():
        print(f"MEAN {name:22s} ${s['mean_cost']:8.2f}  traces all met {s['all_met']}/{s['traces']}  runs {s['runs']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
