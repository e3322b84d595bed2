"""Protect a stack's Terraform state against kills and full disks: keep the last good copy, recover from it.

Terraform's local backend rewrites `terraform.tfstate` in place (truncate, then write), so a
Terraform killed mid-write, or one that ran out of disk, leaves it empty or cut off; when it
cannot write the state at all it dumps it to `errored.tfstate` instead. Before every Terraform
command on a stack of a plan directory, `guard` (called by `skyplan.terraform.Runner`):

1. waits for the stack's state lock (Terraform's own fcntl lock on `terraform.tfstate`), so that
   it never looks at a file another Terraform is rewriting;
2. moves `errored.tfstate`, if any, into `DIR/.skyplan/state/<stack>/` (it is never deleted);
3. reads every candidate: `terraform.tfstate`, `terraform.tfstate.backup`, the errored dumps
   kept and the last good copy `DIR/.skyplan/state/<stack>/last-good.tfstate`. A candidate is
   valid when it is a JSON object with an integer `serial` and a `lineage`;
4. when `terraform.tfstate` is missing-but-expected, empty, garbage or older than a valid
   candidate of the same lineage (an errored dump is newer), replaces it (atomically, while no
   Terraform runs) with the valid candidate of highest serial, preferring the current file's
   lineage, else the last good copy's; the file replaced is kept beside the copies;
5. copies the (now valid) state to `last-good.tfstate`.

`checkpoint` does step 5 alone; the runner also calls it after each command and, during an
apply or destroy, whenever Terraform rewrote the state, so the copy trails every resource saved.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from skyplan.atomicfile import write_bytes
from skyplan.errors import SkyplanError

STATE = "terraform.tfstate"
BACKUP = "terraform.tfstate.backup"
ERRORED = "errored.tfstate"
KEEP_DIR = ".skyplan/state"
LAST_GOOD = "last-good.tfstate"
_LOCK_WAIT_S = 120.0


def keep_dir(stack_dir: Path) -> Path:
    """Where the copies of a stack's state are kept: `DIR/.skyplan/state/<stack>/`."""
    stack_dir = Path(stack_dir).resolve()
    return stack_dir.parent / KEEP_DIR / stack_dir.name


def read_state(path: Path, data: bytes | None = None) -> tuple[int, str, bytes] | None:
    """(serial, lineage, bytes) of a valid state file (or of its `data`), None when it is missing,
    empty or not a state."""
    try:
        data = Path(path).read_bytes() if data is None else data
        doc = json.loads(data)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    serial, lineage = doc.get("serial"), doc.get("lineage")
    if not isinstance(serial, int) or isinstance(serial, bool) or not isinstance(lineage, str) or not lineage:
        return None
    return serial, lineage, data


def checkpoint(stack_dir: Path) -> bool:
    """Copy a valid `terraform.tfstate` to the last good copy (when it changed); whether it was valid."""
    stack_dir = Path(stack_dir)
    state = read_state(stack_dir / STATE)
    if state is None:
        return False
    copy = keep_dir(stack_dir) / LAST_GOOD
    old = read_state(copy)
    # Never replace a newer copy of the same lineage by an older state (a state restored from
    # the backup after a kill is older than the copy that trailed the killed apply).
    if old is not None and old[2] == state[2]:
        return True
    if old is not None and old[1] == state[1] and old[0] > state[0]:
        return True
    try:
        write_bytes(copy, state[2])
    except SkyplanError:
        pass  # a full or read-only disk: the copy is a safety net, not a reason to stop
    return True


class _StateLock:
    """Terraform's own lock on `terraform.tfstate` (a POSIX record lock), held while we repair it."""

    def __init__(self, path: Path, wait_s: float):
        self.path, self.wait_s, self.fd = path, wait_s, None

    def __enter__(self) -> _StateLock:
        if not self.path.exists():
            return self
        try:
            self.fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return self  # unreadable/unwritable: nothing we could repair anyway
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    self.fd = None
                    raise SkyplanError(f"{self.path}: another Terraform holds the state lock for over "
                                       f"{self.wait_s:.0f} s; stop it first") from None
                time.sleep(0.1)

    def read(self) -> bytes | None:
        """The state file's bytes, read through the locked descriptor: opening and closing the
        file anew would drop the lock (POSIX record locks belong to the process, not the fd)."""
        if self.fd is None:
            return None
        size = os.fstat(self.fd).st_size
        return os.pread(self.fd, size, 0) if size else b""

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


def _keep(path: Path, keep: Path, prefix: str) -> Path:
    """Move `path` into `keep` as `<prefix>-<n>.tfstate` (never overwriting an earlier one)."""
    keep.mkdir(parents=True, exist_ok=True)
    n = 1
    while (keep / f"{prefix}-{n}.tfstate").exists():
        n += 1
    dest = keep / f"{prefix}-{n}.tfstate"
    os.replace(path, dest)
    return dest


def guard(stack_dir: Path, *, lock_wait_s: float = _LOCK_WAIT_S) -> list[str]:
    """Make `terraform.tfstate` of a plan's stack valid before a Terraform command; return notes
    saying what was recovered (empty when the state was fine or there is none)."""
    stack_dir = Path(stack_dir)
    keep = keep_dir(stack_dir)
    state_path = stack_dir / STATE
    notes: list[str] = []
    try:
        with _StateLock(state_path, lock_wait_s) as lock:
            errored = stack_dir / ERRORED
            if errored.exists():
                kept = _keep(errored, keep, "errored")
                notes.append(f"kept Terraform's fallback state dump {errored} as {kept}")
            data = lock.read()
            current = read_state(state_path, data) if data is not None else read_state(state_path)
            candidates = [(p, read_state(p)) for p in
                          [stack_dir / BACKUP, keep / LAST_GOOD, *sorted(keep.glob("errored-*.tfstate"))]]
            valid = [(p, s) for p, s in candidates if s is not None]
            broken = state_path.exists() and current is None
            if current is not None:
                lineage = current[1]
            else:
                last = read_state(keep / LAST_GOOD)
                lineage = last[1] if last else (max(valid, key=lambda c: c[1][0])[1][1] if valid else None)
            same = [(p, s) for p, s in valid if s[1] == lineage]
            best = max(same, key=lambda c: c[1][0], default=None)
            if best is not None and (current is None or best[1][0] > current[0]) and (broken or current is not None
                                                                                      or _expected(keep)):
                if broken:
                    kept = _keep(state_path, keep, "broken")
                    notes.append(f"{state_path} was empty or unreadable (kept as {kept})")
                write_bytes(state_path, best[1][2])
                notes.append(f"restored {state_path} from {best[0]} (serial {best[1][0]})")
            elif broken:
                kept = _keep(state_path, keep, "broken")
                notes.append(f"{state_path} was empty or unreadable and no good copy exists (kept as {kept}); "
                             "Terraform starts from an empty state")
    except OSError as exc:
        from skyplan.atomicfile import error_from_os

        raise error_from_os(exc) from None
    checkpoint(stack_dir)
    return notes


def _expected(keep: Path) -> bool:
    """A missing `terraform.tfstate` is restored only when a copy says the stack had state."""
    last = read_state(keep / LAST_GOOD)
    if last is None:
        return False
    try:
        resources = json.loads(last[2]).get("resources") or []
    except ValueError:
        return False
    return bool(resources)
