"""One task of the spec (skyplan keys plus SkyPilot's task YAML keys) as a `Task`."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import replace

from skyplan.models import Allowed, DataInput, ResourceOption, Task
from skyplan.spec import _ranges, _skypilot, _values
from skyplan.spec._nodes import Node
from skyplan.spec._resources import REFUSED as REFUSED_IN_RESOURCES
from skyplan.spec._resources import cloud_name, parse_resources

TASK_KEYS = (
    "name", "depends_on", "resources", "num_nodes", "setup", "run", "envs", "secrets", "inputs",
    "outputs", "outputs_gb", "hours", "workdir", "file_mounts", "allowed", "config", "ingress_from",
)
REFUSED = {
    **{key: f"{reason}; it belongs under `resources` in SkyPilot too"
       for key, reason in REFUSED_IN_RESOURCES.items()},
    "event_callback": "skyplan reports task events in events.jsonl instead",
    "service": "SkyServe services are long-running; skyplan plans batch jobs",
    "pool": "SkyPilot worker pools are not modelled; see skyplan `pools:` for your own machines",
    "volumes": "attached volumes are not provisioned",
    "volume_mounts": "attached volumes are not provisioned",
    "managed_secrets": "list secret names under `secrets` instead",
    "file_mounts_mapping": "SkyPilot-internal field",
    "api_server_access": "there is no API server",
    "_metadata": "SkyPilot-internal field",
    "storage_mounts": "storage mounts are not provisioned",
}
_RESOURCE_HINT = "it is a resource; move it under `resources:`"
HINTS = {
    **{key: _RESOURCE_HINT for key in ("cpus", "memory", "disk", "disk_size", "accelerators", "use_spot",
                                       "cloud", "region", "zone", "instance_type", "image_id", "ports",
                                       "any_of", "ordered", "infra")},
    **{key: "it applies to the whole spec; move it to the top level" for key in (
        "objective", "deadline", "budget", "exclude_zones", "storage", "quotas", "pools", "tasks")},
}
# Shell variable names: envs and secrets become `export NAME=…` in the executor.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT_HOURS = 1.0  # SkyPilot's default runtime estimate
_HOURS_FALLBACK_KEY = "default"


def parse_task(node: Node, fields: dict[str, Node], *, name: str, spec_allowed: Allowed) -> Task:
    """Build a task from its (already key-checked) fields; `spec_allowed` is the top level's."""
    written: dict[str, Node] = {}
    options = parse_resources(fields.get("resources"), written)
    origin = node.source.origin
    origin[f"tasks[{name}].resources"] = (fields.get("resources") or node).pos()
    for key, where in written.items():
        origin.setdefault(f"tasks[{name}].{key}", where.pos())
    task_allowed = parse_allowed(fields["allowed"], origin_key=f"tasks[{name}].allowed") if "allowed" in fields else None
    allowed = _merge_allowed(spec_allowed, task_allowed)
    _check_options_allowed(fields.get("resources") or node, options, allowed)
    hours, by_accelerator, given = _hours(fields.get("hours"), options)
    if _given(fields, "config"):
        _skypilot.config(fields["config"])
    envs, launch_envs = _envs(fields["envs"]) if _given(fields, "envs") else ((), ())
    secrets = _secrets(fields["secrets"]) if _given(fields, "secrets") else ()
    mounts, storage_mounts = _file_mounts(fields["file_mounts"]) if _given(fields, "file_mounts") else ((), ())
    return Task(
        name=name,
        options=options,
        num_nodes=_num_nodes(fields["num_nodes"]) if _given(fields, "num_nodes") else 1,
        setup=_script(fields.get("setup")),
        run=_script(fields.get("run")),
        envs=envs,
        secrets=tuple(sorted({*secrets, *launch_envs})),
        launch_envs=launch_envs,
        inputs=_inputs(fields["inputs"]) if _given(fields, "inputs") else (),
        outputs_gb=_outputs_gb(fields),
        hours=hours,
        hours_by_accelerator=by_accelerator,
        hours_given=given,
        depends_on=depends_on(fields["depends_on"]) if _given(fields, "depends_on") else (),
        allowed=allowed,
        workdir=_workdir(fields["workdir"]) if _given(fields, "workdir") and not fields["workdir"].is_mapping else None,
        workdir_git=_workdir_git(fields["workdir"]) if _given(fields, "workdir") and fields["workdir"].is_mapping else None,
        file_mounts=mounts,
        storage_mounts=storage_mounts,
        ingress_from=_values.ingress_cidrs(fields["ingress_from"]) if _given(fields, "ingress_from") else (),
        # Named the same way in every file shape, so later stages can point at the task.
        pos=node.pos(f"tasks[{name}]"),
    )


