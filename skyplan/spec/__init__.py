"""The Spec stage: a job-DAG YAML file (skyplan's format or SkyPilot's) read into a checked `Spec`.

Three file shapes are read:

- a skyplan DAG file: top-level `name` and `tasks:` (see DESIGN.md "Spec format");
- a SkyPilot task YAML (no `tasks:`; `resources`/`setup`/`run`/… at the top): a one-task DAG named
  after its `name`, or the file stem; spec-level keys (`objective`, `deadline`, …) may sit beside;
- a SkyPilot pipeline YAML (documents separated by `---`; a first document holding only `name`
  and spec-level keys names the DAG): a chain, each task depending on the one before.
  Tasks without a `name` there are called `task-1`, `task-2`, … by position.

Every error is a `SpecError` naming the file, the line and the key path. Key paths read
`deadline`, `tasks[train].resources.cpus` (a task is named by its `name` once that is read;
`tasks[3]`, 0-based, before), and in SkyPilot-shaped files simply `resources.cpus`.
Keys skyplan cannot honour (SkyPilot's `service`, `pool`, `volumes`, …) are refused by name;
SkyPilot keys skyplan accepts without acting on them (`autostop`, `labels`, `job_recovery`,
`network_tier`, `config:` for untargeted clouds) compile with a warning saying what skyplan does
instead (`_skypilot.py`); unknown keys are refused with a "did you mean". Every number has a range (`_ranges.py`,
README's table); a file over 16 MiB, YAML nested deeper than 64 levels, or bytes that are not
UTF-8 fail as one SpecError too. Where the keys that constrain a plan are written goes to
`Spec.origin`, so that infeasibility found later still points at file:line:key.

Defaults: a resource shape naming no cpus, memory, accelerator or instance type gets `cpus: 2+`
(so no `resources` at all means one `cpus: 2+` shape); a task without `hours` is planned as 1 hour
with `hours_given=False`; `allowed` keys given on a task replace the top-level ones (`Task.allowed`
is the effective restriction).

`hours` is a number of hours, a duration (`36h`, `90m`, `2d`, `1h30m`), or a mapping accelerator →
hours that covers every accelerator the task accepts (or has a `default:` entry for the rest).

Quotas (`quotas:` in the spec, or a file of the same list, or a path to such a file relative to
the spec)::

    quotas:
      - {name: aws-g-vcpus, cloud: aws, region: us-east-1, family: "g*", spot: false, vcpus: 64}
      - {name: gcp-a100, cloud: gcp, accelerator: A100, per: region, accelerators: 16}
      - {cloud: azure, nodes: 10}                 # named "azure-nodes"

Exactly one of `vcpus` / `accelerators` / `nodes` is the limit; `per: region` makes it hold in each
region separately; `cloud`, `region` (glob), `zone` (glob), `family` (instance-type glob),
`accelerator` and `spot` narrow which offerings count. A quota without `name` gets one made of its
match values and resource (`aws-us-east-1-g*-on-demand-vcpus`).

Pools (`pools:` in the spec, a file of the same list, or a path), the user's machines for the ssh
target; each host is a zone of the pool, so host names are unique across pools::

    pools:
      - name: lab
        hourly_cost: 0.5          # amortized USD per host-hour, default 0
        region: on-prem           # default
        user: ubuntu              # default for hosts (a host without any user is an error)
        key: ~/.ssh/id_ed25519    # default for hosts
        hosts:
          - {name: gpu1, address: 10.0.0.5, port: 22, cpus: 32, memory: 128, accelerators: "A100:4"}

A host's `name` defaults to its address; `cpus` and `memory` (GiB) default to 1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TypeVar

from skyplan.errors import SpecError
from skyplan.models import Allowed, Objective, Pool, Quota, SourcePos, Spec, Task
from skyplan.spec import _ranges, _values
from skyplan.spec._capacity import parse_pools, parse_quotas
from skyplan.spec._dag import order_tasks
from skyplan.spec._nodes import Node, Source
from skyplan.spec._tasks import (
    HINTS,
    REFUSED,
    TASK_KEYS,
    parse_allowed,
    parse_task,
    task_fields,
    task_name,
    with_dependency,
)
from skyplan.spec._values import parse_duration_hours

__all__ = ["load_spec", "load_quotas", "load_pools", "parse_duration_hours"]

_SPEC_KEYS = ("name", "objective", "deadline", "budget", "allowed", "exclude_zones", "storage",
              "quotas", "pools", "ingress_from")
_TASK_KEY_HINT = "it is a task key; move it under a task in `tasks:`"
_T = TypeVar("_T")


def load_spec(path: str | Path, *, known_accelerators: Collection[str] = (), text: str | None = None) -> Spec:
    """Read and check a spec file.

    Args:
        path: the spec file; reported as given in errors and in `Spec.source_file`.
        known_accelerators: the catalog's accelerator names ("A100", "tpu-v5p-8", …); names in
            the spec are matched case-insensitively and take the catalog's spelling. Empty ⇒
            accelerator names are kept as written and not checked.
        text: the file's content, when already read (then `path` is only its name).
    Returns:
        The spec, tasks topologically sorted (spec order among tasks ready together).
    Raises:
        SpecError: anything wrong, with file, line and key.
    """
    file = str(path)
    data = _read(file) if text is None else _encode(file, text)
    _check_size(file, data)
    source = Source.for_file(file, known_accelerators)
    documents = source.compose_all(_decode(file, data))
    if not documents:
        raise SpecError(SourcePos(file, 0, "(top level)"), "the spec is empty; expected a mapping with `tasks:`")
    stem = Path(file).stem or "spec"
    if len(documents) > 1:
        spec = _pipeline(documents, stem)
    elif documents[0].is_mapping and any(k.yaml.value == "tasks" for k, _ in documents[0].entries()):
        spec = _dag_file(documents[0])
    else:
        spec = _task_file(documents[0], stem)
    return Spec(
        **spec,
        source_file=file,
        source_sha256=hashlib.sha256(data).hexdigest(),
        warnings=tuple(source.warnings),
        origin=dict(sorted(source.origin.items())),
    )


def load_quotas(path: str | Path, *, known_accelerators: Collection[str] = ()) -> tuple[Quota, ...]:
    """Quotas from a file holding the list `quotas:` takes (or a mapping with a `quotas:` key).

    `known_accelerators` canonicalises `accelerator:` names as in `load_spec`."""
    return _load_list_file(str(path), "quotas", parse_quotas, Source.for_file(str(path), known_accelerators))


def load_pools(path: str | Path, *, known_accelerators: Collection[str] = ()) -> tuple[Pool, ...]:
    """Pools from a file holding the list `pools:` takes (or a mapping with a `pools:` key).

    `known_accelerators` canonicalises hosts' accelerator names as in `load_spec`."""
    return _load_list_file(str(path), "pools", parse_pools, Source.for_file(str(path), known_accelerators))


