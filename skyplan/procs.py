"""Records of the Terraform processes a run starts, so that the next run finds the ones a killed run left behind.

Each Terraform child gets a record `DIR/.skyplan/procs/terraform-<pid>.json` holding its PID and
its start time (field 22 of `/proc/<pid>/stat`, clock ticks since boot): a PID alone could be
reused by an unrelated process, the pair cannot. The record is removed when the child ends.

When skyplan is killed (even with SIGKILL) its Terraform children get SIGTERM (PR_SET_PDEATHSIG)
and stop gracefully: they kill their provisioners and rewrite `terraform.tfstate`, in place.
That takes from a fraction of a second to minutes (a cloud API call in flight). A `skyplan
destroy` or `skyplan apply` started meanwhile must not read the state (it would see it half
written: "No state file was found!"), nor reap task processes whose provisioner the old
Terraform is still waiting on (it would record the task as created and finished). So both call
`wait_for_leftovers` first: it waits for every recorded process that still lives, and stops it
(SIGTERM again, then SIGKILL) only when it outlives the grace period.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

PROCS_DIR = ".skyplan/procs"
# A left-behind Terraform is given this long to save its state before it is stopped by force.
LEFTOVER_GRACE_S = float(os.environ.get("SKYPLAN_LEFTOVER_GRACE_S", "300"))
_KILL_GRACE_S = 30.0  # after a second SIGTERM, before SIGKILL


def start_time(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks since boot), None when it does not run (or is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    fields = stat[stat.rfind(")") + 2:].split()
    if not fields or fields[0] == "Z":
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def is_alive(pid: int, started: int | None) -> bool:
    """Whether the process recorded as (`pid`, `started`) still runs (not a reused PID)."""
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def run_dir_of(stack_dir: Path) -> Path | None:
    """The plan directory a stack directory belongs to (None for a directory outside a plan)."""
    parent = Path(stack_dir).resolve().parent
    return parent if (parent / ".skyplan").is_dir() else None


def record(run_dir: Path, kind: str, pid: int, **info: object) -> Path | None:
    """Write the record of a process just started; None when it cannot be written (read-only DIR)."""
    from skyplan.atomicfile import write_json
    from skyplan.errors import SkyplanError

    path = Path(run_dir) / PROCS_DIR / f"{kind}-{pid}.json"
    try:
        write_json(path, {"kind": kind, "pid": pid, "start": start_time(pid), **info})
    except SkyplanError:
        return None  # an unwritable DIR must not stop the run from tearing down
    return path


def forget(path: Path | None) -> None:
    """Remove a record once its process ended."""
    if path is not None:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def leftovers(run_dir: Path) -> list[dict]:
    """Recorded processes that still run; records of ended ones are removed."""
    out = []
    for path in sorted((Path(run_dir) / PROCS_DIR).glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            pid, started = int(doc["pid"]), doc.get("start")
        except (OSError, ValueError, KeyError, TypeError):
            forget(path)
            continue
        if pid != os.getpid() and is_alive(pid, started):
            out.append({**doc, "record": str(path)})
        else:
            forget(path)
    return out


def wait_for_leftovers(run_dir: Path, *, grace_s: float | None = None,
                       on_wait: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Wait until no recorded process of an earlier run lives; stop those that outlive `grace_s`.

    `on_wait` is called once with the processes found (before waiting). Returns them."""
    found = leftovers(run_dir)
    if not found:
        return []
    if on_wait is not None:
        on_wait(found)
    grace = LEFTOVER_GRACE_S if grace_s is None else grace_s
    alive = _wait(found, grace)
    if alive:
        # It got SIGTERM from the kernel when its skyplan died (unless that was missed): repeat
        # it, the graceful stop, then force it.
        _signal(alive, signal.SIGTERM)
        alive = _wait(alive, _KILL_GRACE_S)
        _signal(alive, signal.SIGKILL)
        _wait(alive, 5.0)
    leftovers(run_dir)  # drop the records of the processes that ended
    return found


def _wait(procs: list[dict], seconds: float) -> list[dict]:
    deadline = time.monotonic() + seconds
    while True:
        alive = [p for p in procs if is_alive(int(p["pid"]), p.get("start"))]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _signal(procs: list[dict], sig: int) -> None:
    for p in procs:
        if is_alive(int(p["pid"]), p.get("start")):
            try:
                os.kill(int(p["pid"]), sig)
            except (ProcessLookupError, PermissionError):
                pass
