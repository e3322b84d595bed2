"""`skyplan diff OLD NEW`: the pull-request comment, and its JSON, for a change of plan.

What a reviewer of infrastructure expects from Atlantis and Infracost, plus what only skyplan
knows — where each task moved and what that does to the cost:

* a headline with the per-run cost change and its percentage;
* a summary table `plan | before | after | change` (cost per run, compute, egress, makespan);
* per-task moves (cloud, region, zone, instance, spot) in `<details>`, largest cost change first;
* per stack, the Terraform resources added, removed and changed, read from the rendered `.tf`
  files (`tfscan`), and, when `terraform plan` was run, its actions (`tfplan`);
* a hidden marker line, `<!-- skyplan-diff:NAME -->`, so CI finds its own comment and edits it
  in place (one comment per plan and PR, like Infracost's `--behavior update`).

A comment never exceeds GitHub's 65,535-character limit (`MAX_COMMENT_CHARS`, counted in UTF-16
code units as GitHub does): long lists are folded, each ending "…and N more", the headline,
summary and totals always kept. OLD absent (a PR that adds a plan) reads as an empty plan, so
everything is added; NEW must hold a plan. The JSON document is `diff_document`'s
(keys documented in README "PR comments"); it holds no wall-clock figure either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from skyplan import __version__, fmt
from skyplan.errors import SkyplanError
from skyplan.planfile import FORMAT_VERSION, PLAN_FILE, diff_plans, read_plan
from skyplan.review.tfplan import ACTIONS, read_plan_changes
from skyplan.review.tfscan import Block, scan_stack
from skyplan.targets import target_names

ALL_TARGETS = target_names()  # the registry's (skyplan/targets/__init__.py)

DIFF_FORMAT = "1"
MAX_COMMENT_CHARS = 65_535
_MARKER_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_SIGN = {"added": "+", "removed": fmt.MINUS, "changed": "~"}
_PLAN_SIGN = {"create": "+", "update": "~", "replace": "±", "delete": fmt.MINUS}


def _load(directory: str | Path) -> dict[str, Any] | None:
    """The plan in `directory`; None when there is none to compare with (no such directory, or
    an empty one: the base branch of a PR that adds the plan)."""
    path = Path(directory)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return None
    if path.is_dir() and not (path / PLAN_FILE).exists() and not (path / "MANIFEST.sha256").exists():
        raise SkyplanError(f"{path}: not a plan directory (no {PLAN_FILE}); give the directory compile wrote")
    return read_plan(path)


def marker(name: str) -> str:
    """The hidden line that identifies the comment for plan `name`.

    >>> marker("ml pipeline")
    '<!-- skyplan-diff:ml-pipeline -->'
    """
    # "--" may not appear inside an HTML comment: runs of hyphens become one.
    safe = re.sub("-{2,}", "-", _MARKER_NAME.sub("-", name)).strip("-")
    return f"<!-- skyplan-diff:{safe or 'plan'} -->"


def _side(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    compute = sum(t["compute_cost"] for t in doc["tasks"])
    egress = sum(t["egress_cost"] for t in doc["tasks"])
    return {"name": doc["name"], "total_cost": doc["total_cost"], "compute_cost": round(compute, 6),
            "egress_cost": round(egress, 6), "makespan_hours": doc["makespan_hours"], "tasks": len(doc["tasks"])}


def _empty(name: str) -> dict[str, Any]:
    return {"name": name, "tasks": [], "total_cost": 0.0, "makespan_hours": 0.0, "excluded_zones": []}


def _stacks(directory: Path) -> dict[str, list[Block]]:
    if not directory.is_dir():
        return {}
    return {t: scan_stack(directory / t, root=directory) for t in ALL_TARGETS
            if (directory / t).is_dir() and any((directory / t).glob("*.tf"))}


def _entry(block: Block) -> dict[str, Any]:
    return {"address": block.address, "task": block.task, "members": list(block.members)}


def _managed(blocks: Sequence[Block]) -> int:
    """Managed resources a stack declares: resource blocks, and each module's own resources."""
    return sum(len(b.members) or 1 if b.kind == "module" else 1 for b in blocks if b.kind != "data")