# -- file shapes ----------------------------------------------------------------------------------


def _dag_file(node: Node) -> dict:
    hints = {key: _TASK_KEY_HINT for key in TASK_KEYS if key not in _SPEC_KEYS}
    fields = node.fields((*_SPEC_KEYS, "tasks"), refused=REFUSED, hints=hints, what="a spec mapping")
    if "name" not in fields:
        node.fail("a spec with `tasks:` needs a `name`")
    settings = _spec_settings(fields)
    tasks_node = fields["tasks"]
    items = tasks_node.items("a list of tasks")
    if not items:
        tasks_node.expected("at least one task")
    tasks: list[Task] = []
    dependency_pos: dict[str, SourcePos] = {}
    for item in items:
        name_node = dict((k.yaml.value, v) for k, v in item.entries("a task mapping")).get("name")
        if name_node is None:
            item.fail("a task needs a `name`")
        name = task_name(name_node)
        _check_unique(name_node, name, tasks)
        keyed = Node(item.source, item.yaml, f"tasks[{name}]")
        task_node_fields = task_fields(keyed)
        tasks.append(parse_task(keyed, task_node_fields, name=name, spec_allowed=settings["allowed"]))
        if "depends_on" in task_node_fields:
            dependency_pos[name] = task_node_fields["depends_on"].pos()
    return {**settings, "tasks": order_tasks(tasks, dependency_pos)}


