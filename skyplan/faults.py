"""How a run ends when the machine, not the plan, fails: an unwritable or full DIR, an error mid-loop,
and `skyplan destroy` from whatever a killed or damaged run left.

`abort` is the apply loop's last resort for an error it has no other path for: it tears down
everything it can (Terraform where it can still run, the task processes in every case), records
`run_finished` if the event log can still be written, and returns one error line with a hint on
what to do next. `destroy_from_whatever_is_left` is `skyplan destroy`: it waits for the
Terraform a killed run left behind, reads the plan, its copy, or only the stacks (a stack
counts when it has a state file, a kept copy or an errored dump), destroys every stack with
resources and reaps the task processes even when a stack could not be destroyed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyplan.atomicfile import describe_os_error
from skyplan.errors import ApplyError, SkyplanError

if TYPE_CHECKING:
    from skyplan.apply import _Run


def abort(run: _Run, exc: BaseException, started: float) -> BaseException:
    """Tear down after `exc` ended the loop; return what the caller raises (an ApplyError with a hint
    for OS and skyplan errors, `exc` itself for anything else, e.g. KeyboardInterrupt or a bug)."""
    torn_down, problem = True, ""
    try:
        run._teardown()
    except BaseException as err:  # noqa: BLE001 — a teardown that fails must not hide the cause
        torn_down = False
        problem = _message(err)
        try:
            run._reap()  # task processes go even when Terraform cannot record it
        except BaseException:  # noqa: BLE001
            pass
    if not isinstance(exc, (SkyplanError, OSError)):
        return exc
    cause = _message(exc)
    hint = (f"everything this run created was destroyed; fix the cause, then `skyplan apply {run.dir}` resumes"
            if torn_down else
            f"task processes were stopped, but Terraform could not record the teardown ({problem}); "
            f"once the cause is fixed run `skyplan destroy {run.dir}`, then `skyplan apply {run.dir}` resumes")
    message = f"{cause}\n{hint}"
    try:
        run.log.emit("run_finished", ok=False, exit_code=ApplyError.exit_code,
                     wall_s=round(time.time() - started, 3), message=message)
    except BaseException:  # noqa: BLE001 — "if possible": the log may be what cannot be written
        pass
    return ApplyError(message)


def _message(exc: BaseException) -> str:
    if isinstance(exc, SkyplanError):
        return exc.message
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    return f"{type(exc).__name__}: {exc}"


def destroy_from_whatever_is_left(run: _Run) -> list[str]:
    """Destroy every stack of `run.dir` that has resources and stop leftover task processes; return
    the stacks that had resources."""
    from skyplan.runfiles import settle_leftovers
    from skyplan.targets.local import LocalTarget

    settle_leftovers(run.dir, run.log.emit)
    destroyed: list[str] = []
    errors: list[str] = []
    try:
        run.load_plan()
        for stack in run.stacks.values():
            try:
                if run.runner.state_resources(stack.dir):
                    destroyed.append(stack.name)
            except SkyplanError as exc:
                errors.append(exc.message)
        run._teardown()
    except SkyplanError as exc:
        errors.append(exc.message)
    finally:
        if "local" not in run.stacks and (run.dir / ".skyplan" / "work").is_dir():
            # No local stack left to read (its state lost entirely): its processes still go.
            stopped = LocalTarget(zones=()).reap(run.dir)
            if stopped:
                run.log.emit("reaped", stack="local", process_groups=stopped)
    if errors:
        raise ApplyError("\n".join(dict.fromkeys(errors)))
    return destroyed


def stacks_with_state(directory: Any, names: Any) -> list[str]:
    """The stacks among `names` that have a state file, a kept copy of one or an errored dump."""
    from skyplan.backend import BACKEND_FILE
    from skyplan.tfstate import ERRORED, LAST_GOOD, STATE, keep_dir

    d = Path(directory)
    # A stack with a remote backend may have state wherever this DIR was checked out: Terraform reads it.
    return [n for n in names if (d / n).is_dir() and ((d / n / STATE).exists() or (d / n / ERRORED).exists()
                                                       or (keep_dir(d / n) / LAST_GOOD).exists()
                                                       or (d / n / BACKEND_FILE).exists())]


def lift_stale_exclusions(run: _Run, events: list[dict]) -> list[str]:
    """Recompile without the local zones excluded because other runs' leftovers held their slots,
    once those are gone; return the tokens lifted."""
    from skyplan.apply import _exclusions
    from skyplan.targets.local import stale_slot_exclusions

    excluded = _exclusions(run.dir)
    if not any(t.startswith("local:") for t in excluded):
        return []
    lifted = stale_slot_exclusions(excluded, events)
    if not lifted:
        return []
    from skyplan.pipeline import recompile

    recompile(run.dir, catalog_dir=run.catalog_dir, exclusions=[t for t in excluded if t not in lifted])
    run.load_plan()
    run.log.emit("exclusion_lifted", tokens=lifted,
                 message=f"{', '.join(lifted)}: the slots other runs held are free again; the zone is tried again")
    return lifted


def leftover_instances(stack_dir: Path, tasks: list[str]) -> list[str]:
    """Resource instance addresses the stack's state already holds for `tasks` (read from the
    state file itself: cheaper than a Terraform command, and the state was just guarded)."""
    import json

    from skyplan.apply import _address_task
    from skyplan.tfstate import STATE

    if not tasks:
        return []
    try:
        doc = json.loads((Path(stack_dir) / STATE).read_text())
    except (OSError, ValueError):
        return []
    out = []
    for res in doc.get("resources") or []:
        if res.get("mode") != "managed":
            continue
        prefix = f"{res['module']}." if res.get("module") else ""
        for inst in res.get("instances") or []:
            key = inst.get("index_key")
            index = "" if key is None else (f"[{key}]" if isinstance(key, int) else f'["{key}"]')
            address = f"{prefix}{res['type']}.{res['name']}{index}"
            if _address_task(address, tasks):
                out.append(address)
    return sorted(out)
