"""The external plan formats: `plan.json` (machine-readable, versioned) and `PLAN.md` (review summary).

Like a Terraform plan file, plan.json records what the placement was decided from (hashes of the
spec, the catalog and the exclusions) next to the decision. Keys and lists are sorted and numbers
rounded so two plans diff minimally. Both files are byte-identical for identical inputs: they hold
no wall-clock figure (the solver's time goes to the terminal and `--json` output only), no date
but the catalog's, no absolute path. Internal models may change; this format changes only with
`FORMAT_VERSION`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from skyplan import __version__, fmt
from skyplan.errors import SkyplanError
from skyplan.models import CatalogInfo, Placement, Spec

FORMAT_VERSION = "1.1"  # 1.1: solver.wall_s left out (it made recompiles differ)
PLAN_FILE = "plan.json"
SUMMARY_FILE = "PLAN.md"


def _money(value: float) -> float:
    return round(float(value), 6)


def _hours(value: float) -> float:
    return round(float(value), 4)


def exclusions_sha256(exclusions: Sequence[str]) -> str:
    """Hash of the exclusion set, order-independent."""
    return hashlib.sha256("\n".join(sorted(set(exclusions))).encode()).hexdigest()


def plan_document(spec: Spec, placement: Placement, catalog: CatalogInfo,
                  assumptions: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the plan.json document (a plain dict) for `placement`.

    `assumptions` are the model's documented constants (spot overhead, bandwidths) recorded so a
    reviewer sees what the estimates rest on."""
    tasks = []
    for tp in placement.tasks:
        cand = tp.candidate
        off = cand.offering
        task = spec.task(tp.task)
        tasks.append(
            {
                "name": tp.task,
                "cloud": off.location.cloud,
                "region": off.location.region,
                "zone": off.location.zone,
                "instance_type": off.instance_type,
                "accelerator": off.accelerator,
                "accelerator_count": off.accelerator_count,
                "num_nodes": cand.num_nodes,
                "spot": cand.spot,
                "hours": _hours(cand.hours),
                "hours_given": task.hours_given,
                "hourly_price": _money(cand.hourly_price),
                "compute_cost": _money(cand.compute_cost),
                "egress_cost": _money(tp.egress_cost),
                "start_hours": _hours(tp.start_hours),
                "end_hours": _hours(tp.end_hours),
                "depends_on": sorted(task.depends_on),
            }
        )
    solver = placement.solver
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "skyplan_version": __version__,
        "name": placement.name,
        "objective": placement.objective.value,
        "total_cost": _money(placement.total_cost),
        "makespan_hours": _hours(placement.makespan_hours),
        "tasks": sorted(tasks, key=lambda t: t["name"]),
        "excluded_zones": sorted(set(placement.excluded_zones)),
        "constraints": {
            "deadline_hours": spec.deadline_hours,
            "budget": spec.budget,
            "allowed_clouds": sorted(spec.allowed.clouds) if spec.allowed.clouds else None,
            "allowed_regions": sorted(spec.allowed.regions) if spec.allowed.regions else None,
            "quotas": sorted(
                (
                    {
                        "name": q.name,
                        "resource": q.resource,
                        "limit": q.limit,
                        "per_region": q.per_region,
                        "match": dict(q.match),
                    }
                    for q in spec.quotas
                ),
                key=lambda q: q["name"],
            ),
            "tight": sorted(placement.tight_constraints),
        },
        "catalog": {"date": catalog.date, "fingerprint": catalog.fingerprint, "source": catalog.source},
        "assumptions": dict(assumptions or {}),
        "solver": {
            "status": solver.status,
            "objective": _money(solver.objective),
            "gap": round(solver.gap, 6),
            "variables": solver.variables,
            "constraints": solver.constraints,
            "candidates_before_pruning": solver.candidates_before,
            "candidates_after_pruning": solver.candidates_after,
            "workers": solver.workers,
            "seed": solver.seed,
        },
        "inputs": {
            "spec_sha256": spec.source_sha256,
            "catalog_sha256": catalog.fingerprint,
            "exclusions_sha256": exclusions_sha256(placement.excluded_zones),
        },
        "pareto": [
            {"total_cost": _money(p.total_cost), "makespan_hours": _hours(p.makespan_hours)}
            for p in sorted(placement.pareto, key=lambda p: (p.makespan_hours, p.total_cost))
        ],
        "runners_up": sorted(
            (
                {
                    "task": r.task,
                    "cloud": r.candidate.location.cloud,
                    "region": r.candidate.location.region,
                    "zone": r.candidate.location.zone,
                    "instance_type": r.candidate.offering.instance_type,
                    "spot": r.candidate.spot,
                    "total_cost": _money(r.total_cost),
                    "makespan_hours": _hours(r.makespan_hours),
                }
                for r in placement.runners_up
            ),
            key=lambda r: r["task"],
        ),
        "baseline_single_region": (
            {
                "location": placement.single_region_baseline[0],
                "total_cost": _money(placement.single_region_baseline[1]),
            }
            if placement.single_region_baseline
            else None
        ),
    }
    return doc


