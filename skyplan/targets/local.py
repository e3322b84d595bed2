"""The `local` target: tasks run as process groups on this machine, through Terraform's built-in `terraform_data`.

Zones are slot groups configured in `~/.config/skyplan/local.yaml` (or `$SKYPLAN_LOCAL_CONFIG`)::

    zones:
      - {name: local-1, cpus: 8, memory: 32, accelerators: "", price: 0, inject_failure: null}

Without a file there is one zone, `local-1`, with this machine's CPUs and memory. `price` (USD/h,
default 0) lets a test or a user rank zones; `inject_failure: capacity` is a testing aid that makes
the zone refuse every task with the same text a real "no free slot" gives.

Each zone is offered in every whole CPU size up to its CPU count (instance type `local-<n>cpu`), so
a `cpus: 2` task takes 2 of the zone's slots and the per-zone vcpus quota lets tasks share a zone.
The stack writes each task's executor to `DIR/local/executors/<task-slug>.sh`; the node module's
`run.sh` takes the slots (flock'ed files under `~/.cache/skyplan/local-slots/<zone>/`, or
`$SKYPLAN_LOCAL_SLOTS_DIR`, shared by every run on the machine: another run holding them is a real
"no free slot"), starts the executor in its own session, records its PID in the work directory
`DIR/.skyplan/work/<task-slug>/node-<rank>/` and blocks until it finished.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import yaml

from skyplan.errors import SkyplanError
from skyplan.models import FailureScope, Location, Offering, Quota, Spec
from skyplan.targets.base import Failure, StackContext, Target
from skyplan.targets.templating import render_templates

_NO_SLOT = re.compile(r"skyplan-local: zone (\S+) has no free slot")


@dataclass(frozen=True)
class LocalZone:
    name: str
    cpus: int
    memory_gib: float
    accelerator: str | None = None
    accelerator_count: int = 0
    price: float = 0.0
    inject_failure: str | None = None


def config_path() -> Path:
    """Where the local zones are configured."""
    env = os.environ.get("SKYPLAN_LOCAL_CONFIG")
    return Path(env).expanduser() if env else Path("~/.config/skyplan/local.yaml").expanduser()


def _machine_memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 1.0


def load_zones(path: Path | None = None) -> tuple[LocalZone, ...]:
    """The configured local zones (the default single zone when the file does not exist)."""
    path = path or config_path()
    if not path.exists():
        return (LocalZone("local-1", os.cpu_count() or 1, round(_machine_memory_gib(), 1)),)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SkyplanError(f"{path}: not valid YAML ({exc})") from None
    items = doc.get("zones") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise SkyplanError(f"{path}: expected `zones:` with a list of {{name, cpus, memory}}")
    zones = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("name"):
            raise SkyplanError(f"{path}: zones[{i}] needs a `name`")
        accel, count = None, 0
        if item.get("accelerators"):
            name, _, n = str(item["accelerators"]).partition(":")
            accel, count = name.strip(), int(n or 1)
        failure = item.get("inject_failure")
        if failure not in (None, "capacity"):
            raise SkyplanError(f"{path}: zones[{i}].inject_failure must be null or \"capacity\", got {failure!r}")
        zones.append(
            LocalZone(
                name=str(item["name"]),
                cpus=int(item.get("cpus", os.cpu_count() or 1)),
                memory_gib=float(item.get("memory", round(_machine_memory_gib(), 1))),
                accelerator=accel,
                accelerator_count=count,
                price=float(item.get("price", 0.0)),
                inject_failure=failure,
            )
        )
    return tuple(zones)


def _instance_cpus(instance_type: str, default: int) -> int:
    m = re.fullmatch(r"local-(\d+)cpu", instance_type)
    return int(m.group(1)) if m else default


class LocalTarget(Target):
    """Processes on this machine; off unless the spec names `local` in `allowed.clouds`."""

    name: ClassVar[str] = "local"
    enabled_by_default: ClassVar[bool] = False
    apply_waits_for_tasks: ClassVar[bool] = True

    def __init__(self, zones: tuple[LocalZone, ...] | None = None):
        self._fixed = zones
        self._cache: tuple[tuple[str, float], tuple[LocalZone, ...]] | None = None

    @property
    def zones(self) -> tuple[LocalZone, ...]:
        """The configured zones, re-read when the config file (or its path) changed."""
        if self._fixed is not None:
            return self._fixed
        path = config_path()
        key = (str(path), path.stat().st_mtime if path.exists() else -1.0)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, load_zones(path))
        return self._cache[1]

    def _zone(self, name: str) -> LocalZone:
        for z in self.zones:
            if z.name == name:
                return z
        raise SkyplanError(f"local zone {name!r} is not in {config_path()} (zones: "
                           f"{', '.join(z.name for z in self.zones)})")

    def offerings(self, spec: Spec) -> list[Offering]:
        out = []
        for z in self.zones:
            loc = Location("local", "local", z.name)
            for n in range(1, z.cpus + 1):
                # Share of the zone's memory and price in proportion to the CPUs taken.
                share = n / z.cpus
                out.append(Offering(loc, f"local-{n}cpu", None, 0, float(n), round(z.memory_gib * share, 2),
                                    round(z.price * share, 6), None))
            if z.accelerator:
                out.append(Offering(loc, f"local-{z.cpus}cpu", z.accelerator, z.accelerator_count,
                                    float(z.cpus), z.memory_gib, z.price, None))
        return out

    def capacity(self, spec: Spec) -> tuple[Quota, ...]:
        quotas = []
        for z in self.zones:
            match = (("cloud", "local"), ("zone", z.name))
            quotas.append(Quota(f"local-{z.name}-vcpus", "vcpus", float(z.cpus), match))
            if z.accelerator:
                quotas.append(Quota(f"local-{z.name}-accelerators", "accelerators",
                                    float(z.accelerator_count), match))
        return tuple(quotas)

    def storage_uri(self, base: str | None, plan_name: str) -> str:
        # Relative file:// URIs are resolved against the output directory by `skyplan apply`. Any
        # other scheme is moved by the executor's rclone, as on a VM, with this machine's login.
        return super().storage_uri(base, plan_name)

    def render_stack(self, ctx: StackContext) -> dict[str, str]:
        from skyplan.hcl import cloud_name, hcl_identifier

        tasks = []
        files: dict[str, str] = {}
        for st in ctx.tasks:
            off = st.placement.candidate.offering
            zone = self._zone(off.location.zone or "")
            slug = cloud_name(st.placement.task)
            files[f"executors/{slug}.sh"] = st.executor
            tasks.append(
                {
                    "name": st.placement.task,
                    "module": hcl_identifier(st.placement.task),
                    "slug": slug,
                    "zone": zone.name,
                    "cpus": _instance_cpus(off.instance_type, math.ceil(off.vcpus or 1)),
                    "zone_cpus": zone.cpus,
                    "num_nodes": st.placement.candidate.num_nodes,
                    "executor_sha256": hashlib.sha256(st.executor.encode()).hexdigest(),
                    "inject_failure": zone.inject_failure,
                }
            )
        files.update(
            render_templates(
                self.name,
                plan_name=ctx.plan_name,
                storage=ctx.storage,
                terraform_version=ctx.terraform_version,
                tasks=tasks,
            )
        )
        return files

    def classify_failure(self, message: str) -> Failure | None:
        m = _NO_SLOT.search(message)
        if m:
            line = next((ln for ln in message.splitlines() if m.group(0) in ln), m.group(0))
            return Failure(FailureScope.ZONE, "LocalNoFreeSlot", line[line.index(m.group(0)):].strip())
        return None

    def local_tools(self) -> tuple[str, ...]:
        """run.sh takes CPU slots with flock and streams the log with tail; the executor runs here."""
        from skyplan.preflight import EXECUTOR_TOOLS

        return (*EXECUTOR_TOOLS, "flock")

    def reap(self, run_dir: Path) -> list[int]:
        """Kill every task process group this run recorded and that still runs; return their ids.

        Terraform does not run destroy provisioners for tainted (interrupted) nodes and knows
        nothing of a run killed with SIGKILL, so apply and destroy call this after Terraform."""
        return reap_work_dirs(Path(run_dir) / ".skyplan" / "work")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_processes(work_root: str) -> list[int]:
    """PIDs whose environment has SKYPLAN_WORK_DIR inside `work_root`: every process a task of
    this run started, whatever session it moved to (the executor runs each stage in its own)."""
    needle = f"SKYPLAN_WORK_DIR={work_root}/".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(item.startswith(needle) for item in environ.split(b"\0")):
            found.append(int(entry.name))
    return sorted(p for p in found if p != os.getpid())


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def reap_work_dirs(work_root: Path, run_dir: str | None = None) -> list[int]:
    """Stop every process of the tasks whose work directories are under `work_root`: the process
    groups recorded in `*/node-*/pid` and any process whose SKYPLAN_WORK_DIR points there
    (TERM, then KILL after 10 s). Returns the PIDs that were still running."""
    root = str(work_root.resolve())
    groups = []
    for pidfile in sorted(work_root.glob("*/node-*/pid")):
        try:
            pgid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            continue
        if pgid > 1 and _group_alive(pgid) and _same_leader(pidfile, pgid):
            groups.append(pgid)
    pids = sorted(set(_run_processes(root)) | set(groups))
    if not pids:
        _forget_pidfiles(work_root)
        return []
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = _run_processes(root) + [g for g in groups if _group_alive(g)]
        if not alive:
            break
        time.sleep(0.05)
    else:
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _signal_all(_run_processes(root), signal.SIGKILL)
    _forget_pidfiles(work_root)
    return pids


def _same_leader(pidfile: Path, pgid: int) -> bool:
    """Whether the group's leader is still the process run.sh recorded (its start time matches);
    a group whose leader is gone (or whose PID was reused) is judged by the environment scan."""
    from skyplan.procs import start_time

    try:
        recorded = int(pidfile.with_name("pid.start").read_text().strip())
    except (OSError, ValueError):
        return True  # recorded by an older run.sh: trust the PID
    return start_time(pgid) == recorded


def _forget_pidfiles(work_root: Path) -> None:
    for pidfile in [*work_root.glob("*/node-*/pid"), *work_root.glob("*/node-*/pid.start")]:
        try:
            pidfile.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only DIR: the processes are stopped, that is what matters


def slots_dir() -> Path:
    """Where the zones' slot lock files are (shared by every run on this machine)."""
    env = os.environ.get("SKYPLAN_LOCAL_SLOTS_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "skyplan" / "local-slots"


def free_slots(zone: str, cpus: int) -> int:
    """How many of a zone's `cpus` slots no process holds now (each is tried, never kept)."""
    import fcntl

    free = 0
    for i in range(cpus):
        path = slots_dir() / zone / f"cpu-{i}.lock"
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            free += 1
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free += 1
        except OSError:
            pass
        finally:
            os.close(fd)  # closing drops a lock we took
    return free


def stale_slot_exclusions(excluded: list[str], events: list[dict]) -> list[str]:
    """Local zones this run excluded only because other runs' processes held their slots, and
    whose slots are free again: such an exclusion must not outlive the processes behind it."""
    zones = {z.name: z for z in load_zones()}
    out = []
    for ev in events:
        token = ev.get("token", "")
        if (ev.get("event") == "zone_excluded" and ev.get("code") == "LocalNoFreeSlot"
                and token in excluded and token not in out):
            zone = zones.get(token.partition(":")[2])
            if zone is not None and not zone.inject_failure and free_slots(zone.name, zone.cpus) > 0:
                out.append(token)
    return out