def _task_file(node: Node, stem: str) -> dict:
    """A SkyPilot task YAML: one task, spec-level keys allowed beside the task's."""
    if not node.is_mapping:
        node.expected("a mapping (a skyplan spec with `tasks:` or a SkyPilot task)")
    fields = task_fields(node, also_known=_SPEC_KEYS)
    if "depends_on" in fields:
        fields["depends_on"].fail("a single-task file has nothing to depend on")
    settings = _spec_settings({k: v for k, v in fields.items() if k in _SPEC_KEYS})
    name = task_name(fields["name"]) if "name" in fields else stem
    settings["name"] = name
    task = parse_task(node, {k: v for k, v in fields.items() if k not in _SPEC_KEYS or k == "name"},
                      name=name, spec_allowed=settings["allowed"])
    return {**settings, "tasks": (task,)}


def _pipeline(documents: list[Node], stem: str) -> dict:
    """A SkyPilot pipeline YAML: an optional header document, then a chain of tasks."""
    header: dict[str, Node] = {}
    first = documents[0]
    if first.is_mapping and all(k.yaml.value in _SPEC_KEYS for k, _ in first.entries()):
        header = first.fields(_SPEC_KEYS)
        documents = documents[1:]
    settings = _spec_settings(header)
    if "name" not in settings:
        settings["name"] = stem
    hints = {**HINTS, **{key: "it applies to the whole pipeline; move it to the first document"
                         for key in _SPEC_KEYS if key != "name"},
             "tasks": "a pipeline's documents are its tasks; use a single document with `tasks:` for a DAG"}
    tasks: list[Task] = []
    for number, document in enumerate(documents, start=1):
        if not document.is_mapping:
            document.expected("a task mapping")
        fields = document.fields(TASK_KEYS, refused=REFUSED, hints=hints, what="a task mapping")
        if "depends_on" in fields:
            fields["depends_on"].fail("a pipeline runs its documents in order; use a `tasks:` file to give "
                                      "other dependencies")
        name = task_name(fields["name"]) if "name" in fields else f"task-{number}"
        _check_unique(fields.get("name") or document, name, tasks)
        task = parse_task(document, fields, name=name, spec_allowed=settings["allowed"])
        tasks.append(with_dependency(task, (tasks[-1].name,) if tasks else ()))
    if not tasks:
        first.fail("the pipeline has no tasks; add documents after `---`")
    return {**settings, "tasks": tuple(tasks)}


def _check_unique(node: Node, name: str, tasks: list[Task]) -> None:
    for earlier in tasks:
        if earlier.name == name:
            line = earlier.pos.line if earlier.pos else 0
            node.fail(f"task name `{name}` is used twice (first at line {line})")


# -- spec-level keys -----------------------------------------------------------------------------


def _spec_settings(fields: dict[str, Node]) -> dict:
    """Keyword arguments for `Spec` from the spec-level keys (all but tasks and source info)."""
    given = {key: node for key, node in fields.items() if not node.is_null}
    settings: dict = {"allowed": Allowed()}
    if "name" in fields:
        settings["name"] = fields["name"].string("a name for the spec")
    if "objective" in given:
        settings["objective"] = _objective(given["objective"])
    for key in ("deadline", "budget"):
        if key in given:
            given[key].source.origin[key] = given[key].pos()
    if "deadline" in given:
        settings["deadline_hours"] = _values.duration_hours(given["deadline"], _ranges.DEADLINE)
    if "budget" in given:
        settings["budget"] = _values.money(given["budget"])
    if "allowed" in given:
        settings["allowed"] = parse_allowed(given["allowed"], origin_key="allowed")
    if "exclude_zones" in given:
        settings["exclude_zones"] = _exclude_zones(given["exclude_zones"])
    if "storage" in given:
        settings["storage"], settings["storage_region"] = _storage(given["storage"])
    if "quotas" in given:
        settings["quotas"] = _included(given["quotas"], "quotas", parse_quotas)
    if "pools" in given:
        settings["pools"] = _included(given["pools"], "pools", parse_pools)
    if "ingress_from" in given:
        settings["ingress_from"] = _values.ingress_cidrs(given["ingress_from"])
    return settings