def dumps(doc: Mapping[str, Any]) -> str:
    """Serialize a plan document deterministically (sorted keys, 2-space indent, final newline)."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def read_plan(directory: str | Path) -> dict[str, Any]:
    """Read `DIR/plan.json`; a clear error when it is missing or from a newer format."""
    path = Path(directory) / PLAN_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise SkyplanError(f"{path}: no plan here (run `skyplan compile SPEC -o {directory}` first)") from None
    except json.JSONDecodeError as exc:
        raise SkyplanError(f"{path}: not valid JSON ({exc})") from None
    major = str(doc.get("format_version", "0")).split(".")[0]
    if major != FORMAT_VERSION.split(".")[0]:
        raise SkyplanError(
            f"{path}: format_version {doc.get('format_version')} is not supported by skyplan {__version__} "
            f"(expected {FORMAT_VERSION})"
        )
    return doc


# ---------------------------------------------------------------------------------------------
# PLAN.md
# ---------------------------------------------------------------------------------------------


def _where(task: Mapping[str, Any]) -> str:
    parts = [task["cloud"], task["region"]]
    if task.get("zone") and task["zone"] != task["region"]:
        parts.append(task["zone"])
    return " / ".join(parts)


def _accel(task: Mapping[str, Any]) -> str:
    if not task.get("accelerator"):
        return "—"
    return f"{task['accelerator']}×{task['accelerator_count']}"


def placement_rows(doc: Mapping[str, Any]) -> list[list[str]]:
    """The per-task table shared by PLAN.md and the terminal: one row of strings per task."""
    rows = []
    for t in _in_run_order(doc):
        rows.append(
            [
                t["name"],
                _where(t),
                t["instance_type"] + (f" ×{t['num_nodes']}" if t["num_nodes"] > 1 else ""),
                _accel(t),
                "spot" if t["spot"] else "on-demand",
                fmt.duration(t["hours"]) + ("" if t.get("hours_given", True) else "*"),
                fmt.money(t["compute_cost"]),
                fmt.money(t["egress_cost"]),
            ]
        )
    return rows


PLACEMENT_HEADERS = ["task", "cloud / region / zone", "instance", "accelerator", "spot", "time", "compute", "egress"]
# Columns a terminal table aligns right (figures).
NUMERIC_HEADERS = frozenset({"time", "compute", "egress"})


def _in_run_order(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return sorted(doc["tasks"], key=lambda t: (t["start_hours"], t["name"]))


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _ceiling_section(doc: Mapping[str, Any]) -> list[str]:
    """PLAN.md lines stating each cloud task's cloud-side ceiling (skyplan/ceiling.py)."""
    from skyplan.ceiling import GRACE_H, WATCHDOG_FACTOR, ceiling_seconds
    from skyplan.targets import paid_target_names

    paid = paid_target_names()
    cloud = [t for t in _in_run_order(doc) if t["cloud"] in paid]
    if not cloud:
        return []
    rows = [[t["name"], t["cloud"], fmt.duration(ceiling_seconds(t["hours"]) / 3600.0)] for t in cloud]
    return [
        "", "## Cloud-side ceiling", "",
        f"Each cloud VM ends itself {WATCHDOG_FACTOR:g}× its planned hours + {GRACE_H:g} h after boot, even if "
        "`skyplan apply` is gone (GCP `max_run_duration`, elsewhere a timer armed at boot); it is deleted, "
        "deallocated or terminated, not just stopped.",
        "", _md_table(["task", "cloud", "ceiling"], rows),
    ]


