"""What the apply package's parts share: the outcome types, internal control-flow exceptions, and
small lookups (a task's target, slug and resource ids, the spec's storage, the exclusions so far)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from skyplan.errors import ApplyError, SkyplanError
from skyplan.targets.base import Failure, Target

EXIT_INTERRUPTED = 130


class Interrupted(SkyplanError):
    """The user pressed Ctrl-C; everything the run created was destroyed."""

    exit_code = EXIT_INTERRUPTED


@dataclass
class TaskStatus:
    """One task of a run, as `skyplan status` shows it."""

    task: str
    state: str  # pending | running | succeeded | failed | stopped
    cloud: str | None
    zone: str | None
    attempt: int
    cost: float  # hourly price × nodes × hours it ran (so far)
    exit_code: int | None = None
    started: float | None = None
    finished: float | None = None


@dataclass
class ApplyOutcome:
    directory: Path
    ok: bool
    exit_code: int
    attempts: int
    tasks: list[TaskStatus]
    excluded: list[str]
    wall_s: float
    message: str = ""


# -- internal control flow ----------------------------------------------------------------------


class _TaskFailed(Exception):
    def __init__(self, task: str, exit_code: int | None, detail: str):
        super().__init__(task)
        self.task, self.exit_code, self.detail = task, exit_code, detail


class _Placement(Exception):
    """Provisioning failed in a way that rules out a location (or asks for a retry)."""

    def __init__(self, failures: list[tuple[str, Failure]]):
        super().__init__(failures)
        self.failures = failures


class _Broken(Exception):
    """Terraform failed for a reason no target recognises: stop and tell the user."""


class _Stop(Exception):
    pass



def _target(name: str) -> Target:
    try:
        from skyplan.targets import get_target
    except ImportError:  # registry not there (partial checkout): local/ssh are enough here
        get_target = None
    if get_target is not None:
        return get_target(name)
    if name == "local":
        from skyplan.targets.local import LocalTarget

        return LocalTarget()
    if name == "ssh":
        from skyplan.targets.ssh import SshTarget

        return SshTarget()
    raise ApplyError(f"unknown target {name!r}")


def _slug(task: str) -> str:
    from skyplan.hcl import cloud_name

    return cloud_name(task)


def _ids(task: str) -> tuple[str, ...]:
    from skyplan.hcl import cloud_name, hcl_identifier

    return tuple(dict.fromkeys((hcl_identifier(task), cloud_name(task), task)))


def _address_task(address: str | None, tasks: list[str]) -> str | None:
    """The task a resource address belongs to (`module.<id>[0]…`, `…["<task>"]`, `…_<id>`)."""
    if not address:
        return None
    best = None
    for task in tasks:
        for ident in _ids(task):
            if (f"module.{ident}[" in address or f"module.{ident}." in address or f'["{ident}"]' in address
                    or f".{ident}[" in address or address.endswith(f".{ident}")):
                best = task
    return best


def _spec_storage(directory: Path) -> str | None:
    import yaml

    path = directory / ".skyplan" / "spec.yaml"
    if not path.exists():
        return None
    try:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("storage"):
                return str(doc["storage"])
    except yaml.YAMLError:
        return None
    return None


def _exclusions(directory: Path) -> list[str]:
    path = directory / ".skyplan" / "exclusions.json"
    try:
        return list(json.loads(path.read_text()))
    except (OSError, ValueError):
        return []
