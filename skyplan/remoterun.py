"""Run state beside remote Terraform state: a plan compiled with `--backend` keeps its run there too.

Under the backend's prefix, next to the stacks' state, skyplan keeps

    PREFIX/.skyplan/lock               the run lock: {"owner", "what", "host", "pid", "since", "expires"}
    PREFIX/.skyplan/events.jsonl       the event log (`runstate.EventLog`), uploaded after every event
    PREFIX/.skyplan/plan.applied.json  the plan as applied (`runfiles.PLAN_COPY`)

so a CI job killed mid-apply is resumed by the next job on another runner, from a fresh checkout
of DIR that holds no state, and `skyplan destroy` works from any machine holding the committed plan.

The lock is taken with a conditional write (S3 `If-None-Match: *`): of two runners, exactly one
creates the object; the other is refused (exit 2) with the holder's name. The holder renews the
lock every `ttl/4` seconds (`If-Match` its own version), so a live run never loses it. A run that
was killed stops renewing: once `expires` has passed, the next run takes the lock over (again
conditionally, so two takers cannot both win) and says so. The expiry is
SKYPLAN_RUN_LOCK_TTL seconds (default 300): a queued CI job waits at most that long after a kill.

Every backend keeps it through `skyplan.storage`, whose conditional writes are S3
`If-None-Match`/`If-Match`, GCS generation preconditions and Azure Blob ETag conditions. Taking
over a dead run's lock also releases the Terraform lock it left: S3's and GCS's lock objects are
deleted, and the infinite lease Terraform's azurerm backend holds on a state blob is broken.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from skyplan.backend import Backend, from_doc
from skyplan.errors import SkyplanError

RUN_FOLDER = ".skyplan"
LOCK_NAME = "lock"
DEFAULT_TTL_S = 300.0
SYNCED = ("events.jsonl", ".skyplan/plan.applied.json")  # DIR-relative files mirrored remotely


def plan_backend(directory: Path) -> Backend | None:
    """The backend DIR's plan.json (or the copy of the applied plan) records; None: local state."""
    for rel in ("plan.json", ".skyplan/plan.applied.json"):
        try:
            doc = json.loads((Path(directory) / rel).read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict):
            return from_doc(doc.get("backend"))
    return None


def lock_ttl() -> float:
    raw = os.environ.get("SKYPLAN_RUN_LOCK_TTL", "")
    try:
        ttl = float(raw) if raw else DEFAULT_TTL_S
    except ValueError:
        raise SkyplanError(f"SKYPLAN_RUN_LOCK_TTL={raw!r}: give seconds, e.g. 300") from None
    if ttl < 4:
        raise SkyplanError(f"SKYPLAN_RUN_LOCK_TTL={raw}: at least 4 seconds (the lock is renewed every ttl/4)")
    return ttl