def _state_line(backend: Mapping[str, Any] | None) -> list[str]:
    if not backend:
        return []  # local state, in each stack's folder
    where = {"s3": "PREFIX/<stack>/terraform.tfstate", "gcs": "PREFIX/<stack>/default.tfstate",
             "azurerm": "PREFIX/<stack>/terraform.tfstate"}[backend["type"]].replace("PREFIX", backend["prefix"])
    return [f"- Terraform state: {backend['type']} backend `{backend['uri']}`, each stack at `{where}` "
            "(credentials from the environment)"]


def _egress_path_line(via: Mapping[str, Any]) -> str:
    if via["cloud"] == "local":
        where = "this machine's `file://` storage (no `storage:` given)"
    elif via["cloud"] is None:
        where = "the spec's storage (of no cloud skyplan prices)"
    elif via["region"]:
        where = f"the plan's storage ({via['cloud']} {via['region']})"
    else:
        where = (f"the plan's storage ({via['cloud']}, region not given: priced as in-region for {via['cloud']} "
                 "tasks; write `storage: {uri, region}` to price the real region)")
    return (f"Egress follows the data through {where}: each task's outputs are written there once and read "
            "back by every node of each downstream task; external inputs are read to every node.")


def summary_markdown(doc: Mapping[str, Any], *, spec_warnings: Sequence[str] = ()) -> str:
    """Render PLAN.md from a plan document: what a reviewer needs to approve the placement."""
    total = doc["total_cost"]
    compute = sum(t["compute_cost"] for t in doc["tasks"])
    egress = sum(t["egress_cost"] for t in doc["tasks"])
    title = " ".join(str(doc["name"]).split())  # a name with newlines must not break the heading
    out = [f"# Plan: {title}", ""]
    out.append(
        f"**Total {fmt.money(total)}** (compute {fmt.money(compute)}, egress {fmt.money(egress)}) · "
        f"estimated makespan **{fmt.duration(doc['makespan_hours'])}** · objective `{doc['objective']}` · "
        f"{len(doc['tasks'])} task(s) on {', '.join(sorted({t['cloud'] for t in doc['tasks']}))}"
    )
    via = (doc.get("assumptions") or {}).get("egress_storage")
    if via:
        out += ["", _egress_path_line(via)]
    base = doc.get("baseline_single_region")
    if base:
        saved = base["total_cost"] - total
        if saved > 0.005:
            out += [
                "",
                f"Saves **{fmt.money(saved)}** ({fmt.percent(saved / base['total_cost'])}) against the best single-region "
                f"plan ({base['location']}, {fmt.money(base['total_cost'])}).",
            ]
        else:
            out += ["", f"The best single-region plan ({base['location']}) costs the same: {fmt.money(base['total_cost'])}."]
    elif base is None:
        out += ["", "No single region can run every task, so there is no single-region plan to compare with."]
    if spec_warnings:
        out += ["", "## Before you apply", ""]
        out += [f"- {' '.join(str(w).split())}" for w in spec_warnings]
    out += ["", "## Placement", "", _md_table(PLACEMENT_HEADERS, placement_rows(doc))]
    overhead = doc.get("assumptions", {}).get("spot_overhead")
    if overhead and any(t["spot"] for t in doc["tasks"]):
        out += [
            "",
            f"Spot hours include a {fmt.percent(overhead)} allowance for preemptions and restarts "
            "(cost and makespan are computed with it).",
        ]
    if any(not t.get("hours_given", True) for t in doc["tasks"]):
        out += [
            "",
            "\\* no `hours` given in the spec: planned as 1 hour (SkyPilot's default estimate). "
            "Costs and makespan for these tasks are placeholders.",
        ]
    out += _ceiling_section(doc)
    out += ["", "## Constraints in force", ""]
    cons = doc["constraints"]
    items = [
        f"- deadline: {fmt.duration(cons['deadline_hours'])}" if cons.get("deadline_hours") is not None else "- deadline: none",
        f"- budget: {fmt.money(cons['budget'])}" if cons.get("budget") is not None else "- budget: none",
        f"- clouds: {', '.join(cons['allowed_clouds'])}" if cons.get("allowed_clouds") else "- clouds: any",
        f"- regions: {', '.join(cons['allowed_regions'])}" if cons.get("allowed_regions") else "- regions: any",
        f"- excluded zones: {', '.join(doc['excluded_zones'])}" if doc["excluded_zones"] else "- excluded zones: none",
    ]
    for q in cons.get("quotas", []):
        scope = " per region" if q["per_region"] else ""
        match = ", ".join(f"{k}={v}" for k, v in sorted(q["match"].items()))
        items.append(f"- quota `{q['name']}`: {q['resource']} ≤ {q['limit']:g}{scope}" + (f" ({match})" if match else ""))
    if cons.get("tight"):
        items.append(f"- binding at the optimum: {', '.join(cons['tight'])}")
    out += items
    if doc.get("pareto"):
        out += ["", "## Cost / makespan frontier", ""]
        out.append(
            _md_table(
                ["makespan", "total cost"],
                [[fmt.duration(p["makespan_hours"]), fmt.money(p["total_cost"])] for p in doc["pareto"]],
            )
        )
    if doc.get("runners_up"):
        out += ["", "## Why this placement", "", "The best alternative for each task, everything else re-optimized:", ""]
        rows = [
            [
                r["task"],
                " / ".join(x for x in (r["cloud"], r["region"], r["zone"]) if x),
                r["instance_type"] + (" (spot)" if r["spot"] else ""),
                f"{fmt.money(r['total_cost'])} ({fmt.money_delta(r['total_cost'] - total)})",
                fmt.duration(r["makespan_hours"]),
            ]
            for r in doc["runners_up"]
        ]
        out.append(_md_table(["task", "runner-up location", "instance", "plan total", "makespan"], rows))
    solver = doc["solver"]
    cat = doc["catalog"]
    out += [
        "",
        "## Provenance",
        "",
        f"- catalog: {cat['source']}, dated {cat['date']}, sha256 `{cat['fingerprint'][:16]}…`",
        f"- spec sha256 `{doc['inputs']['spec_sha256'][:16]}…`",
        *_state_line(doc.get("backend")),
        f"- solver: {solver['status']}, gap {fmt.percent(solver['gap'])}, "
        f"{solver['variables']} variables, {solver['constraints']} constraints, candidates "
        f"{solver['candidates_before_pruning']} → {solver['candidates_after_pruning']} after pruning and reduced-cost fixing",
    ]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# diff
