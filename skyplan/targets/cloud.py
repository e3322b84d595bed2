"""What the aws, gcp and azure targets share: templates, user data, storage URIs, error tables."""

from __future__ import annotations

import abc
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml

from skyplan.errors import RenderError, SkyplanError
from skyplan.models import FailureScope, Offering, ResourceOption, Spec, Task, TaskPlacement
from skyplan.targets.base import Failure, StackContext, StackTask, Target
from skyplan.targets.disks import Disk, disk_for
from skyplan.targets.templating import render_templates

# User data. Each task's `cloud-init/<task-slug>.yaml` is written once per task, but two values in
# it are only known when Terraform runs, so the file carries two placeholder words that the node
# modules substitute (everything else in the file is ASCII and user text sits only inside base64,
# so the words cannot occur by accident):
# * STORAGE_TOKEN, the content of /etc/skyplan/storage: the root stack passes var.storage and the
#   node module writes jsonencode(var.storage) there (a JSON string is a valid YAML double-quoted
#   scalar, so any URI stays one YAML value);
# * RANK_TOKEN, the content of /etc/skyplan/node-rank (multi-node tasks only): the node module
#   writes each machine's count.index.
STORAGE_TOKEN = "SKYPLAN_STORAGE_TOKEN"
RANK_TOKEN = "SKYPLAN_NODE_RANK_TOKEN"
_STORAGE_FILE = "/etc/skyplan/storage"
_RANK_FILE = "/etc/skyplan/node-rank"


# ---------------------------------------------------------------------------------------------
# Storage URIs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageRef:
    """A parsed staging URI: `cloud` is aws / gcp / azure, `bucket` the bucket or container."""

    cloud: str
    bucket: str
    prefix: str  # without leading or trailing "/"; "" for the whole bucket
    account: str | None = None  # Azure storage account


def parse_storage(uri: str) -> StorageRef | None:
    """Parse `s3://b/p`, `gs://b/p`, `https://<account>.blob.core.windows.net/<container>/p` or
    `az://<account>/<container>/p`; None for anything else (file://, unknown schemes).

    >>> parse_storage("s3://bkt/runs/ml")
    StorageRef(cloud='aws', bucket='bkt', prefix='runs/ml', account=None)
    """
    from skyplan.storage import backend_for

    cls = backend_for(uri)
    if cls is None or cls.cloud == "local":
        return None
    try:
        store = cls(uri)
    except SkyplanError:  # no bucket or container in the URI
        return None
    return StorageRef(cls.cloud, store.bucket, store.prefix, store.account)


# ---------------------------------------------------------------------------------------------
# Failure classification: a table of (cloud error code or phrase → scope), first match wins
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorRule:
    """One recognised provisioning error: a regex over the text, what it rules out, its name."""

    pattern: re.Pattern[str]
    scope: FailureScope
    code: str


def rule(pattern: str, scope: FailureScope, code: str) -> ErrorRule:
    """An ErrorRule matching `pattern` anywhere in the text.

    Case-sensitive on purpose: error codes are exact (`quotaExceeded` is GCP's reason,
    `QuotaExceeded` Azure's code), and so are the clouds' fixed message phrases."""
    return ErrorRule(re.compile(pattern, re.DOTALL), scope, code)


def classify(rules: tuple[ErrorRule, ...], message: str) -> Failure | None:
    """The Failure of the first rule whose pattern occurs in `message`, else None."""
    for r in rules:
        if r.pattern.search(message):
            return Failure(r.scope, r.code, message.strip())
    return None


# ---------------------------------------------------------------------------------------------
# Templates (rendering lives in skyplan.targets.templating)
# ---------------------------------------------------------------------------------------------


def hcl_list(values: list[str]) -> str:
    """A one-line HCL list of string literals."""
    from skyplan.hcl import hcl_string

    return "[" + ", ".join(hcl_string(v) for v in values) + "]"


# ---------------------------------------------------------------------------------------------
# Per-task facts every cloud stack needs
# ---------------------------------------------------------------------------------------------


def chosen_option(task: Task, offering: Offering) -> ResourceOption:
    """The task's resource option the offering was chosen for (most preferred that fits).

    The placement records the offering, not the option; options differ in disk, ports and image,
    so pick the first option (by preference) whose cloud, instance type and accelerator match.
    """
    def fits(opt: ResourceOption) -> bool:
        if opt.cloud not in (None, offering.cloud):
            return False
        if opt.instance_type not in (None, offering.instance_type):
            return False
        wanted = opt.accelerator.name if opt.accelerator else None
        return wanted is None or wanted == offering.accelerator

    ranked = sorted(task.options, key=lambda o: o.preference)
    return next((o for o in ranked if fits(o)), ranked[0])


