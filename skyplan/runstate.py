"""A run's persistent state in its output directory: the event log, the run lock, task status files in storage.

`DIR/events.jsonl` is append-only, one JSON object per line: `{"ts": ISO-8601 UTC, "t": epoch
seconds, "event": name, …}`. It is the apply loop's memory across processes: a later
`skyplan apply DIR` resumes from it (tasks that succeeded for the same spec are not re-run) and
`skyplan status DIR` reads it. `DIR/.skyplan/lock` holds an fcntl lock and the owner's PID while
an apply or destroy runs; the kernel drops the lock when that process dies, even by SIGKILL.
A plan compiled with `--backend` also takes a remote lock and mirrors its run files there
(`skyplan/remoterun.py`), so the run survives the machine it started on.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from skyplan.errors import SkyplanError
from skyplan.storage.file import file_uri_path

__all__ = ["EventLog", "RunLock", "file_uri_path", "join_uri", "read_events", "read_status", "read_text"]

EVENTS_FILE = "events.jsonl"
LOCK_FILE = ".skyplan/lock"


def now_iso(t: float | None = None) -> str:
    stamp = _dt.datetime.fromtimestamp(time.time() if t is None else t, tz=_dt.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventLog:
    """Append-only `events.jsonl`; every event is also handed to `on_event` (CLI display).

    Each event is one `write(2)` of a whole line on an O_APPEND descriptor, fsync'ed. A line cut
    off by a kill is ended before the next event is appended, so it never swallows that event.
    A log that cannot be written (full disk, read-only DIR) does not stop the run, whose
    teardown matters more: the failure is kept in `write_error` and reported once on stderr."""

    def __init__(self, directory: Path, on_event: Callable[[dict], None] | None = None):
        self.path = Path(directory) / EVENTS_FILE
        self.on_event = on_event
        self.write_error: str | None = None
        self._checked_end = False

    def emit(self, event: str, **fields: Any) -> dict:
        t = time.time()
        record = {"ts": now_iso(t), "t": round(t, 3), "event": event, **fields}
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
        try:
            self._append(line)
        except OSError as exc:
            if self.write_error is None:
                from skyplan.atomicfile import describe_os_error

                self.write_error = describe_os_error(exc, self.path)
                sys.stderr.write(f"warning: events are not recorded: {self.write_error}\n")
        else:
            self._mirror()
        if self.on_event is not None:
            self.on_event(record)
        return record

    def _mirror(self) -> None:
        """Upload the log where the plan's backend keeps run state (`remoterun`); a failed upload
        warns once and does not stop the run (its teardown matters more)."""
        from skyplan import remoterun

        try:
            remoterun.changed(self.path.parent)
        except SkyplanError as exc:
            if self.write_error is None:
                self.write_error = exc.message
                sys.stderr.write(f"warning: events are not uploaded: {exc.message}\n")

    def _append(self, line: bytes) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if not self._checked_end:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # end the torn line a killed writer left
                self._checked_end = True
            written = os.write(fd, line)
            if written != len(line):  # a short write: the disk filled up mid-line
                raise OSError(28, "No space left on device", str(self.path))
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict]:
        return list(read_events(self.path.parent))


_warned: set[tuple[str, int]] = set()


def read_events(directory: Path) -> Iterator[dict]:
    """Every event recorded in `directory`. A torn line (a killed writer) is skipped; a line with
    bytes that are not UTF-8 (a damaged file) is read with them replaced, and a warning naming
    the line is printed once."""
    path = Path(directory) / EVENTS_FILE
    if not path.exists():
        return
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode("utf-8", errors="replace")
                if (str(path), number) not in _warned:
                    _warned.add((str(path), number))
                    sys.stderr.write(f"warning: {path}:{number}: not UTF-8; bad bytes replaced\n")
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


class RunLock:
    """Exclusive lock on a run directory (one apply or destroy at a time)."""

    def __init__(self, directory: Path, what: str = "apply"):
        self.path = Path(directory) / LOCK_FILE
        self.what = what
        self._fd: int | None = None
        self._remote = None  # remoterun.RemoteRun while the plan's run state is remote

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            # Exit 2 (a refusal), not 1: no task failed.
            raise SkyplanError(
                f"{self.path.parent.parent}: another skyplan run holds this directory ({holder}); "
                "wait for it or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({self.what}, since {now_iso()})\n".encode())
        self._fd = fd
        if self.what != "compile":
            # A plan with a remote backend: the run lock and run files live there too.
            from skyplan import remoterun

            try:
                self._remote = remoterun.start(self.path.parent.parent, self.what)
            except BaseException:
                self.__exit__()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        remote, self._remote = self._remote, None
        try:
            if remote is not None:
                from skyplan import remoterun

                remoterun.finish(remote)
        finally:
            self._release_local()

    def _release_local(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# ---------------------------------------------------------------------------------------------
# Task status files (`<storage>/<task-slug>/status.json`, written by the executor)
# ---------------------------------------------------------------------------------------------


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def read_text(uri: str) -> str | None:
    """The text of one object in storage (a full object URI), None when it does not exist (yet).

    Read through the URI's storage backend (`skyplan.storage.for_uri`), with the SDK's own
    credential chain — never a key of ours. Bytes that are not UTF-8 are replaced."""
    from skyplan.storage import for_uri

    data = for_uri(uri).read("")
    return None if data is None else data.decode("utf-8", errors="replace")


def read_status(storage: str, task_slug: str) -> dict | None:
    """The executor's `status.json` for a task ({exit_code, …}), None while there is none."""
    from skyplan.storage import for_uri

    uri = join_uri(storage, task_slug, "status.json")
    data = for_uri(storage).read(f"{task_slug}/status.json")
    if data is None:
        return None
    text = data.decode("utf-8", errors="replace")
    try:
        doc = json.loads(text)
    except ValueError:
        where = uri
        if uri.startswith("file://"):
            from skyplan.atomicfile import free_space

            # An empty or cut-off status is what a full disk leaves: say so, with the space left.
            where = f"{file_uri_path(uri)} ({free_space(file_uri_path(uri))})"
        what = "empty" if not text.strip() else f"cut short or not JSON: {text[:200]!r}"
        return {"exit_code": None, "error": f"{where}: status.json is {what}; a full disk where the task "
                                            "ran is the usual cause"}
    return doc if isinstance(doc, dict) else {"exit_code": None, "error": "status.json is not an object"}
