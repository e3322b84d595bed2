"""Upload a task's workdir and local file_mounts sources to the run's storage before the task starts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from skyplan.errors import SkyplanError, SpecError
from skyplan.executor import is_bucket_source, task_slug
from skyplan.models import Task
from skyplan.storage import for_uri
from skyplan.storage.base import MissingSDKError


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

    The upload goes through the storage backend of `storage` (`skyplan.storage.for_uri`), with
    its SDK's own credential chain on this machine; none is written anywhere. Call it before the
    task's machines start, on every (re)start: it is idempotent, and a source changed since the
    last attempt replaces the old copy.

    Args:
        task: the task.
        spec_dir: the directory of the spec file that defined `task`.
        storage: the run's storage base URI (what the executor gets as SKYPLAN_STORAGE):
            `file:///abs`, `s3://bucket/prefix`, `gs://bucket/prefix` or an Azure blob URL.
        plan_name: the spec's name, for messages.

    Returns:
        The URIs written, one per source: `…/workdir/`, `…/mounts/<i>/file` or `…/mounts/<i>/dir/`.

    Raises:
        SkyplanError: a missing local path, an unsupported storage scheme, a missing SDK, or a
            failed upload; the message names the task.
    """
    sources = staged_sources(task, spec_dir)
    if not sources:
        return []
    slug = task_slug(task.name)
    where = f"task {task.name!r} of plan {plan_name!r}"
    try:
        store = for_uri(storage)
    except SkyplanError as exc:
        raise SkyplanError(f"{where}: cannot stage files: {exc.message}") from None
    written = []
    for source in sources:
        uri = store.uri(f"{slug}/{source.key}")
        try:
            # What the source owns is replaced: upload, then remove anything else under its prefix
            # (an earlier attempt's files, or a file where a directory now goes).
            keep = set(store.upload(source.local_path, f"{slug}/{source.key}"))
            for stale in store.list(f"{slug}/{source.prefix}"):
                if stale not in keep:
                    store.delete(stale)
        except MissingSDKError:  # the message already says what to install
            raise
        except SkyplanError as exc:
            raise SkyplanError(f"{where}: could not upload {source.local_path} to {uri}: {exc.message}") from None
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
