"""Optimizer benchmark on the shipped catalog: seeded DAGs of 5–5000 tasks (not a test).

    python bench/optimizer.py            # every case, each in its own subprocess (peak memory)
    python bench/optimizer.py --quick    # the small cases only (< 1 min)
    python bench/optimizer.py --case chain-100-cost   # one case, JSON on stdout

DAG shapes: chain; diamond (a source, k parallel branches, a sink, repeated); random layered
(fan-in/out 1–3). Tasks mix CPU shapes (`cpus: N+, memory: M+`) and GPU tasks accepting several
accelerators with per-accelerator hours; edges carry 1–500 GB. Every case uses a fixed seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyplan.candidates import build_candidates, parse_exclusions, quota_limits  # noqa: E402
from skyplan.catalog import load_catalog  # noqa: E402
from skyplan.models import (  # noqa: E402
    AcceleratorDemand,
    Objective,
    Quantity,
    Quota,
    ResourceOption,
    Spec,
    SpotPolicy,
    Task,
)
from skyplan.optimizer import solve  # noqa: E402

BENCH_STORAGE, BENCH_STORAGE_REGION = "s3://skyplan-bench/runs", "us-east-1"
CPU_SHAPES = ((4, 16), (8, 32), (16, 64), (32, 128))
# (accelerator options, hours per accelerator)
GPU_SHAPES = (
    ((("A100", 8), ("H100", 8)), {"A100": 10.0, "H100": 6.0}),
    ((("T4", 1), ("L4", 1)), {"T4": 3.0, "L4": 2.0}),
    ((("V100", 1), ("A10G", 1)), {"V100": 4.0, "A10G": 3.0}),
)


def _task(rng: random.Random, name: str, deps: tuple[str, ...], gpu_share: float) -> Task:
    spot = rng.choice([SpotPolicy.ON_DEMAND, SpotPolicy.AUTO])
    if rng.random() < gpu_share:
        accels, hours = rng.choice(GPU_SHAPES)
        options = tuple(ResourceOption(accelerator=AcceleratorDemand(a, c), use_spot=spot) for a, c in accels)
        return Task(
            name=name,
            options=options,
            hours=max(hours.values()),
            hours_by_accelerator=tuple(sorted(hours.items())),
            hours_given=True,
            outputs_gb=float(rng.randint(1, 500)),
            depends_on=deps,
        )
    cpus, mem = rng.choice(CPU_SHAPES)
    option = ResourceOption(cpus=Quantity(cpus, True), memory_gib=Quantity(mem, True), use_spot=spot)
    return Task(
        name=name,
        options=(option,),
        hours=float(rng.choice([0.5, 1, 2, 4])),
        hours_given=True,
        outputs_gb=float(rng.randint(1, 500)),
        depends_on=deps,
    )


def make_spec(shape: str, n: int, seed: int, *, gpu_share: float = 0.3, **extra) -> Spec:
    """A seeded DAG of n tasks in topological order."""
    rng = random.Random(seed)
    names = [f"t{i:05d}" for i in range(n)]
    deps: list[tuple[str, ...]] = []
    if shape == "chain":
        deps = [()] + [(names[i - 1],) for i in range(1, n)]
    elif shape == "diamond":
        # source, k branches, sink; the sink is the next diamond's source.
        k, i = 3, 0
        deps = [()]
        while len(deps) < n:
            src = i
            branch = list(range(len(deps), min(len(deps) + k, n)))
            deps.extend((names[src],) for _ in branch)
            if len(deps) < n:
                deps.append(tuple(names[b] for b in branch))
                i = len(deps) - 1
    elif shape == "layered":
        width = max(1, int(n**0.5))
        layers = [list(range(s, min(s + width, n))) for s in range(0, n, width)]
        deps = [()] * len(layers[0])
        for prev, layer in zip(layers, layers[1:], strict=False):
            for _ in layer:
                deps.append(
                    tuple(names[j] for j in sorted(rng.sample(prev, min(len(prev), rng.randint(1, 3)))))
                )
    else:
        raise ValueError(shape)
    tasks = tuple(_task(rng, names[i], deps[i], gpu_share) for i in range(n))
    # Storage in one bucket of known region, as a real plan has: every edge's data goes through it.
    return Spec(name=f"{shape}-{n}", tasks=tasks, storage=BENCH_STORAGE, storage_region=BENCH_STORAGE_REGION,
                **extra)


QUOTAS = (
    Quota(name="aws-gpus", resource="accelerators", limit=16, match=(("cloud", "aws"),)),
    Quota(name="gcp-gpus", resource="accelerators", limit=16, match=(("cloud", "gcp"),), per_region=True),
    Quota(name="azure-gpus", resource="accelerators", limit=8, match=(("cloud", "azure"),)),
)

# name: (shape, tasks, objective, extra options)
CASES: dict[str, tuple[str, int, Objective, dict]] = {
    "diamond-5-cost": ("diamond", 5, Objective.COST, {}),
    "chain-10-cost": ("chain", 10, Objective.COST, {}),
    "layered-10-time": ("layered", 10, Objective.TIME, {}),
    "chain-100-cost": ("chain", 100, Objective.COST, {}),
    "diamond-100-cost": ("diamond", 100, Objective.COST, {}),
    "layered-100-cost": ("layered", 100, Objective.COST, {}),
    "layered-100-time": ("layered", 100, Objective.TIME, {}),
    "diamond-100-quota-time": ("diamond", 100, Objective.TIME, {"quotas": True}),
    "diamond-100-quota-cost": ("diamond", 100, Objective.COST, {"quotas": True}),
    "layered-100-pareto": ("layered", 100, Objective.COST, {"pareto": True}),
    "chain-1000-cost": ("chain", 1000, Objective.COST, {}),
    "diamond-1000-cost": ("diamond", 1000, Objective.COST, {}),
    "layered-1000-cost": ("layered", 1000, Objective.COST, {}),
    "layered-1000-time": ("layered", 1000, Objective.TIME, {}),
    "layered-1000-replan": ("layered", 1000, Objective.COST, {"replan": True}),
    "layered-5000-cost": ("layered", 5000, Objective.COST, {}),
    "diamond-5000-cost": ("diamond", 5000, Objective.COST, {}),
}
QUICK = ("diamond-5-cost", "chain-10-cost", "layered-10-time", "chain-100-cost", "diamond-100-quota-time")


def run_case(name: str) -> dict:
    shape, n, objective, opts = CASES[name]
    catalog = load_catalog()
    spec = make_spec(shape, n, seed=n, objective=objective)
    if opts.get("quotas"):
        spec = dataclasses.replace(spec, quotas=QUOTAS)
    t0 = time.perf_counter()
    candidates = build_candidates(spec, catalog)
    limits = quota_limits(spec, catalog)
    candidates_s = time.perf_counter() - t0
    candidates_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    limit_s = 60.0 if n >= 5000 else 10.0
    plan = solve(
        spec, candidates, catalog, limits=limits, pareto=bool(opts.get("pareto")), time_limit_s=limit_s
    )
    row = {
        "case": name,
        "tasks": n,
        "edges": len(spec.edges),
        "catalog_matches": candidates.total_before,
        "candidates": plan.solver.candidates_before,
        "after_prune": plan.solver.candidates_after,
        "variables": plan.solver.variables,
        "constraints": plan.solver.constraints,
        "candidates_s": round(candidates_s, 2),
        "prune_s": plan.extras.get("prune_s"),
        "bound_s": plan.extras.get("bound_s"),
        "dual_iterations": plan.extras.get("dual_iterations"),
        "dual_bound": plan.extras.get("dual_bound"),
        "build_s": plan.extras.get("build_s"),
        "wall_s": round(plan.solver.wall_s, 2),
        "status": plan.solver.status,
        "objective": round(plan.solver.objective, 4),
        "gap": plan.solver.gap,
        "total_cost": round(plan.total_cost, 2),
        "makespan_h": round(plan.makespan_hours, 2),
        "pareto_points": len(plan.pareto),
        "baseline": plan.single_region_baseline,
    }
    if opts.get("replan"):
        used = Counter(str(tp.candidate.location) for tp in plan.tasks if tp.candidate.location.zone)
        zone = used.most_common(1)[0][0]
        exclusions = parse_exclusions([zone], catalog)
        after = build_candidates(spec, catalog, exclusions=exclusions)
        cold = solve(spec, after, catalog, excluded_zones=[zone], time_limit_s=limit_s)
        warm = solve(spec, after, catalog, excluded_zones=[zone], hint=plan, time_limit_s=limit_s)
        moved = sum(1 for a, b in zip(plan.tasks, warm.tasks, strict=True) if a.candidate != b.candidate)
        row["replan_kept_in_place"] = warm.extras.get("kept_in_place")
        row["replan_warm_cost"] = round(warm.total_cost, 2)
        row["replan_cold_cost"] = round(cold.total_cost, 2)
        row.update(
            {
                "replan_zone": zone,
                "replan_tasks_moved": moved,
                "replan_cold_s": round(cold.solver.wall_s, 2),
                "replan_cold_status": cold.solver.status,
                "replan_warm_s": round(warm.solver.wall_s, 2),
                "replan_warm_status": warm.solver.status,
                "replan_same_cost": abs(cold.total_cost - warm.total_cost) <= 1e-6 * cold.total_cost,
                "replan_speedup": round(cold.solver.wall_s / max(warm.solver.wall_s, 1e-9), 1),
            }
        )
    row["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    row["rss_after_candidates_mib"] = round(candidates_mib, 1)
    return row


COLUMNS = (
    ("case", "case"),
    ("tasks", "tasks"),
    ("edges", "edges"),
    ("candidates", "cands"),
    ("after_prune", "pruned"),
    ("variables", "vars"),
    ("constraints", "cons"),
    ("wall_s", "solve s"),
    ("status", "status"),
    ("objective", "objective"),
    ("gap", "gap"),
    ("peak_rss_mib", "peak MiB"),
)


def _fmt(key: str, value) -> str:
    if key == "gap":
        return f"{value:.2e}" if value else "0"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the small cases")
    parser.add_argument("--case", help="run one case in this process and print JSON")
    parser.add_argument("--json", help="also write all rows to this file")
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), help="run only these cases")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return
    names = tuple(args.only) if args.only else QUICK if args.quick else tuple(CASES)
    rows = []
    print("| " + " | ".join(h for _, h in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for name in names:
        proc = subprocess.run(
            [sys.executable, __file__, "--case", name], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            print(
                f"| {name} | failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode} |"
            )
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print("| " + " | ".join(_fmt(k, row[k]) for k, _ in COLUMNS) + " |", flush=True)
    print(
        "\n| case | build_candidates s | prune s | dual bound s (iterations) | model build s | solve() s "
        "| dual bound $ | total cost $ | makespan h | best single-region plan |"
    )
    print("|" + "---|" * 10)
    for row in rows:
        dual = "—" if row.get("dual_iterations") is None else f"{row['bound_s']} ({row['dual_iterations']})"
        bound = "—" if row.get("dual_bound") is None else f"{row['dual_bound']:,.2f}"
        base = row.get("baseline")
        base_text = f"{base[0]} ${base[1]:,.2f}" if base else "—"
        print(
            f"| {row['case']} | {row['candidates_s']} | {row['prune_s']} | {dual} | {row['build_s']} | "
            f"{row['wall_s']} | {bound} | {row['total_cost']:,.2f} | {row['makespan_h']} | {base_text} |"
        )
    for row in rows:
        if "replan_speedup" in row:
            print(
                f"\nre-plan {row['case']}: excluded {row['replan_zone']}, {row['replan_tasks_moved']} tasks moved; "
                f"cold {row['replan_cold_s']} s ({row['replan_cold_status']}), warm {row['replan_warm_s']} s "
                f"({row['replan_warm_status']}, {row['replan_kept_in_place']} tasks kept in place), "
                f"speed-up {row['replan_speedup']}x; cost cold ${row['replan_cold_cost']} vs warm ${row['replan_warm_cost']}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
