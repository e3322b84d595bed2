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
from urllib.parse import unquote, urlparse

from skyplan.errors import SkyplanError
from skyplan.sdk import missing_sdk

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


def file_uri_path(uri: str) -> Path:
    """The local path of a `file://` URI (`file:///abs` or `file://relative`)."""
    parsed = urlparse(uri)
    return Path(unquote(parsed.netloc + parsed.path))


def read_text(uri: str) -> str | None:
    """The text of an object in storage, None when it does not exist (yet).

    file:// is read directly; s3:// through boto3, gs:// through google-cloud-storage and
    Azure blob URIs (`az://container/path` or `https://ACCOUNT.blob.core.windows.net/...`)
    through azure-storage-blob — each with the SDK's own credential chain (never a key of ours).
    """
    parsed = urlparse(uri)
    scheme = parsed.scheme
    if scheme == "file":
        path = file_uri_path(uri)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
    if scheme == "s3":
        return _read_s3(parsed.netloc, parsed.path.lstrip("/"))
    if scheme == "gs":
        return _read_gcs(parsed.netloc, parsed.path.lstrip("/"))
    if scheme in ("az", "azure") or (scheme == "https" and parsed.netloc.endswith(".blob.core.windows.net")):
        return _read_azure(uri)
    raise SkyplanError(f"storage {uri!r}: unsupported scheme {scheme!r} (file, s3, gs, az)")


def _read_s3(bucket: str, key: str) -> str | None:
    try:
        import boto3
        from botocore.exceptions import ClientError
    except ImportError:
        raise missing_sdk("aws", "boto3", "reading s3:// task status") from None
    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise SkyplanError(f"s3://{bucket}/{key}: {exc}") from None
    return body.decode("utf-8")


def _read_gcs(bucket: str, key: str) -> str | None:  # untested here: no GCS emulator in CI
    try:
        from google.api_core.exceptions import NotFound
        from google.cloud import storage
    except ImportError:
        raise missing_sdk("gcp", "google-cloud-storage", "reading gs:// task status") from None
    try:
        return storage.Client().bucket(bucket).blob(key).download_as_text()
    except NotFound:
        return None


def _read_azure(uri: str) -> str | None:  # untested here: no Azurite in CI
    try:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.identity import DefaultAzureCredential
        from azure.storage.blob import BlobClient
    except ImportError:
        raise missing_sdk("azure", "azure-storage-blob and azure-identity", "reading Azure blob task status") from None
    parsed = urlparse(uri)
    if parsed.scheme == "https":
        url = uri
    else:  # az://ACCOUNT/CONTAINER/path
        account, _, rest = (parsed.netloc + parsed.path).partition("/")
        url = f"https://{account}.blob.core.windows.net/{rest}"
    try:
        client = BlobClient.from_blob_url(url, credential=DefaultAzureCredential())
        return client.download_blob().readall().decode("utf-8")
    except ResourceNotFoundError:
        return None


def read_status(storage: str, task_slug: str) -> dict | None:
    """The executor's `status.json` for a task ({exit_code, …}), None while there is none."""
    uri = join_uri(storage, task_slug, "status.json")
    text = read_text(uri)
    if text is None:
        return None
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