def task_fields(node: Node, *, also_known: tuple[str, ...] = ()) -> dict[str, Node]:
    """The task keys of a task mapping; refused and misplaced keys fail with a reason."""
    hints = {key: hint for key, hint in HINTS.items() if key not in also_known}
    return node.fields(TASK_KEYS + also_known, refused=REFUSED, hints=hints, what="a task mapping")


def task_name(node: Node) -> str:
    """A task name: any non-empty string (renderers escape it wherever it goes)."""
    if node.is_scalar and node.text().strip():
        return node.text()
    node.expected("a non-empty task name")


def depends_on(node: Node) -> tuple[str, ...]:
    """Task names this task waits for: one name or a list, duplicates dropped."""
    what = "a task name or a list of task names"
    names = (node.text(what),) if node.is_scalar else tuple(item.text(what) for item in node.items(what))
    return tuple(dict.fromkeys(names))


def parse_allowed(node: Node, *, origin_key: str) -> Allowed:
    """`{clouds: [...], regions: [globs]}`; a key left out is None (not restricted here).
    Where each key is written goes to `Spec.origin` as `<origin_key>.clouds` / `.regions`."""
    fields = node.fields(("clouds", "regions"), what="a mapping with `clouds` and/or `regions`")
    for key in ("clouds", "regions"):
        if _given(fields, key):
            node.source.origin[f"{origin_key}.{key}"] = fields[key].pos()
    clouds = regions = None
    if _given(fields, "clouds"):
        items = [fields["clouds"]] if fields["clouds"].is_scalar else fields["clouds"].items("a list of clouds")
        if not items:
            fields["clouds"].expected("at least one cloud")
        clouds = tuple(dict.fromkeys(cloud_name(item) for item in items))
    if _given(fields, "regions"):
        regions = fields["regions"].strings("a list of region names or globs like us-*")
        if not regions:
            fields["regions"].expected("at least one region glob")
    return Allowed(clouds=clouds, regions=regions)


def _merge_allowed(spec: Allowed, task: Allowed | None) -> Allowed:
    if task is None:
        return spec
    return Allowed(
        clouds=task.clouds if task.clouds is not None else spec.clouds,
        regions=task.regions if task.regions is not None else spec.regions,
    )


def _check_options_allowed(node: Node, options: tuple[ResourceOption, ...], allowed: Allowed) -> None:
    """Fail early when `allowed` rules out every shape the task asks for (it could never be placed)."""
    if any(_is_allowed(option, allowed) for option in options):
        return
    asked = sorted({f"{option.cloud or '*'}/{option.region or '*'}" for option in options})
    limits = []
    if allowed.clouds is not None:
        limits.append(f"allowed.clouds is [{', '.join(allowed.clouds)}]")
    if allowed.regions is not None:
        limits.append(f"allowed.regions is [{', '.join(allowed.regions)}]")
    node.fail(f"resources ask for {', '.join(asked)}, but {' and '.join(limits)}")


def _is_allowed(option: ResourceOption, allowed: Allowed) -> bool:
    if option.cloud is not None and allowed.clouds is not None and option.cloud not in allowed.clouds:
        return False
    if option.region is not None and allowed.regions is not None:
        return any(fnmatch.fnmatchcase(option.region, glob) for glob in allowed.regions)
    return True


def _given(fields: dict[str, Node], key: str) -> bool:
    return key in fields and not fields[key].is_null


def _num_nodes(node: Node) -> int:
    return int(_ranges.NUM_NODES.read(node, "a number of nodes"))


def _script(node: Node | None) -> str | None:
    # Kept exactly as YAML gives it: the executor runs it byte-for-byte.
    if node is None or node.is_null:
        return None
    return node.text("a shell command (a string)")