@dataclass(frozen=True)
class NodeFacts:
    """One task's placement, in the words a node module needs."""

    name: str  # exact spec name (key of active_tasks and of the `tasks` output)
    module: str  # Terraform identifier of its module block
    slug: str  # cloud-safe name: resource names, tags, cloud-init file name
    region: str
    zone: str | None
    instance_type: str
    accelerator: str | None
    accelerator_count: int
    spot: bool
    num_nodes: int
    disk_gb: int
    ports: tuple[int, ...]
    ingress_from: tuple[str, ...]  # the sources `ports` are open to (compile refuses ports without one)
    image_id: str | None
    ceiling_s: int  # cloud-side lifetime of its VMs (skyplan/ceiling.py)
    disk: Disk | None = None  # from `disk_tier`; None: the node module's default disk


def node_facts(ctx: StackContext, st: StackTask) -> NodeFacts:
    """Collect the facts of one placed task."""
    from skyplan.ceiling import ceiling_seconds
    from skyplan.executor import task_slug
    from skyplan.hcl import hcl_identifier

    cand = st.placement.candidate
    off = cand.offering
    task = ctx.spec.task(st.placement.task)
    opt = chosen_option(task, off)
    if opt.ports and not (task.ingress_from or ctx.spec.ingress_from):
        # compile refuses this first (pipeline.check_open_ports); a stack never opens ports to all
        raise RenderError(f"task {task.name}: ports {list(opt.ports)} without `ingress_from`")
    return NodeFacts(
        name=task.name,
        module=hcl_identifier(task.name),
        slug=task_slug(task.name),
        region=off.location.region,
        zone=off.location.zone,
        instance_type=off.instance_type,
        accelerator=off.accelerator,
        accelerator_count=off.accelerator_count,
        spot=cand.spot,
        num_nodes=cand.num_nodes,
        disk_gb=opt.disk_gb,
        ports=tuple(sorted(set(opt.ports))),
        ingress_from=task.ingress_from or ctx.spec.ingress_from,
        # `docker:<image>` is a container to run the task in, not a machine image: the machine
        # gets the target's default image (apply refuses such a plan until containers run).
        image_id=None if container_image(opt) else opt.image_id,
        ceiling_s=ceiling_seconds(cand.hours),
        disk=disk_for(off.location.cloud, off.instance_type, opt.disk_tier),
    )


def container_image(option: ResourceOption) -> str | None:
    """The container image of SkyPilot's `image_id: docker:<image>`, else None."""
    image = option.image_id or ""
    return image[len("docker:"):] if image.startswith("docker:") else None


def machine_name(plan_name: str, task_name: str) -> str:
    """Base name of a task's machines and per-task resources: `<plan>-<task>`, at most 53 characters.

    GCE names allow 63 characters and Azure VM names 64, and the modules append `-<node>`, `-ip`,
    `-nic` or `-ports`; both parts come from `cloud_name`, so the result is a valid name on every
    cloud and stays unique (a shortened part carries a hash of the full name).
    """
    from skyplan.hcl import cloud_name

    return f"{cloud_name(plan_name, max_len=16)}-{cloud_name(task_name, max_len=36)}"


def region_alias(region: str) -> str:
    """Provider alias / identifier part for a catalog region or zone name (`us-east-1` → `us_east_1`)."""
    return re.sub(r"[^a-z0-9_]", "_", region.lower())


# ---------------------------------------------------------------------------------------------
# The base class
# ---------------------------------------------------------------------------------------------


