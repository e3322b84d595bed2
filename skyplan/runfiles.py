"""What `apply`, `status` and `destroy` read from a plan directory, and what they fall back on when it is damaged.

- The plan: `DIR/plan.json`. `skyplan apply` keeps a byte copy of the plan it runs in
  `DIR/.skyplan/plan.applied.json` (written when it starts and after every failover recompile).
  When plan.json is later deleted, truncated or overwritten with garbage while machines may
  still run, `status` and `destroy` read the copy, and `apply` puts the copy back in place;
  each says so. Without either, `destroy` still works from the stacks' own files.
- Left-behind processes: before an apply or destroy touches a stack, every Terraform that a
  killed run left behind (`skyplan.procs`) has ended.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyplan.atomicfile import write_bytes
from skyplan.errors import SkyplanError

PLAN_COPY = ".skyplan/plan.applied.json"
Warn = Callable[[str], None]


def _parse(path: Path) -> dict[str, Any]:
    from skyplan.planfile import read_plan

    if path.name == "plan.json":
        doc = read_plan(path.parent)
    else:
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise SkyplanError(f"{path}: no copy of the plan") from None
        except (OSError, ValueError) as exc:
            raise SkyplanError(f"{path}: not a readable plan ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list) or not doc.get("name"):
        raise SkyplanError(f"{path}: not a plan (no name or tasks)")
    return doc


def load_plan(directory: Path, *, restore: bool = False, warn: Warn | None = None) -> dict[str, Any]:
    """The plan of DIR: plan.json, else the copy the last apply kept (then `warn` is told).

    With `restore` (an apply holding the run lock) a good plan.json is copied to the copy, and
    a damaged one is replaced by the copy."""
    directory = Path(directory)
    plan, copy = directory / "plan.json", directory / PLAN_COPY
    try:
        doc = _parse(plan)
    except SkyplanError as exc:
        try:
            doc = _parse(copy)
        except SkyplanError:
            raise exc from None
        what = "put it back from" if restore else "using"
        if restore:
            write_bytes(plan, copy.read_bytes())
        if warn is not None:
            warn(f"{exc.message}; {what} the copy of the plan the last apply ran ({copy})")
        return doc
    if restore:
        data = plan.read_bytes()
        if not copy.is_file() or copy.read_bytes() != data:
            try:
                write_bytes(copy, data)
            except SkyplanError as err:
                if warn is not None:
                    warn(f"could not keep a copy of the plan: {err.message}")
    return doc


def stack_only_plan(directory: Path) -> dict[str, Any]:
    """A minimal plan for `destroy` when neither plan.json nor its copy can be read: the name from
    a stack's last variables file, no tasks (every stack with state is destroyed, with the
    variables its last command used)."""
    from skyplan.targets import target_names
    from skyplan.terraform import VAR_FILE

    name = None
    for target in target_names():
        try:
            name = json.loads((Path(directory) / target / VAR_FILE).read_text()).get("plan")
        except (OSError, ValueError, AttributeError):
            continue
        if name:
            break
    return {"name": name or Path(directory).name, "tasks": [], "format_version": "1.0"}


def settle_leftovers(directory: Path, emit: Callable[..., Any]) -> None:
    """Wait until every Terraform a killed run left behind has ended (it is saving its state)."""
    from skyplan import procs

    def waiting(found: list[dict]) -> None:
        emit("waiting_for_leftovers", processes=[{"pid": p["pid"], "stack": p.get("stack"),
                                                   "command": p.get("command")} for p in found],
             message=f"waiting for {len(found)} Terraform process(es) of a killed run to save their state")

    procs.wait_for_leftovers(Path(directory), on_wait=waiting)
