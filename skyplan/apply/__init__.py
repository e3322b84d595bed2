"""The apply loop: run a compiled plan's stacks through Terraform in DAG order, watch tasks, tear down, fail over.

A task's machines exist exactly while it is in its stack's `active_tasks`. The loop turns a task
on when all its upstream tasks succeeded, with `terraform plan -out` + `apply PLANFILE` on its
stack (stacks of different targets run in parallel threads), and off again once its
`status.json` is in storage; a task finished by a local/ssh apply is turned off by the next apply
of its stack, and everything by a final destroy. A failed apply's diagnostics go to the
target's `classify_failure`: zone/region/cloud ⇒ that location is excluded, the failed task's
half-created resources are destroyed, the plan is recompiled (`pipeline.compile_plan` with the
previous placement as hint) and the loop goes on with tasks that still run kept when their
placement did not change; `none-retry` ⇒ the same placement again after a backoff. A task failing
by its own exit code is never failed over: everything is destroyed and the run ends with exit 1.
Ctrl-C stops starting work, forwards the interrupt to Terraform, destroys everything, exit 130.
Every step is an event in `DIR/events.jsonl` (see `runstate.py`), which is how `skyplan status
DIR` reports. A later apply resumes from storage: a task whose `status.json` there carries the
result id it would get now is reused, not run again (`results.py`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path

from skyplan.errors import ApplyError, SkyplanError
from skyplan.runstate import EventLog, RunLock
from skyplan.terraform import Runner, find_terraform

from .model import (
    EXIT_INTERRUPTED,
    ApplyOutcome,
    Interrupted,
    TaskStatus,
    _address_task,
    _exclusions,
    _target,
)
from .run import _Run
from .status import _warn, status
from .watch import _watchdog_seconds

__all__ = ["EXIT_INTERRUPTED", "ApplyOutcome", "Interrupted", "TaskStatus", "apply", "destroy", "destroy_cli",
           "run_cli", "status", "status_cli", "_Run", "_address_task", "_exclusions",
           "_target", "_warn", "_watchdog_seconds"]




def apply(
    target_dir_or_spec: str | Path,
    *,
    out_dir: str | Path | None = None,
    catalog_dir: str | Path | None = None,
    auto_approve: bool = False,
    max_attempts: int = 3,
    json_events: bool = False,
    on_event: Callable[[dict], None] | None = None,
    confirm: Callable[[dict], bool] | None = None,
    runner: Runner | None = None,
    rerun: bool | Iterable[str] = (),
    launch: Iterable[tuple[str, str, str | None]] = (),
) -> ApplyOutcome:
    """Run a compiled DIR (or compile SPEC into `out_dir` first) to completion.

    Args:
        target_dir_or_spec: a compiled output directory, or a spec file.
        out_dir: where a spec is compiled (required with a spec).
        auto_approve: run plans with cloud (paid) tasks without `confirm`.
        max_attempts: attempts (the first one included) before giving up on failover (exit 4).
        json_events: also print every event as one JSON line on stdout.
        on_event: called with every skyplan event, and with `{"event": "terraform", "stack",
            "ui": <Terraform -json UI message>}` for Terraform's own progress.
        confirm: asked (with plan.json) before cloud tasks run when not `auto_approve`, once the
            plan passed `skyplan.preflight` (a plan that cannot run is refused first).
        rerun: True re-runs every task; task names re-run those and their downstream tasks. By
            default a task whose result in storage has its current result id is reused
            (`skyplan.results`).
        launch: `--env`/`--secret` values as (flag, name, value or None), set into this process's
            environment, where secrets and value-less envs are read from at launch
            (`preflight.take_launch_values`).
    Returns:
        The outcome of a successful run.
    Raises:
        ApplyError: a task failed by its own exit code, or Terraform failed unrecognisably (exit 1).
        GaveUpError: failover exhausted `max_attempts` or ran out of locations (exit 4).
        Interrupted: Ctrl-C; everything was destroyed (exit 130).
    """
    directory = _resolve_dir(Path(target_dir_or_spec), out_dir, catalog_dir)

    def emit(ev: dict) -> None:
        if json_events:
            sys.stdout.write(json.dumps(ev, sort_keys=True, default=str) + "\n")
            sys.stdout.flush()
        if on_event is not None:
            on_event(ev)

    from skyplan.runfiles import load_plan

    doc = load_plan(directory)
    names = [t["name"] for t in doc["tasks"]]
    forced = set(names) if rerun is True else set(rerun or ())
    unknown = sorted(forced - set(names))
    if unknown:
        raise SkyplanError(f"--rerun: no task {', '.join(map(repr, unknown))} in the plan "
                           f"(tasks: {', '.join(sorted(names))})")
    from skyplan import preflight

    preflight.bundled_tools_on_path()
    preflight.take_launch_values(doc, launch, os.environ)
    preflight.check(doc)  # refuse before asking: a prompt for a plan that cannot run misleads
    from skyplan.targets import paid_target_names

    clouds = sorted({t["cloud"] for t in doc["tasks"]} & set(paid_target_names()))
    if clouds and not auto_approve:
        if confirm is None or not confirm(doc):
            raise SkyplanError(f"the plan creates paid resources on {', '.join(clouds)}: "
                               "review PLAN.md and pass --auto-approve")
    with RunLock(directory, "apply"):
        log = EventLog(directory, on_event=emit)
        run = _Run(directory, runner or find_terraform(), log, max_attempts=max_attempts,
                   catalog_dir=catalog_dir,
                   on_tf_event=(lambda stack, ev: emit({"event": "terraform", "stack": stack, "ui": ev}))
                   if (on_event or json_events) else None)
        run.rerun = forced
        previous = None
        if threading.current_thread() is threading.main_thread():
            # SIGTERM (CI cancel) and SIGHUP (a closed terminal) end in the same teardown as Ctrl-C.
            previous = {sig: signal.signal(sig, run._on_sigint)
                        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            return run.execute()
        finally:
            for sig, handler in (previous or {}).items():
                signal.signal(sig, handler)



def _resolve_dir(source: Path, out_dir: str | Path | None, catalog_dir: str | Path | None) -> Path:
    if source.is_dir():
        return source.resolve()
    if not source.is_file():
        raise SkyplanError(f"{source}: no such spec file or plan directory")
    if out_dir is None:
        raise SkyplanError(f"{source}: a spec needs an output directory to compile into")
    out = Path(out_dir)
    copy = out / ".skyplan" / "spec.yaml"
    # Re-applying the same spec resumes the run in `out`; a changed spec is compiled afresh.
    if not (copy.exists() and (out / "plan.json").exists() and copy.read_bytes() == source.read_bytes()):
        from skyplan.pipeline import CompileOptions, compile_plan

        compile_plan(source, out, CompileOptions(catalog_dir=catalog_dir))
    return out.resolve()


def destroy(directory: str | Path, *, on_event: Callable[[dict], None] | None = None,
            runner: Runner | None = None) -> list[str]:
    """Destroy every stack of DIR that has state and stop leftover task processes; return the stacks."""
    from skyplan.faults import destroy_from_whatever_is_left

    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise SkyplanError(f"{directory}: no such plan directory")
    runner = runner or find_terraform()
    with RunLock(directory, "destroy"):
        log = EventLog(directory, on_event=on_event)
        run = _Run(directory, runner, log, max_attempts=1, catalog_dir=None, on_tf_event=None)
        run.stack_only = True  # no readable plan (nor copy of it) must not keep machines alive
        with ExitStack() as sessions:
            run.sessions = sessions
            try:
                destroyed = destroy_from_whatever_is_left(run)
            finally:
                for key in run.env:
                    runner.extra_env.pop(key, None)
        log.emit("destroy_finished", stacks=destroyed)
        return destroyed


# -- CLI glue (skyplan/cli.py calls these) --------------------------------------------------------


def run_cli(source: Path, directory: Path, *, catalog_dir: str | Path | None, auto_approve: bool,
            max_attempts: int, as_json: bool, interactive: bool, rerun: bool | Iterable[str] = (),
            launch: Iterable[tuple[str, str, str | None]] = ()) -> int:
    """`skyplan apply`: progress on the terminal (or JSON lines), then a summary; returns the exit code."""
    from skyplan.cli_view import _ApplyView

    view = _ApplyView(as_json=as_json)

    def confirm(doc: dict) -> bool:
        if not interactive:
            return False
        import click

        view.show_plan(doc)
        return click.confirm("Create these machines?", default=False, err=True)

    try:
        outcome = apply(source, out_dir=directory, catalog_dir=catalog_dir, auto_approve=auto_approve,
                        max_attempts=max_attempts, on_event=view.on_event, confirm=confirm, rerun=rerun,
                        launch=launch)
    except SkyplanError as exc:
        if view.failed_shown and isinstance(exc, ApplyError):
            # The view already showed the failed task's log (task_failed): say it once.
            exc.message = exc.message.split("\n", 1)[0] + " (its log is above)"
        view.where()
        raise
    finally:
        view.close()
    view.summary(outcome)
    return outcome.exit_code


def status_cli(directory: Path, *, as_json: bool) -> int:
    """`skyplan status DIR`."""
    from skyplan.cli_view import _print_status

    _print_status(status(directory), as_json=as_json)
    return 0


def destroy_cli(directory: Path, *, as_json: bool) -> int:
    """`skyplan destroy DIR`: progress lines, then one line; with `as_json` exactly one JSON document."""
    from skyplan.cli_view import _ApplyView

    view = _ApplyView(as_json=as_json)
    seen: list[dict] = []
    try:
        # JSON: the events go into the one document printed at the end (and to events.jsonl).
        stacks = destroy(directory, on_event=seen.append if as_json else view.on_event)
    finally:
        view.close()
    if as_json:
        removed = sum(e.get("removed", 0) for e in seen if e.get("event") == "destroyed")
        reaped = [p for e in seen if e.get("event") == "reaped" for p in e.get("process_groups", ())]
        print(json.dumps({"destroyed": stacks, "directory": str(directory), "removed": removed,
                          "reaped": reaped}, sort_keys=True))
    else:
        view.console.print(f"destroyed {', '.join(stacks) if stacks else 'nothing (no state left)'} in {directory}")
    return 0
