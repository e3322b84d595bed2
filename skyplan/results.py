"""Result identity: which task results in storage may be reused by a later apply.

A task's result identity (its "result id") is a SHA-256 over what the task ran and over the
result ids of the upstream results it read, the way build systems key their caches (a Bazel
action key, a Nix derivation hash). What the task ran is its resolved definition:

- `setup`, `run`, `num_nodes`, the values of `envs`, and its `inputs`;
- the *names* of its `secrets`, never their values (see `SECRETS_NOTE`);
- its resource options (cpus, memory, disk, accelerator, spot policy, image, …), as the spec
  resolved them;
- the content of its `workdir` and of each local `file_mounts` source (every file's relative
  path, executable bit and SHA-256; symlinks followed, as staging follows them); a bucket
  source by its URI;
- the offering class the plan chose: cloud, instance type, accelerator and count, spot. The
  zone and region are left out, so a failover to another zone keeps the identity.

The executor writes the id it was given (`<storage>/<task>/result-id`, written by apply before
the task starts) into the task's `status.json`, which it writes last, after the outputs: an id in
storage therefore always belongs to a complete result, on local, ssh and cloud storage alike.

A later apply reuses a task's result only when the status in storage NOW says exit code 0 with
the id the task would get now, and every upstream task is reused too: a task that runs again
makes everything downstream of it run again, even when its own id did not change.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from skyplan.errors import SkyplanError

RESULT_ID_FILE = "result-id"
# Bumped when what goes into an identity changes: every stored result then runs once more.
IDENTITY_VERSION = "skyplan-result/1"
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")

SECRETS_NOTE = (
    "Secret values are not part of a result id, only their names: a secret is access (a token, a "
    "password), not an input, so rotating it must not re-run a pipeline; and a hash of a "
    "low-entropy value stored beside the outputs, salted or not, can be guessed offline by whoever "
    "reads the storage. `skyplan apply --rerun TASK` re-runs a task whose secret changed what it does."
)


def _canon(value: Any) -> Any:
    """A JSON-able, order-stable form of spec values (dataclasses, enums, tuples)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canon(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return _canon(value.value)
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _sha(doc: Any) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(path: Path) -> str:
    """SHA-256 of a file, or of a directory's files (relative path, executable bit, content)."""
    path = Path(path)
    if not path.is_dir():
        return _sha(["file", os.access(path, os.X_OK), _file_sha(path)])
    entries = []
    for root, dirs, names in os.walk(path, followlinks=True):
        dirs.sort()
        for name in sorted(names):
            file = Path(root, name)
            entries.append([file.relative_to(path).as_posix(), os.access(file, os.X_OK), _file_sha(file)])
    return _sha(["dir", sorted(entries)])


def task_definition(task: Any, plan_task: Mapping[str, Any], spec_dir: Path) -> dict[str, Any]:
    """What `task` runs, as a JSON-able document (the input of its result id, upstream aside).

    Args:
        task: the spec's `skyplan.models.Task`.
        plan_task: the task's entry in plan.json (the chosen offering).
        spec_dir: the spec file's directory (relative workdir / file_mounts paths).

    Raises:
        SkyplanError: a workdir or local file_mounts source that does not exist.
    """
    from skyplan.executor import is_bucket_source
    from skyplan.staging import staged_sources

    content = {}
    for source in staged_sources(task, spec_dir):
        content[source.prefix] = tree_digest(source.local_path)
    mounts = []
    for i, (remote, source) in enumerate(task.file_mounts):
        key = f"mounts/{i}/"
        mounts.append([remote, source if is_bucket_source(task, source) else content.get(key)])
    return {
        "setup": task.setup,
        "run": task.run,
        "envs": [[k, v] for k, v in sorted(task.envs)],
        "secrets": sorted(set(task.secrets)),  # names only: SECRETS_NOTE
        "num_nodes": int(plan_task.get("num_nodes") or task.num_nodes),
        "inputs": _canon(task.inputs),
        "resources": _canon(task.options),
        "workdir": content.get("workdir/"),
        "file_mounts": mounts,
        "offering": {k: plan_task.get(k) for k in ("cloud", "instance_type", "accelerator",
                                                   "accelerator_count", "spot")},
    }


def result_ids(definitions: Mapping[str, Mapping[str, Any] | None],
               depends_on: Mapping[str, Iterable[str]]) -> dict[str, str | None]:
    """Each task's result id from its definition and its upstream tasks' ids.

    A task whose definition is None (or whose upstream has no id) gets None: it is never reused."""
    ids: dict[str, str | None] = {}

    def one(name: str, path: tuple[str, ...] = ()) -> str | None:
        if name in ids:
            return ids[name]
        if name in path:
            raise SkyplanError(f"tasks depend on each other in a cycle: {' -> '.join((*path, name))}")
        definition = definitions.get(name)
        ups = sorted(depends_on.get(name, ()))
        up_ids = [one(u, (*path, name)) for u in ups]
        if definition is None or any(u is None for u in up_ids):
            ids[name] = None
        else:
            ids[name] = _sha([IDENTITY_VERSION, definition, [[u, i] for u, i in zip(ups, up_ids, strict=True)]])
        return ids[name]

    for name in sorted(definitions):
        one(name)
    return ids


def stored_id(status: Mapping[str, Any] | None) -> str | None:
    """The result id of a successful result in storage (its status.json), else None."""
    if not status or status.get("exit_code") != 0:
        return None
    rid = status.get("result_id")
    return rid if isinstance(rid, str) and _HEX64.match(rid) else None


def is_other_result(status: Mapping[str, Any], rid: str | None) -> bool:
    """Whether `status` (a status.json) is another result's than the one with id `rid`: a stale
    status a polled task's storage still holds before this start's executor replaced it."""
    sid = status.get("result_id")
    return isinstance(sid, str) and bool(_HEX64.match(sid)) and sid != rid


def downstream(depends_on: Mapping[str, Iterable[str]], names: Iterable[str]) -> set[str]:
    """`names` and every task that (transitively) depends on one of them."""
    out = set(names)
    grew = True
    while grew:
        grew = False
        for task, ups in depends_on.items():
            if task not in out and out & set(ups):
                out.add(task)
                grew = True
    return out


def reusable(expected: Mapping[str, str | None], stored: Mapping[str, str | None],
             depends_on: Mapping[str, Iterable[str]], rerun: Iterable[str] = ()) -> set[str]:
    """The tasks whose stored result may be used as it is.

    A task is reusable when its stored id equals the expected one, it is not asked to re-run
    (`rerun` and their downstream are not), and all its upstream tasks are reusable."""
    forced = downstream(depends_on, rerun)
    ok = {n for n, rid in expected.items()
          if rid is not None and stored.get(n) == rid and n not in forced}
    changed = True
    while changed:  # drop tasks below one that runs again
        changed = False
        for n in sorted(ok):
            if not set(depends_on.get(n, ())) <= ok:
                ok.discard(n)
                changed = True
    return ok


def short(rid: str | None) -> str:
    """The first 12 hex digits of a result id, as the terminal shows it."""
    return (rid or "none")[:12]


def write_result_id(storage: str, slug: str, rid: str | None) -> None:
    """Tell the task's executor its result id: `<storage>/<slug>/result-id` (one line of hex).

    Written through the storage backend (atomic on file://, one PUT elsewhere). A None id
    removes the object, so the executor records no id and the result is never reused."""
    from skyplan.storage import for_uri

    store, key = for_uri(storage), f"{slug}/{RESULT_ID_FILE}"
    try:
        if rid:
            store.write(key, f"{rid}\n".encode("ascii"))
        else:
            store.delete(key)
    except SkyplanError as exc:
        raise SkyplanError(f"{store.uri(key)}: could not write the task's result id: {exc.message}") from None


def prepare_task_storage(storage: str, slug: str, rid: str | None) -> None:
    """Before a task (re)starts: forget its earlier status.json (every node's) and the node
    addresses of its last rendezvous, so that only this start counts, and write its result id.
    The same on every storage scheme."""
    from skyplan.storage import for_uri

    store = for_uri(storage)
    store.delete(f"{slug}/status.json")
    store.delete_prefix(f"{slug}/nodes/")
    store.delete_prefix(f"{slug}/rendezvous/")
    write_result_id(storage, slug, rid)


def remove_object(uri: str) -> None:
    """Delete one object of storage, given by its full URI (nothing when it is not there)."""
    from skyplan.storage import for_uri

    for_uri(uri).delete("")