def _envs(node: Node) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(envs with a value, names without one). A null value is SkyPilot's "required at launch":
    the value comes from where `skyplan apply` runs, like a secret's (it is often a token)."""
    envs: dict[str, str] = {}
    at_launch: set[str] = set()
    for key, value in node.entries("a mapping of environment variables"):
        name = key.yaml.value
        if not _ENV_NAME.fullmatch(name):
            key.fail(f"`{name}` is not a valid environment variable name (letters, digits, _)")
        if value.is_null:
            at_launch.add(name)
            envs.pop(name, None)
        else:
            envs[name] = value.text("a string, number or boolean")
            at_launch.discard(name)
    return tuple(sorted(envs.items())), tuple(sorted(at_launch))


def _secrets(node: Node) -> tuple[str, ...]:
    what = "a list of secret names or a mapping of names"
    names: list[str] = []
    if node.is_sequence or node.is_scalar:
        items = node.items(what) if node.is_sequence else [node]
        named = [(item, item.string("a secret name")) for item in items]
    else:
        named = []
        for key, value in node.entries(what):
            named.append((key, key.yaml.value))
            if not value.is_null:
                # Refused, not dropped: the spec is copied into the plan directory that users
                # commit, so a value written here would end up in a repository.
                value.fail(
                    f"a value is written for secret `{key.yaml.value}`; skyplan copies the spec into the "
                    f"plan directory (which you commit), so write `{key.yaml.value}: null` and export "
                    f"{key.yaml.value} where `skyplan apply` runs"
                )
    for item, name in named:
        if not _ENV_NAME.fullmatch(name):
            item.fail(f"`{name}` is not a valid secret name (letters, digits, _)")
        names.append(name)
    return tuple(sorted(set(names)))


def _inputs(node: Node) -> tuple[DataInput, ...]:
    what = "a list of {uri, size_gb, region} or a mapping of URI to GB"
    inputs: list[DataInput] = []
    if node.is_mapping:
        # SkyPilot spelling: `inputs: {s3://bucket/path: 500}`
        for key, value in node.entries(what):
            uri = key.string("a data URI")
            inputs.append(DataInput(uri, _values.size_gb(value, "a size in GB"), infer_cloud(uri), None))
        return tuple(inputs)
    for item in node.items(what):
        fields = item.fields(("uri", "size_gb", "region", "cloud"), what="a mapping {uri, size_gb, region}")
        for required in ("uri", "size_gb"):
            if required not in fields:
                item.fail(f"an input needs `{required}`")
        uri = fields["uri"].string("a data URI like s3://bucket/path")
        cloud = cloud_name(fields["cloud"]) if _given(fields, "cloud") else infer_cloud(uri)
        region = fields["region"].string("a region name").strip() if _given(fields, "region") else None
        inputs.append(DataInput(uri, _values.size_gb(fields["size_gb"], "a size in GB like 500"), cloud, region))
    return tuple(inputs)


def infer_cloud(uri: str) -> str | None:
    """The cloud holding a URI: s3→aws, gs→gcp, Azure blob/az→azure, file or plain path→local."""
    from skyplan.storage import cloud_of

    return cloud_of(uri) if "://" in uri else "local"


def _outputs_gb(fields: dict[str, Node]) -> float:
    if _given(fields, "outputs") and _given(fields, "outputs_gb"):
        fields["outputs"].fail("give either `outputs` or `outputs_gb`, not both")
    if _given(fields, "outputs_gb"):
        return _values.size_gb(fields["outputs_gb"], "a size in GB like 50")
    if _given(fields, "outputs"):
        # SkyPilot spelling: `outputs: {s3://bucket/out: 50}`; skyplan stages outputs itself.
        total = sum(_values.size_gb(value, "a size in GB")
                    for _, value in fields["outputs"].entries("a mapping of URI to GB"))
        return _ranges.DATA_GB.check(fields["outputs"], total, "outputs in GB in all")
    return 0.0


