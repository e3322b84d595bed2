"""Upload a task's workdir and local file_mounts sources to the run's storage before the task starts."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from skyplan.errors import SkyplanError, SpecError
from skyplan.executor import is_bucket_source, task_slug
from skyplan.models import Task
from skyplan.runstate import file_uri_path
from skyplan.sdk import missing_sdk


@dataclass(frozen=True)
class StagedSource:
    """One local path a task needs on its machine, and where under the task's storage it goes.

    `key` is relative to `<storage>/<task slug>/`: `workdir/` for the workdir; `mounts/<i>/file`
    (a single file) or `mounts/<i>/dir/` (a directory) for the file mount at index `i` of
    `Task.file_mounts`. The executor reads exactly these keys (see `skyplan.executor`). `prefix`
    (`workdir/` or `mounts/<i>/`) is what the source owns: staging leaves nothing else under it.
    """

    local_path: Path
    prefix: str
    key: str
    is_dir: bool
    remote_path: str | None = None  # the file mount's remote path; None for the workdir


def staged_sources(task: Task, spec_dir: Path) -> list[StagedSource]:
    """What must be uploaded for `task`: its workdir and its local file_mounts sources.

    Relative paths are resolved against `spec_dir` (the spec file's directory); `~` is the home
    directory of the user running skyplan; `file://PATH` is PATH. Bucket sources (s3://, gs://,
    Azure blob) are left out: the executor copies them on the machine.

    Args:
        task: the task.
        spec_dir: the directory of the spec file that defined `task`.

    Returns:
        The workdir first (if any), then the local mounts in `Task.file_mounts` order.

    Raises:
        SkyplanError: (a SpecError when the task knows its position in the spec) a path that does
            not exist, a workdir that is not a directory, or a source the executor refuses.
    """
    sources = []
    if task.workdir is not None:
        path = _local_path(task, "workdir", task.workdir, spec_dir)
        if not path.is_dir():
            _fail(task, f"workdir {task.workdir!r} is not a directory ({path})")
        sources.append(StagedSource(path, "workdir/", "workdir/", True))
    for i, (remote, source) in enumerate(task.file_mounts):
        if is_bucket_source(task, source):
            continue
        path = _local_path(task, f"file_mounts source for {remote!r}", source, spec_dir)
        is_dir = path.is_dir()
        prefix = f"mounts/{i}/"
        sources.append(StagedSource(path, prefix, prefix + ("dir/" if is_dir else "file"), is_dir, remote))
    return sources


def stage_task(task: Task, *, spec_dir: Path, storage: str, plan_name: str) -> list[str]:
    """Upload `staged_sources(task, spec_dir)` under `<storage>/<task slug>/`, replacing stale content.

    Credentials are the SDK's own chain on this machine (boto3, google-cloud-storage); none is
    written anywhere. Call it before the task's machines start, on every (re)start: it is
    idempotent, and a source changed since the last attempt replaces the old copy.

    Args:
        task: the task.
        spec_dir: the directory of the spec file that defined `task`.
        storage: the run's storage base URI (what the executor gets as SKYPLAN_STORAGE):
            `file:///abs`, `s3://bucket/prefix` or `gs://bucket/prefix`.
        plan_name: the spec's name, for messages.

    Returns:
        The URIs written, one per source: `…/workdir/`, `…/mounts/<i>/file` or `…/mounts/<i>/dir/`.

    Raises:
        SkyplanError: a missing local path, an unsupported storage scheme (Azure blob, for now),
            a missing SDK, or a failed upload; the message names the task.
    """
    sources = staged_sources(task, spec_dir)
    if not sources:
        return []
    base = f"{storage.rstrip('/')}/{task_slug(task.name)}"
    where = f"task {task.name!r} of plan {plan_name!r}"
    if storage.startswith("file://"):
        upload = _upload_file_uri
    elif storage.startswith("s3://"):
        upload = _upload_s3
    elif storage.startswith("gs://"):
        upload = _upload_gs
    elif storage.startswith(("https://", "az://")):
        raise SkyplanError(
            f"{where}: staging a workdir or local file_mounts to Azure blob storage is not supported yet; "
            "use s3://, gs:// or file:// storage, or give the file mounts as bucket URIs"
        )
    else:
        raise SkyplanError(f"{where}: cannot stage files to storage {storage!r} (file://, s3://, gs://)")
    written = []
    for source in sources:
        uri = f"{base}/{source.key}"
        try:
            upload(source, base)
        except SkyplanError:
            raise
        except Exception as exc:  # an SDK or OS error: say which task and which URI
            raise SkyplanError(f"{where}: could not upload {source.local_path} to {uri}: {exc}") from exc
        written.append(uri)
    return written


def _fail(task: Task, message: str) -> NoReturn:
    if task.pos is not None:
        raise SpecError(task.pos, f"task {task.name!r}: {message}")
    raise SkyplanError(f"task {task.name!r}: {message}")


def _local_path(task: Task, what: str, text: str, spec_dir: Path) -> Path:
    raw = text.removeprefix("file://")
    path = Path(os.path.expanduser(raw))
    if not path.is_absolute():
        path = Path(spec_dir) / path
    path = path.resolve()
    if not path.exists():
        _fail(task, f"{what} {text!r} does not exist ({path})")
    return path


def _files(source: StagedSource) -> Iterator[tuple[Path, str]]:
    """(local file, key relative to the task's storage), sorted; symlinks are followed."""
    if not source.is_dir:
        yield source.local_path, source.key
        return
    found = []
    for root, dirs, names in os.walk(source.local_path, followlinks=True):
        dirs.sort()
        for name in names:
            path = Path(root, name)
            found.append((path, source.key + path.relative_to(source.local_path).as_posix()))
    yield from sorted(found, key=lambda pair: pair[1])


def _upload_file_uri(source: StagedSource, base: str) -> None:
    prefix = source.prefix
    root = file_uri_path(base)
    if not root.is_absolute():
        raise SkyplanError(f"storage {base!r} must be an absolute file:/// URI")
    dst = root / prefix
    # Build beside the destination, then swap: an interrupted copy never looks complete.
    partial = dst.with_name(f"{dst.name}.partial-{uuid.uuid4().hex}")
    target = partial / source.key[len(prefix) :].rstrip("/") if source.key != prefix else partial
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if source.is_dir:
            # A workdir may hold the run's own storage (`workdir: .` beside a plan DIR that keeps
            # file:// storage inside it): copying that into itself would never end.
            storage = root.resolve()

            def skip_storage(directory: str, names: list[str]) -> list[str]:
                return [n for n in names if Path(directory, n).resolve() == storage]

            shutil.copytree(source.local_path, target, dirs_exist_ok=True, ignore=skip_storage)
        else:
            shutil.copy2(source.local_path, target)
        shutil.rmtree(dst, ignore_errors=True)
        partial.rename(dst)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _bucket_and_key(uri: str, scheme: str) -> tuple[str, str]:
    bucket, _, key = uri[len(scheme) :].partition("/")
    return bucket, key.strip("/")


def _upload_s3(source: StagedSource, base: str) -> None:
    prefix = source.prefix
    try:
        import boto3
    except ImportError:
        raise missing_sdk("aws", "boto3", "staging a workdir or local file_mounts to s3://") from None

    bucket, root = _bucket_and_key(base, "s3://")
    root = f"{root}/" if root else ""
    client = boto3.client("s3")
    keep = set()
    for path, key in _files(source):
        client.upload_file(str(path), bucket, root + key)
        keep.add(root + key)
    stale = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root + prefix):
        stale += [obj["Key"] for obj in page.get("Contents", ()) if obj["Key"] not in keep]
    for i in range(0, len(stale), 1000):  # DeleteObjects takes at most 1,000 keys
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stale[i : i + 1000]]})


def _upload_gs(source: StagedSource, base: str) -> None:
    prefix = source.prefix
    try:
        from google.cloud import storage as gcs  # type: ignore[import-not-found]
    except ImportError:
        raise missing_sdk("gcp", "google-cloud-storage", "staging a workdir or local file_mounts to gs://") from None
    name, root = _bucket_and_key(base, "gs://")
    root = f"{root}/" if root else ""
    bucket = gcs.Client().bucket(name)
    keep = set()
    for path, key in _files(source):
        bucket.blob(root + key).upload_from_filename(str(path))
        keep.add(root + key)
    for blob in bucket.list_blobs(prefix=root + prefix):
        if blob.name not in keep:
            blob.delete()