def terraform_changes(old_dir: Path | None, new_dir: Path) -> dict[str, dict[str, Any]]:
    """Per stack: the resource and module blocks added, removed and changed between two plan
    directories' rendered `.tf` files (data sources create nothing and are left out)."""
    old = _stacks(old_dir) if old_dir else {}
    new = _stacks(new_dir)
    out = {}
    for stack in sorted(set(old) | set(new)):
        a = {b.address: b for b in old.get(stack, []) if b.kind != "data"}
        b = {x.address: x for x in new.get(stack, []) if x.kind != "data"}
        out[stack] = {
            "added": [_entry(b[k]) for k in sorted(set(b) - set(a))],
            "removed": [_entry(a[k]) for k in sorted(set(a) - set(b))],
            "changed": [_entry(b[k]) for k in sorted(set(a) & set(b)) if a[k].digest != b[k].digest],
            "old_resources": _managed(list(a.values())),
            "new_resources": _managed(list(b.values())),
        }
    return out


def diff_document(old_dir: str | Path, new_dir: str | Path, *, tf_plans: Mapping[str, str | Path] | None = None,
                  name: str | None = None) -> dict[str, Any]:
    """The diff of two plan directories as one JSON-ready document (README "PR comments").

    `tf_plans` maps a stack (`aws`, …) to a Terraform plan JSON file; `name` overrides the marker
    name (default: the plan's name)."""
    old_doc = _load(old_dir)
    # NEW is what the PR compiled: a mistyped path must fail, not read as "every task removed".
    new_doc = read_plan(new_dir)
    plan_name = new_doc["name"]
    base = diff_plans(old_doc or _empty(plan_name), new_doc)
    for change in base["changes"]:
        if change["action"] in ("add", "remove"):
            task = change["new"] or change["old"]
            cost = task["compute_cost"] + task["egress_cost"]
            change["cost_delta"] = round(cost if change["action"] == "add" else -cost, 6)
            change["fields"] = {}
    old_side, new_side = _side(old_doc), _side(new_doc)
    old_total = old_side["total_cost"] if old_side else 0.0
    if old_doc is None:
        status = "added"
    else:
        status = "changed" if base["changes"] or base["total_cost_delta"] else "unchanged"
    terraform = terraform_changes(Path(old_dir) if old_doc else None, Path(new_dir))
    if status == "unchanged" and any(s["added"] or s["removed"] or s["changed"] for s in terraform.values()):
        status = "changed"  # same placement, other Terraform (a skyplan upgrade, a template change)
    plans = {}
    for stack, path in sorted((tf_plans or {}).items()):
        if stack not in ALL_TARGETS:
            raise SkyplanError(f"--tf-plan {stack}={path}: no stack {stack!r} (stacks: {', '.join(ALL_TARGETS)})")
        plans[stack] = read_plan_changes(path)
    return {
        "diff_format": DIFF_FORMAT,
        "format_version": FORMAT_VERSION,
        "skyplan_version": __version__,
        "name": plan_name,
        "marker": marker(name or plan_name),
        "status": status,
        "old": old_side,
        "new": new_side,
        "total_cost_delta": base["total_cost_delta"],
        "total_cost_delta_percent": (round(base["total_cost_delta"] / old_total * 100, 4) if old_total else None),
        "compute_cost_delta": round((new_side or {}).get("compute_cost", 0.0) - (old_side or {}).get("compute_cost", 0.0), 6),
        "egress_cost_delta": round((new_side or {}).get("egress_cost", 0.0) - (old_side or {}).get("egress_cost", 0.0), 6),
        "makespan_delta_hours": base["makespan_delta_hours"],
        "excluded_zones": base["excluded_zones"],
        # Where Terraform state lives (`compile --backend`): a move of it deserves a reviewer's eye.
        "backend": {"old": ((old_doc or {}).get("backend") or {}).get("uri"),
                    "new": (new_doc.get("backend") or {}).get("uri")},
        "changes": base["changes"],
        "terraform": terraform,
        "terraform_plan": plans,
    }


