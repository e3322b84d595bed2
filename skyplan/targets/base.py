"""The one interface every target (aws, gcp, azure, local, ssh) plugs in through.

A target is like a SQL dialect in sqlglot: a table of facts and a few methods, never an
if/else on its name elsewhere. Adding a target = one module here, one template folder under
`templates/<name>/`, one Terraform module under `modules/<name>-node/`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from skyplan.models import FailureScope, Offering, Quota, Spec, TaskPlacement


@dataclass(frozen=True)
class ProviderPin:
    """A provider requirement rendered into `terraform.tf`."""

    local_name: str  # "aws", "google", "google-beta", "azurerm"
    source: str  # "hashicorp/aws"
    version: str  # "~> 6.25"
    schema_file: str  # file name in tests/fixtures/provider-schemas/, for the schema check


@dataclass(frozen=True)
class StackTask:
    """What a stack needs to know about one task placed on its target."""

    placement: TaskPlacement
    cloud_init: str  # the full #cloud-config text for this task (already size-checked)
    executor: str  # the plain executor script (local/ssh run it directly)
    wave: int  # DAG depth: tasks of wave k run after every task of waves < k finished
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class StackContext:
    """Everything `Target.render_stack` may read. Pure data: rendering does no I/O."""

    plan_name: str
    spec: Spec
    tasks: tuple[StackTask, ...]  # the tasks placed on this target, in topological order
    storage: str  # base URI where this run's task outputs are staged
    terraform_version: str  # constraint, e.g. ">= 1.5.0"


@dataclass(frozen=True)
class Failure:
    """A classified provisioning failure."""

    scope: FailureScope
    code: str  # the cloud's error code or our own short name ("InsufficientInstanceCapacity")
    message: str


class Target(abc.ABC):
    """A place tasks can run, seen by the optimizer, the renderer and the apply loop."""

    name: ClassVar[str]
    providers: ClassVar[tuple[ProviderPin, ...]] = ()
    # Whether the optimizer considers this target when the spec does not name it.
    enabled_by_default: ClassVar[bool] = True
    # Its machines cost money: `skyplan apply` creates them only after --auto-approve or a yes at
    # the prompt, they reach storage only through their cloud's identity, and PLAN.md states
    # their cloud-side ceiling.
    paid: ClassVar[bool] = False
    # `skyplan catalog refresh NAME` re-prices it from the cloud's price API (skyplan/refresh/NAME.py).
    refreshes_prices: ClassVar[bool] = False

    @property
    def user_data_limit(self) -> int | None:
        """Bytes of cloud-init user data its machines accept (before base64); None: no limit."""
        return None

    def apply_blockers(self, spec: Spec, placed: TaskPlacement) -> list[str]:
        """Why `skyplan apply` refuses to run `placed` on this target, though the plan compiles
        (compile warns, apply exits 2 before creating anything). The storage rules common to
        every paid target are `skyplan.pipeline.apply_blockers`'."""
        return []

    def offerings(self, spec: Spec) -> list[Offering]:
        """Offerings this target adds beyond the shipped price catalog (local slots, ssh hosts)."""
        return []

    def capacity(self, spec: Spec) -> tuple[Quota, ...]:
        """Concurrency limits of this target's own machines (slots per local zone, per ssh host),
        expressed as quotas so the optimizer treats them like cloud quotas."""
        return ()

    @abc.abstractmethod
    def render_stack(self, ctx: StackContext) -> dict[str, str]:
        """Return the root stack's files, relative to `DIR/<target>/`, as text.

        Must be a pure function of `ctx`: same input ⇒ byte-identical output."""

    def module_name(self) -> str:
        """Folder under `modules/` that this target's stacks reference (copied into DIR)."""
        return f"{self.name}-node"

    @abc.abstractmethod
    def classify_failure(self, message: str) -> Failure | None:
        """Map an error text (a Terraform diagnostic's summary + detail) to what it rules out.

        Return None when the text is not recognised as a provisioning failure of this target."""

    def storage_uri(self, base: str | None, plan_name: str) -> str:
        """Where a run stages task inputs/outputs for this target, given the spec's `storage`."""
        if base:
            return f"{base.rstrip('/')}/{plan_name}"
        return f"file://.skyplan-storage/{plan_name}"

    # -- apply-time hooks (skyplan/apply/); the defaults suit cloud VMs ----------------------

    # True when `terraform apply` returns only once the task finished (local-exec/remote-exec
    # targets); False when it returns once the machine exists and the task runs on (cloud VMs).
    apply_waits_for_tasks: ClassVar[bool] = False

    def task_status(self, storage: str, task_slug: str) -> dict | None:
        """The task's `status.json` ({exit_code, …}) from `storage`, None while it has none."""
        from skyplan.runstate import read_status

        return read_status(storage, task_slug)

    def stack_variables(self, run_dir: Path, plan: Mapping[str, Any]) -> dict[str, Any]:
        """Extra variables `skyplan apply` passes to this target's stack (besides active_tasks,
        storage, plan), computed at apply time (e.g. ssh host keys from known_hosts)."""
        return {}

    def session(self, run_dir: Path, plan: Mapping[str, Any]) -> AbstractContextManager[dict[str, str]]:
        """Context held for a whole apply/destroy; yields extra environment for Terraform
        (e.g. SSH_AUTH_SOCK of a per-run ssh-agent)."""
        return nullcontext({})

    def local_tools(self) -> tuple[str, ...]:
        """Programs this target runs on this machine (checked on PATH before apply creates
        anything; see `skyplan.preflight`). Cloud targets run nothing here but Terraform."""
        return ()

    def check_machines(self, run_dir: Path, plan: Mapping[str, Any], tasks: list[str]) -> list[str]:
        """Problems found on the machines that would run `tasks` (e.g. a program missing on an
        ssh host), checked before anything is created, inside the run's `session`. A machine
        that cannot be reached is not a problem here: provisioning classifies that."""
        return []

    def reap(self, run_dir: Path) -> list[int]:
        """Stop task processes the run started that Terraform's state may not know about
        (killed or interrupted applies); called after every destroy. Returns what it stopped."""
        return []