def _hours(node: Node | None, options: tuple[ResourceOption, ...]) -> tuple[float, tuple[tuple[str, float], ...], bool]:
    """(hours, hours per accelerator, given). A mapping must cover every accelerator the task
    accepts, or carry a `default` for the rest (and for CPU-only shapes)."""
    if node is None or node.is_null:
        return _DEFAULT_HOURS, (), False
    if not node.is_mapping:
        return _values.duration_hours(node), (), True
    accepted = {option.accelerator.name.lower(): option.accelerator.name
                for option in options if option.accelerator is not None}
    by_accelerator: dict[str, float] = {}
    fallback: float | None = None
    for key, value in node.entries(f"{_values.HOURS_EXAMPLE}, or a mapping of accelerator to hours"):
        written = key.yaml.value
        if written == _HOURS_FALLBACK_KEY:
            fallback = _values.duration_hours(value)
            continue
        name = _values.canonical_accelerator(key, written.partition(":")[0].strip())
        if name.lower() not in accepted:
            choices = ", ".join(accepted.values()) or "none"
            key.fail(f"this task does not accept accelerator {name} (its accelerators: {choices})")
        by_accelerator[accepted[name.lower()]] = _values.duration_hours(value)
    if fallback is None:
        missing = [name for name in accepted.values() if name not in by_accelerator]
        if any(option.accelerator is None for option in options):
            missing.append("shapes without an accelerator")
        if missing:
            node.fail(f"no runtime estimate for {', '.join(missing)}; add it or a `default: <hours>` entry")
        fallback = max(by_accelerator.values())
    return fallback, tuple(sorted(by_accelerator.items())), True


def _workdir(node: Node) -> str:
    return node.string("a directory path or {url, ref} of a git repository")


def _workdir_git(node: Node) -> tuple[str, str]:
    """SkyPilot's git workdir `{url, ref}` (ref: a branch, tag or commit; optional)."""
    fields = node.fields(("url", "ref"), what="a git workdir {url, ref}")
    if not _given(fields, "url"):
        node.fail("a git workdir needs `url`")
    url = fields["url"].string("a git repository URL").strip()
    ref = fields["ref"].string("a branch, tag or commit").strip() if _given(fields, "ref") else ""
    return url, ref


def _file_mounts(node: Node) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(copied mounts: remote path → local path or URI, storage mounts skyplan records only).

    A SkyPilot storage mount `{source, mode: COPY}` copies its source onto the machine, which is
    what a plain `remote: source` mount does, so it is one (a `name` for the bucket SkyPilot
    would fill from a local source is not created). Other storage mounts (`mode: MOUNT` or
    `MOUNT_CACHED`, SkyPilot's default MOUNT, a bucket by `name` alone) keep a bucket attached
    while the task runs: recorded, refused by apply until skyplan mounts buckets."""
    mounts: dict[str, str] = {}
    storage: dict[str, str] = {}
    for key, value in node.entries("a mapping of remote path to local path or URI"):
        remote = key.string("a remote path")
        if not value.is_mapping:
            mounts[remote] = value.string("a local path or URI")
            continue
        fields = value.fields(("name", "source", "mode", "store", "persistent", "config"),
                              what="a storage mount {name, source, mode, store}")
        mode = fields["mode"].string("COPY, MOUNT or MOUNT_CACHED").strip().upper() if _given(fields, "mode") else "MOUNT"
        if mode not in ("COPY", "MOUNT", "MOUNT_CACHED"):
            fields["mode"].expected("COPY, MOUNT or MOUNT_CACHED")
        source = fields["source"] if _given(fields, "source") else None
        if source is not None and not source.is_scalar:
            source.fail("a storage mount with several sources is not supported; give one path or URI")
        if mode == "COPY" and source is not None:
            mounts[remote] = source.string("a local path or URI")
            if _given(fields, "name"):
                fields["name"].warn("the bucket name of a COPY mount is not created: skyplan copies the source "
                                    "onto the machine through its own storage")
            continue
        if not _given(fields, "name") and source is None:
            value.fail("a storage mount needs `source` or `name`")
        parts = [f"mode {mode}"]
        if _given(fields, "name"):
            parts.append(f"bucket {fields['name'].string('a bucket name').strip()}")
        if source is not None:
            parts.append(f"source {source.string('a local path or URI').strip()}")
        if _given(fields, "store"):
            parts.append(f"store {fields['store'].string('a store name').strip()}")
        storage[remote] = ", ".join(parts)
    return tuple(sorted(mounts.items())), tuple(sorted(storage.items()))


def with_dependency(task: Task, names: tuple[str, ...]) -> Task:
    """The task with `names` as its dependencies (pipelines chain their documents)."""
    return replace(task, depends_on=names)