# ---------------------------------------------------------------------------------------------
# markdown
# ---------------------------------------------------------------------------------------------


def _chars(text: str) -> int:
    """Length as GitHub counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def _cell(text: Any) -> str:
    """A table cell: pipes escaped, one line, nothing GitHub could read as an HTML tag."""
    return _TAG_START.sub("&lt;", str(text).replace("|", "\\|").replace("\n", " "))


def _signed_percent(delta: float, base: float | None) -> str:
    if not base:
        return "new" if delta else "no change"
    if abs(delta) < 5e-7:
        return "0%"
    return ("+" if delta > 0 else fmt.MINUS) + fmt.percent(abs(delta) / base)


def _headline(d: Mapping[str, Any]) -> str:
    name = " ".join(str(d["name"]).split())
    old, new = d["old"], d["new"]
    if d["status"] == "added":
        return f"### skyplan · {name}: new plan, per-run cost **{fmt.money(new['total_cost'])}**"
    delta = d["total_cost_delta"]
    if fmt.money_delta(delta) == "$0.00":
        return f"### skyplan · {name}: per-run cost **{fmt.money(new['total_cost'])}** (no change)"
    return (f"### skyplan · {name}: per-run cost {fmt.money(old['total_cost'])} → **{fmt.money(new['total_cost'])}** "
            f"({fmt.money_delta(delta)}, {_signed_percent(delta, old['total_cost'])})")


def _summary(d: Mapping[str, Any]) -> list[str]:
    old = d["old"] or {"total_cost": None, "compute_cost": None, "egress_cost": None, "makespan_hours": None, "tasks": 0}
    new = d["new"] or {"total_cost": None, "compute_cost": None, "egress_cost": None, "makespan_hours": None, "tasks": 0}

    def money_row(label: str, key: str) -> list[str]:
        a, b = old[key], new[key]
        change = fmt.money_delta((b or 0.0) - (a or 0.0))
        if a:
            change += f" ({_signed_percent((b or 0.0) - a, a)})"
        return [label, fmt.money(a), fmt.money(b), change]

    def hours(h: float | None) -> str:
        return "—" if h is None else fmt.duration(h)

    rows = [
        money_row("cost per run", "total_cost"),
        money_row("compute", "compute_cost"),
        money_row("egress", "egress_cost"),
        ["makespan", hours(old["makespan_hours"]), hours(new["makespan_hours"]),
         fmt.duration_delta((new["makespan_hours"] or 0.0) - (old["makespan_hours"] or 0.0))],
        ["tasks", str(old["tasks"]), str(new["tasks"]),
         f"{new['tasks'] - old['tasks']:+d}" if new["tasks"] != old["tasks"] else "no change"],
    ]
    lines = ["| plan | before | after | change |", "|---|--:|--:|--:|"]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


_MOVE_FIELDS = (("cloud", "cloud"), ("region", "region"), ("zone", "zone"), ("instance", "instance_type"),
                ("spot", "spot"))


def _value(task: Mapping[str, Any] | None, key: str) -> str:
    if task is None:
        return "—"
    if key == "spot":
        return "spot" if task["spot"] else "on-demand"
    if key == "instance_type":
        nodes = task.get("num_nodes", 1)
        accel = f" ({task['accelerator']}×{task['accelerator_count']})" if task.get("accelerator") else ""
        return task[key] + (f" ×{nodes}" if nodes > 1 else "") + accel
    return task.get(key) or "—"


def _task_rows(d: Mapping[str, Any]) -> list[str]:
    rows = []
    order = sorted(d["changes"], key=lambda c: (-abs(c["cost_delta"]), c["task"]))
    for c in order:
        what = {"add": "added", "remove": "removed", "move": "moved", "update": "time or cost"}[c["action"]]
        cells = [f"`{c['task']}`", what]
        for _label, key in _MOVE_FIELDS:
            a, b = _value(c["old"], key), _value(c["new"], key)
            if c["action"] == "add":
                cells.append(b)
            elif c["action"] == "remove":
                cells.append(a)
            else:
                cells.append(a if a == b else f"{a} → **{b}**")
        cells.append(fmt.money_delta(c["cost_delta"]))
        rows.append("| " + " | ".join(_cell(x) if i else x.replace("|", "\\|") for i, x in enumerate(cells)) + " |")
    return rows


def _tf_rows(stack: Mapping[str, Any]) -> list[str]:
    rows = []
    for kind in ("added", "removed", "changed"):
        for e in stack[kind]:
            inside = f" ({', '.join(e['members'])})" if e["members"] else ""
            rows.append(f"| {_SIGN[kind]} | `{_cell(e['address'])}`{_cell(inside)} | "
                        f"{_cell(e['task']) if e['task'] else 'shared'} |")
    return rows


def _plan_rows(changes: Mapping[str, Sequence[str]]) -> list[str]:
    return [f"| {_PLAN_SIGN[a]} {a} | `{_cell(addr)}` |" for a in ACTIONS for addr in changes.get(a, ())]


def _more(hidden: int, what: str) -> str:
    return f"\n…and {hidden} more {what}" if hidden else ""


def comment_markdown(d: Mapping[str, Any], *, limit: int = MAX_COMMENT_CHARS) -> str:
    """The PR comment for a `diff_document`, folded to at most `limit` characters."""
    lists: list[tuple[str, list[str], str]] = [("tasks", _task_rows(d), "task change(s)")]
    for stack, s in d["terraform"].items():
        lists.append((f"tf:{stack}", _tf_rows(s), "resource change(s)"))
    for stack, changes in d["terraform_plan"].items():
        lists.append((f"plan:{stack}", _plan_rows(changes), "planned change(s)"))
    caps = {key: len(rows) for key, rows, _ in lists}
    text = _render(d, lists, caps)
    if _chars(text) > limit:
        caps = _fold(d, lists, limit)
        text = _render(d, lists, caps)
        # The estimate leaves out table headers and the digits of "…and N more": trim the longest
        # list until the text fits (a few rounds at most).
        while _chars(text) > limit and any(caps.values()):
            key = max(caps, key=lambda k: (caps[k], k))
            caps[key] -= max(1, caps[key] // 50)
            text = _render(d, lists, caps)
    if _chars(text) > limit:  # only a spec name or a stack list of absurd length gets here
        raise SkyplanError(f"the comment cannot be folded under {limit} characters")
    return text


def _fold(d: Mapping[str, Any], lists: list[tuple[str, list[str], str]], limit: int) -> dict[str, int]:
    """How many rows of each list fit: an equal share each first, what is left in list order."""
    caps = {key: 0 for key, _, _ in lists}
    budget = limit - _chars(_render(d, lists, caps)) - 200 * len(lists)  # a table header per list shown
    costs = {key: [_chars(r) + 1 for r in rows] for key, rows, _ in lists}
    share = budget // max(1, len(lists))
    for key, _rows, _ in lists:
        used = 0
        for cost in costs[key]:
            if used + cost > share:
                break
            used += cost
            caps[key] += 1
        budget -= used
    for key, _rows, _ in lists:
        for cost in costs[key][caps[key]:]:
            if cost > budget:
                break
            budget -= cost
            caps[key] += 1
    return caps


def _state_where(uri: str | None) -> str:
    return f"`{uri}`" if uri else "local (in the stacks' folders)"


def _render(d: Mapping[str, Any], lists: list[tuple[str, list[str], str]], caps: Mapping[str, int]) -> str:
    rows = {key: (r, what) for key, r, what in lists}
    out = [d["marker"], _headline(d), "", *_summary(d), ""]
    excl_old, excl_new = set(d["excluded_zones"]["old"]), set(d["excluded_zones"]["new"])
    if excl_new - excl_old:
        out += [f"Newly excluded: {', '.join(sorted(excl_new - excl_old))}", ""]
    if excl_old - excl_new:
        out += [f"No longer excluded: {', '.join(sorted(excl_old - excl_new))}", ""]
    backend = d.get("backend") or {}
    if backend.get("old") != backend.get("new") and (d["old"] is not None or backend.get("new")):
        out += [f"Terraform state: {_state_where(backend.get('old'))} → **{_state_where(backend.get('new'))}**", ""]

    changes = d["changes"]
    if changes:
        counts = {a: sum(c["action"] == a for c in changes) for a in ("move", "add", "remove", "update")}
        label = ", ".join(f"{n} {w}" for w, n in (("moved", counts["move"]), ("added", counts["add"]),
                                                   ("removed", counts["remove"]),
                                                   ("with new time or cost", counts["update"])) if n)
        task_rows, what = rows["tasks"]
        shown = task_rows[:caps["tasks"]]
        out += [f"<details><summary>Tasks: {label}</summary>", ""]
        if shown:
            out += ["| task | change | cloud | region | zone | instance | spot | cost Δ |",
                    "|---|---|---|---|---|---|---|--:|", *shown]
        out += [_more(len(task_rows) - len(shown), what).lstrip("\n"), "", "</details>", ""]
    else:
        out += ["No task moved.", ""]

    tf = d["terraform"]
    if tf:
        plans = d["terraform_plan"]
        out += ["#### Terraform", ""]
        header = "| stack | resources before → after | added | removed | changed |"
        sep = "|---|--:|--:|--:|--:|"
        if plans:
            header += " terraform plan |"
            sep += "---|"
        out += [header, sep]
        for stack, s in tf.items():
            row = (f"| {stack} | {s['old_resources']} → {s['new_resources']} | {len(s['added'])} | "
                   f"{len(s['removed'])} | {len(s['changed'])} |")
            if plans:
                p = plans.get(stack)
                row += (" " + ", ".join(f"{len(p[a])} to {a}" for a in ACTIONS) + " |") if p else " not run |"
            out.append(row)
        out += ["", "Blocks are counted as declared; one with a task's gate (`count`/`for_each` on "
                    "`var.active_tasks`) exists while that task runs, a shared one while any task needing it does.", ""]
        for stack, s in tf.items():
            tf_rows, what = rows[f"tf:{stack}"]
            if not tf_rows:
                continue
            shown = tf_rows[:caps[f"tf:{stack}"]]
            out += [f"<details><summary>{stack}: +{len(s['added'])} {fmt.MINUS}{len(s['removed'])} "
                    f"~{len(s['changed'])} blocks</summary>", ""]
            if shown:
                out += ["| | address | task |", "|---|---|---|", *shown]
            out += [_more(len(tf_rows) - len(shown), what).lstrip("\n"), "", "</details>", ""]
        for stack in plans:
            plan_rows, what = rows[f"plan:{stack}"]
            shown = plan_rows[:caps[f"plan:{stack}"]]
            out += [f"<details><summary>{stack}: terraform plan, {len(plan_rows)} change(s)</summary>", ""]
            if shown:
                out += ["| action | address |", "|---|---|", *shown]
            elif not plan_rows:
                out.append("No changes.")
            out += [_more(len(plan_rows) - len(shown), what).lstrip("\n"), "", "</details>", ""]
    out.append(f"<sub>skyplan {__version__} · `skyplan diff` · plan format {d['format_version']}</sub>")
    # Empty "…and 0 more" placeholders leave blank lines: collapse runs of them.
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text + "\n"