def _storage(node: Node) -> tuple[str, str | None]:
    """`storage: s3://bucket/prefix`, or `{uri: …, region: us-east-1}` to name the bucket's region
    so that the optimizer prices the data's path through it (skyplan/transfers.py)."""
    if not node.is_mapping:
        return node.string("a storage URI like s3://bucket/prefix").strip(), None
    fields = node.fields(("uri", "region"), what="a storage URI or a mapping {uri, region}")
    if "uri" not in fields:
        node.fail("storage needs `uri`")
    uri = fields["uri"].string("a storage URI like s3://bucket/prefix").strip()
    region = fields["region"].string("a region name").strip() if "region" in fields else None
    return uri, region or None


def _exclude_zones(node: Node) -> tuple[str, ...]:
    """Distinct zone tokens, each remembered where first written (`exclude_zones[<token>]`)."""
    what = "a list of zone names"
    items = [node] if node.is_scalar else node.items(what)
    zones: dict[str, None] = {}
    for item in items:
        token = item.string(what).strip()
        if token not in zones:
            zones[token] = None
            node.source.origin[f"exclude_zones[{token}]"] = item.pos()
    return tuple(zones)


def _objective(node: Node) -> Objective:
    value = node.text("cost or time").strip().lower()
    if value not in (Objective.COST.value, Objective.TIME.value):
        node.expected("cost or time")
    return Objective(value)


def _included(node: Node, key: str, parse: Callable[[Node], tuple[_T, ...]]) -> tuple[_T, ...]:
    """The list written in place, or read from the file the string names (relative to the spec)."""
    if not node.is_scalar:
        return parse(node)
    file = str(node.source.base_dir / Path(node.string(f"a list of {key} or a file path")).expanduser())
    source = Source(file, Path(file).parent, node.source.accelerators, node.source.warnings, node.source.origin)
    if not Path(file).is_file():
        node.fail(f"cannot read {key} file {file}: {'not a file' if Path(file).exists() else 'no such file'}")
    return _parse_list_document(source, file, _decode(file, _read(file)), key, parse)


def _load_list_file(file: str, key: str, parse: Callable[[Node], tuple[_T, ...]], source: Source) -> tuple[_T, ...]:
    return _parse_list_document(source, file, _decode(file, _read(file)), key, parse)


def _parse_list_document(source: Source, file: str, text: str, key: str,
                         parse: Callable[[Node], tuple[_T, ...]]) -> tuple[_T, ...]:
    documents = source.compose_all(text)
    if len(documents) != 1:
        raise SpecError(SourcePos(file, 0, key), f"expected one YAML document holding a list of {key}")
    node = documents[0]
    if node.is_mapping:
        fields = node.fields((key,), what=f"a list of {key}")
        if key not in fields:
            node.expected(f"a list of {key}")
        node = fields[key]
    return parse(node)


# -- reading -------------------------------------------------------------------------------------


# A 1,000-task spec is ~200 KB; PyYAML reads ~4 MB/s, so this bounds a parse to seconds (and
# memory to a few hundred MB) whatever file is passed by mistake.
MAX_SPEC_BYTES = 16 * 1024 * 1024


def _read(file: str) -> bytes:
    try:
        with open(file, "rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(SourcePos(file, 0, "(file)"), f"cannot read the file: {exc.strerror or exc}") from None
    _check_size(file, data)
    return data


def _check_size(file: str, data: bytes) -> None:
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(SourcePos(file, 0, "(file)"),
                        f"the file is larger than {MAX_SPEC_BYTES // (1024 * 1024)} MiB, the limit for a spec; "
                        "move long scripts into files under `workdir`")


def _encode(file: str, text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, from text decoded with surrogateescape
        line = text[: exc.start].count("\n") + 1
        raise SpecError(SourcePos(file, line, "(file)"), "the file is not UTF-8 text") from None


def _decode(file: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpecError(SourcePos(file, line, "(file)"), "the file is not UTF-8 text") from None