# ---------------------------------------------------------------------------------------------

_COMPARED = ("cloud", "region", "zone", "instance_type", "accelerator", "accelerator_count", "num_nodes", "spot")


def diff_plans(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Placement and cost change between two plan documents; `skyplan.review.comment` turns it
    into the PR comment and the `skyplan diff --json` document."""
    old_tasks = {t["name"]: t for t in old["tasks"]}
    new_tasks = {t["name"]: t for t in new["tasks"]}
    changes = []
    for name in sorted(set(old_tasks) | set(new_tasks)):
        a, b = old_tasks.get(name), new_tasks.get(name)
        if a is None or b is None:
            changes.append({"task": name, "action": "add" if a is None else "remove", "old": a, "new": b})
            continue
        fields = {k: {"old": a.get(k), "new": b.get(k)} for k in _COMPARED if a.get(k) != b.get(k)}
        cost_a = a["compute_cost"] + a["egress_cost"]
        cost_b = b["compute_cost"] + b["egress_cost"]
        if fields or abs(cost_a - cost_b) > 1e-6 or a["hours"] != b["hours"]:
            changes.append(
                {
                    "task": name,
                    "action": "move" if fields else "update",
                    "fields": fields,
                    "cost_delta": _money(cost_b - cost_a),
                    "old": a,
                    "new": b,
                }
            )
    return {
        "format_version": FORMAT_VERSION,
        "old": {"name": old["name"], "total_cost": old["total_cost"], "makespan_hours": old["makespan_hours"]},
        "new": {"name": new["name"], "total_cost": new["total_cost"], "makespan_hours": new["makespan_hours"]},
        "total_cost_delta": _money(new["total_cost"] - old["total_cost"]),
        "makespan_delta_hours": _hours(new["makespan_hours"] - old["makespan_hours"]),
        "excluded_zones": {"old": old["excluded_zones"], "new": new["excluded_zones"]},
        "changes": changes,
    }
