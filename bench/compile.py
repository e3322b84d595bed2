"""Benchmark: end-to-end `skyplan compile` (parse, catalog, candidates, solve, render, write).

Each case runs in a fresh Python process, so the numbers include interpreter start-up, imports and
the catalog load, as a user's `skyplan compile` would; peak memory is that process's max RSS.

    python bench/compile.py            # the examples and a generated 200-task DAG
    python bench/compile.py --tasks 500
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CPU_SHAPES = ["{cpus: 4+, memory: 16+}", "{cpus: 8+, memory: 32+}", "{cpus: 16+, memory: 64+}", "{cpus: 2+}"]
GPU_SHAPES = [
    ("{accelerators: {A100: 8, H100: 8}, use_spot: auto}", "{A100: 10, H100: 6}"),
    ("{accelerators: [T4:1, L4:1], use_spot: auto}", "{T4: 3, L4: 2}"),
    ("{accelerators: {V100: 4, A100: 4}}", "{V100: 8, A100: 5}"),
]


def generated_spec(tasks: int, seed: int = 7) -> str:
    """A layered random DAG (fan-in 1–3) of CPU and GPU tasks, edges carrying 1–500 GB."""
    rng = random.Random(seed)
    lines = [f"name: generated-{tasks}", "objective: cost", "tasks:"]
    layers: list[list[str]] = []
    made = 0
    while made < tasks:
        width = min(rng.randint(1, 6), tasks - made)
        layer = [f"t{made + i:04d}" for i in range(width)]
        for name in layer:
            lines.append(f"  - name: {name}")
            if layers:
                deps = rng.sample(layers[-1], k=min(len(layers[-1]), rng.randint(1, 3)))
                lines.append(f"    depends_on: [{', '.join(deps)}]")
            if rng.random() < 0.25:
                shape, hours = rng.choice(GPU_SHAPES)
                lines += [f"    resources: {shape}", f"    hours: {hours}"]
            else:
                lines += [f"    resources: {rng.choice(CPU_SHAPES)}", f"    hours: {rng.choice([0.5, 1, 2, 4])}"]
            lines += [f"    outputs_gb: {rng.randint(1, 500)}", "    run: echo ok"]
        layers.append(layer)
        made += width
    return "\n".join(lines) + "\n"


def _one(spec: str, out: str) -> None:
    started = time.perf_counter()
    from skyplan.pipeline import compile_plan

    result = compile_plan(spec, out)
    wall = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "wall_s": round(wall, 3),
        "peak_mib": round(peak_mib, 1),
        "stages": {k: round(v, 3) for k, v in result.timings.items()},
        "status": result.placement.solver.status,
        "tasks": len(result.placement.tasks),
        "total_cost": round(result.placement.total_cost, 2),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--one", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(*args.one)
        return
    with tempfile.TemporaryDirectory() as tmp:
        generated = Path(tmp) / f"generated-{args.tasks}.yaml"
        generated.write_text(generated_spec(args.tasks))
        cases = [REPO / "examples" / n for n in ("quickstart.yaml", "ml-pipeline.yaml", "eu-residency.yaml")]
        cases.append(generated)
        print(f"{'case':<24} {'tasks':>5} {'process s':>9} {'peak MiB':>8}  stages (s)")
        for spec in cases:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--one", str(spec), str(Path(tmp) / spec.stem)],
                                  capture_output=True, text=True, cwd=REPO)
            process_s = time.perf_counter() - t0
            if proc.returncode != 0:
                print(f"{spec.name:<24} FAILED: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            stages = " ".join(f"{k}={v}" for k, v in r["stages"].items())
            print(f"{spec.stem:<24} {r['tasks']:>5} {process_s:>9.2f} {r['peak_mib']:>8.0f}  {stages} [{r['status']}]")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