class _Store:
    """The backend's bucket (or container) through the storage seam: the conditional writes the
    lock needs are `Storage.write_versioned` on every scheme, so each backend's run state is the same."""

    def __init__(self, backend: Backend):
        from skyplan.storage import for_uri

        root = {"s3": f"s3://{backend.bucket}", "gcs": f"gs://{backend.bucket}",
                "azurerm": f"https://{backend.account}.blob.core.windows.net/{backend.bucket}"}[backend.kind]
        self.storage = for_uri(root)

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object and its version, or None when there is none."""
        return self.storage.read_versioned(key)

    def put(self, key: str, data: bytes, *, if_absent: bool = False, if_etag: str | None = None) -> str | None:
        """Write; with a condition, None when it did not hold (someone else wrote first)."""
        return self.storage.write_versioned(key, data, if_absent=if_absent, if_version=if_etag)

    def delete(self, key: str, *, if_etag: str | None = None) -> None:
        if if_etag is None:
            self.storage.delete(key)
        else:
            self.storage.delete_versioned(key, if_etag)


class RemoteRun:
    """The remote half of a run: the conditional lock, and the mirrored run files of DIR."""

    def __init__(self, directory: Path, backend: Backend, what: str):
        self.directory = Path(directory)
        self.backend = backend
        self.what = what
        self.store = _Store(backend)
        self.ttl = lock_ttl()
        self.owner = uuid.uuid4().hex
        self._etag: str | None = None
        self._pushed: dict[str, bytes] = {}
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def key(self, name: str) -> str:
        return f"{self.backend.prefix}/{RUN_FOLDER}/{name}"

    def _lock_body(self) -> bytes:
        now = time.time()
        return (json.dumps({"owner": self.owner, "what": self.what, "host": socket.gethostname(),
                            "pid": os.getpid(), "since": round(now, 3), "expires": round(now + self.ttl, 3)},
                           sort_keys=True) + "\n").encode()

    # -- the lock ------------------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the run lock, or take over an expired one; refuse (SkyplanError) a live one."""
        key = self.key(LOCK_NAME)
        etag = self.store.put(key, self._lock_body(), if_absent=True)
        if etag is None:
            found = self.store.get(key)
            holder = _parse_lock(found[0]) if found else {}
            if found and holder.get("expires", 0) > time.time():
                raise SkyplanError(
                    f"{self.backend.uri}: another skyplan run holds this plan's remote lock ({_describe(holder)}, "
                    f"expires in {holder['expires'] - time.time():.0f} s unless renewed); wait for it or stop it first"
                )
            # Expired (its run was killed) or deleted meanwhile: take it over, conditionally.
            etag = (self.store.put(key, self._lock_body(), if_etag=found[1]) if found
                    else self.store.put(key, self._lock_body(), if_absent=True))
            if etag is None:
                raise SkyplanError(f"{self.backend.uri}: another skyplan run took the remote lock just now; "
                                   "wait for it or stop it first")
            if found:
                sys.stderr.write(f"warning: took over the remote run lock of a run that stopped renewing it "
                                 f"({_describe(holder)})\n")
                self._clear_terraform_locks()
        self._etag = etag
        self._renewer = threading.Thread(target=self._renew, name="skyplan-lock-renewer", daemon=True)
        self._renewer.start()

    def _clear_terraform_locks(self) -> None:
        """Release the Terraform locks a killed run left (S3 `<key>.tflock`, GCS
        `<prefix>/default.tflock`, the azurerm state blob's lease): only skyplan runs Terraform on
        these stacks, and it holds the run lock, so nothing else can own them. Without this every
        stack of the killed run would refuse `terraform plan` until a manual force-unlock."""
        from skyplan.targets import target_names

        for stack in target_names():
            state = self.backend.stack_key(stack)
            key = {"s3": f"{state}.tflock", "gcs": f"{state}/default.tflock", "azurerm": state}[self.backend.kind]
            if self.store.storage.release_stale_lock(key):
                sys.stderr.write(f"warning: released the Terraform lock on {key} the killed run left\n")

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            with self._mutex:
                if self._stop.is_set():
                    return
                etag = self.store.put(self.key(LOCK_NAME), self._lock_body(), if_etag=self._etag)
                if etag is None:
                    sys.stderr.write(f"warning: {self.backend.uri}: the remote run lock was taken by another run\n")
                    return
                self._etag = etag

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        with self._mutex:
            if self._etag is not None:
                self.store.delete(self.key(LOCK_NAME), if_etag=self._etag)
                self._etag = None

    # -- the run files ---------------------------------------------------------------------------

    def pull(self) -> list[str]:
        """Bring the remote run files into DIR where DIR has less (a fresh checkout); return them."""
        brought = []
        for rel in SYNCED:
            found = self.store.get(self.key(Path(rel).name))
            if found is None:
                continue
            path = self.directory / rel
            local = path.read_bytes() if path.is_file() else b""
            # The event log only grows: the longer copy is the newer (the same runner resuming keeps its
            # own). The applied plan is taken only when DIR has none; apply then refreshes it from plan.json.
            if (len(found[0]) > len(local)) if rel == "events.jsonl" else not local:
                from skyplan.atomicfile import write_bytes

                path.parent.mkdir(parents=True, exist_ok=True)
                write_bytes(path, found[0])
                brought.append(rel)
            self._pushed[rel] = found[0]
        return brought

    def push(self) -> None:
        """Upload every run file of DIR that changed since it was last uploaded."""
        with self._mutex:
            for rel in SYNCED:
                path = self.directory / rel
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                if self._pushed.get(rel) != data:
                    self.store.put(self.key(Path(rel).name), data)
                    self._pushed[rel] = data


def _parse_lock(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "unreadable lock"
    return f"{holder.get('what', '?')} on {holder.get('host', '?')} pid {holder.get('pid', '?')}"


_active: dict[Path, RemoteRun] = {}


def start(directory: Path, what: str) -> RemoteRun | None:
    """Lock the plan's remote run state and pull it into DIR (None: the plan keeps state locally)."""
    backend = plan_backend(directory)
    if backend is None:
        return None
    remote = RemoteRun(directory, backend, what)
    remote.acquire()
    try:
        remote.pull()
    except BaseException:
        remote.release()
        raise
    _active[Path(directory).resolve()] = remote
    return remote


def refresh_local(directory: Path) -> list[str]:
    """Bring the remote run files into DIR without taking the lock (for `skyplan status` on a
    checkout that did not run the apply, or while a run elsewhere is still going). Returns them."""
    backend = plan_backend(directory)
    if backend is None:
        return []
    return RemoteRun(directory, backend, "status").pull()


def finish(remote: RemoteRun | None) -> None:
    """Upload the run files a last time and release the remote lock."""
    if remote is None:
        return
    _active.pop(remote.directory.resolve(), None)
    try:
        remote.push()
    finally:
        remote.release()


def changed(directory: Path) -> None:
    """A run file of DIR changed (an event was appended): mirror it, if DIR's run is remote."""
    remote = _active.get(Path(directory).resolve())
    if remote is not None:
        remote.push()