class CloudTarget(Target):
    """A public cloud: VMs booted with cloud-init, failures classified from the cloud's error codes."""

    paid: ClassVar[bool] = True
    refreshes_prices: ClassVar[bool] = True

    @property
    def user_data_limit(self) -> int | None:
        from skyplan.executor import USER_DATA_LIMITS

        return USER_DATA_LIMITS.get(self.name)

    def apply_blockers(self, spec: Spec, placed: TaskPlacement) -> list[str]:
        """Secrets and multi-node tasks reach only local and ssh machines so far."""
        task, cloud = spec.task(placed.task), placed.candidate.location.cloud
        blockers = []
        if task.secrets:
            blockers.append(
                f"task {placed.task} needs secrets ({', '.join(task.secrets)}) on {cloud}: "
                "secrets reach local and ssh tasks only so far; allow only those for it"
            )
        if placed.candidate.num_nodes > 1:
            blockers.append(
                f"task {placed.task} has {placed.candidate.num_nodes} nodes on {cloud}: multi-node "
                "tasks get no node-to-node network or node list on clouds yet"
            )
        return blockers

    error_rules: ClassVar[tuple[ErrorRule, ...]] = ()

    def classify_failure(self, message: str) -> Failure | None:
        """Classify by the cloud's own error code or phrase (see `error_rules`)."""
        return classify(self.error_rules, message)

    def render_stack(self, ctx: StackContext) -> dict[str, str]:
        """Render `templates/<cloud>/` with the values of `stack_values` and the provider pins."""
        from skyplan.targets import get_target
        from skyplan.targets.access import GRANTS, cross_cloud_access, render_access, user_data_expression

        values = self.stack_values(ctx)
        access = cross_cloud_access(self.name, parse_storage(ctx.storage))
        for t in values["tasks"]:
            t["user_data"] = user_data_expression(access, t["slug"], t.get("rident"))
        values["access_grants"] = list(GRANTS[(access.task_cloud, access.storage.cloud)]) if access else []
        pins = [p for p in self.providers if p.local_name in values.get("provider_names", [p.local_name])]
        if access:
            # The storage cloud's main provider: the trust and the grant are made there.
            pins.append(get_target(access.storage.cloud).providers[0])
            pins.sort(key=lambda p: p.local_name)
        files = render_templates(self.name, pins=pins, **values)
        if access:
            files["storage_access.tf"] = render_access(access, values)
        return files

    @abc.abstractmethod
    def stack_values(self, ctx: StackContext) -> dict[str, Any]:
        """The template values of this cloud's root stack (pure)."""

    def user_data(self, script: str, *, task: Task, plan_name: str, storage: str,
                  ceiling_s: int | None = None) -> str:
        """The task's user-data file: the executor's cloud-config with STORAGE_TOKEN / RANK_TOKEN.

        `ceiling_s` arms the VM's own ceiling timer, which runs this cloud's end script
        (`skyplan.endstep`) and powers off.

        The size is checked against the cloud's limit with the real storage URI and the largest
        rank in place.

        Raises:
            RenderError: the result is over the cloud's user-data limit, or the executor's
                cloud-config no longer has the shape this relies on.
        """
        from skyplan.endstep import END_MACHINE
        from skyplan.executor import check_user_data, cloud_init
        from skyplan.targets.access import ACCESS_TOKEN, cross_cloud_access, with_access

        text = cloud_init(script, task_name=task.name, plan_name=plan_name, storage=STORAGE_TOKEN,
                          ceiling_s=ceiling_s, end_machine=END_MACHINE.get(self.name))
        anchor = f"  content: {STORAGE_TOKEN}\n"
        if text.count(anchor) != 1:
            raise RenderError(f"task {task.name!r}: the executor's cloud-config has no storage entry to fill")
        if task.num_nodes > 1:
            rank = f"- path: {_RANK_FILE}\n  permissions: '0644'\n  content: {RANK_TOKEN}\n"
            text = text.replace(anchor, anchor + rank)
        if cross_cloud_access(self.name, parse_storage(storage)):
            try:
                text = with_access(text)
            except ValueError as exc:
                raise RenderError(f"task {task.name!r}: {exc}") from None
        # What the VM will really receive: the real storage URI, JSON-quoted, and the largest rank.
        # access.env: about 700 characters with the longest ARNs and audiences.
        worst = (text.replace(STORAGE_TOKEN, json.dumps(storage)).replace(RANK_TOKEN, f"'{task.num_nodes - 1}'")
                 .replace(ACCESS_TOKEN, json.dumps("X" * 700)))
        doc = yaml.load(worst, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        paths = [f.get("path") for f in doc.get("write_files", [])] if isinstance(doc, dict) else []
        if paths.count(_STORAGE_FILE) != 1 or paths.count(_RANK_FILE) != (task.num_nodes > 1):
            raise RenderError(f"task {task.name!r}: the executor's cloud-config has an unexpected shape")
        check_user_data(self.name, worst, task_name=task.name)
        return text
