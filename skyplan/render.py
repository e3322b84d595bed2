"""Render stage: a Placement becomes the reviewable output directory (pure; same input ⇒ same bytes).

Output (DESIGN.md "Output layout"): `plan.json`, `PLAN.md`, one Terraform root stack per target
used (`<target>/terraform.tf providers.tf main.tf variables.tf outputs.tf`, plus whatever extra
files the target writes), `cloud-init/<task-slug>.yaml` per task placed on a cloud, and a copy of
`modules/<target>-node/**` so the directory is self-contained. `skyplan/outdir.py` writes them,
with `MANIFEST.sha256`, and never overwrites or removes a file skyplan did not write.

Root stack contract (what `skyplan apply` relies on; every target honours it):

* `variable "active_tasks"` (set(string), default []): the exact spec names of the tasks whose
  machines must exist now. Every task's module is `count = contains(var.active_tasks, "<name>")
  ? 1 : 0`; cloud stacks also gate their shared pieces (network, images, identity) on "some task
  of this region / zone / stack is active", so `active_tasks = []` means nothing exists at all.
  Terraform keeps strings in Unicode NFC, so names are compared (and output keys returned) NFC.
* `variable "storage"` (string, default: the run's staging URI) reaches every machine as the file
  `/etc/skyplan/storage`, which the executor reads (cloud stacks substitute it into the user
  data; see skyplan/targets/cloud.py). `variable "plan"` defaults to the plan name.
* `output "tasks"`: a map keyed by task name; every entry has `active` (bool), `ids`, `names`,
  `private_ips`, `public_ips` (lists, one per node; empty while inactive) and `zone` (the plan's
  zone: AWS zone ID, GCP zone, or for Azure the region); cloud stacks add `region`. Read it with
  `terraform output -json tasks`.
* Machines end themselves: the executor powers the machine off when the task ends. On AWS that
  terminates the instance (`instance_initiated_shutdown_behavior = "terminate"`); on GCP and
  Azure the VM stops (no more compute billing) and apply destroys it by dropping the task from
  `active_tasks`. Apply must drop a finished task before it next applies that stack: a task
  still listed whose AWS instance terminated itself (or whose Spot VM was reclaimed) is created
  again, and runs again.
"""

from __future__ import annotations

from skyplan.errors import RenderError
from skyplan.models import Placement, Spec
from skyplan.outdir import CLOUD_INIT_DIR, MODULES_DIR

TERRAFORM_VERSION = ">= 1.5.0"
PLAN_JSON = "plan.json"
PLAN_MD = "PLAN.md"



def waves(spec: Spec) -> dict[str, int]:
    """DAG depth of every task: 0 for tasks without dependencies, else 1 + the deepest dependency.

    >>> from skyplan.models import Task
    >>> waves(Spec("p", (Task("a", ()), Task("b", (), depends_on=("a",)))))
    {'a': 0, 'b': 1}
    """
    depth: dict[str, int] = {}
    # spec.tasks is topologically sorted, so every dependency is seen before its dependants.
    for task in spec.tasks:
        depth[task.name] = 1 + max((depth[d] for d in task.depends_on), default=-1)
    return depth


def render(spec: Spec, placement: Placement, *, plan_json: str, plan_md: str) -> dict[str, bytes]:
    """Render every file of the output directory.

    Args:
        spec: the parsed spec (commands, envs, options of each task).
        placement: the solver's answer; every task of `spec` must be placed.
        plan_json, plan_md: `plan.json` and `PLAN.md`, already rendered by the caller.

    Returns:
        Relative path → file bytes, sorted by path.

    Raises:
        RenderError: a task is unplaced, a user-data payload is over its cloud's limit, or a
            value cannot be written safely.
    """
    from skyplan.ceiling import ceiling_seconds
    from skyplan.executor import cloud_init, executor_script, task_slug
    from skyplan.targets import get_target
    from skyplan.targets.base import StackContext, StackTask
    from skyplan.targets.cloud import CloudTarget

    depth = waves(spec)
    placed = {tp.task: tp for tp in placement.tasks}
    missing = [t.name for t in spec.tasks if t.name not in placed]
    if missing:
        raise RenderError(f"placement has no machine for task(s) {', '.join(map(repr, missing))}")
    plan_name = spec.name

    files: dict[str, str | bytes] = {PLAN_JSON: plan_json, PLAN_MD: plan_md}
    by_target: dict[str, list[StackTask]] = {}
    storage: dict[str, str] = {}
    for task in spec.tasks:  # topological order
        tp = placed[task.name]
        target = get_target(tp.candidate.offering.cloud)
        if target.name not in storage:
            storage[target.name] = target.storage_uri(spec.storage, plan_name)
        script = executor_script(task, plan_name=plan_name, upstream=task.depends_on)
        if isinstance(target, CloudTarget):
            init = target.user_data(script, task=task, plan_name=plan_name, storage=storage[target.name],
                                    ceiling_s=ceiling_seconds(tp.candidate.hours))
            files[f"{CLOUD_INIT_DIR}/{task_slug(task.name)}.yaml"] = init
        else:
            init = cloud_init(script, task_name=task.name, plan_name=plan_name, storage=storage[target.name])
        by_target.setdefault(target.name, []).append(
            StackTask(placement=tp, cloud_init=init, executor=script, wave=depth[task.name],
                      depends_on=task.depends_on)
        )

    for name in sorted(by_target):
        target = get_target(name)
        ctx = StackContext(plan_name=plan_name, spec=spec, tasks=tuple(by_target[name]),
                           storage=storage[name], terraform_version=TERRAFORM_VERSION)
        for rel, text in target.render_stack(ctx).items():
            files[f"{name}/{rel}"] = text
        files.update(_module_files(target.module_name()))

    return {path: (v.encode("utf-8") if isinstance(v, str) else v) for path, v in sorted(files.items())}


def _module_files(module: str) -> dict[str, bytes]:
    """Every file of `modules/<module>/` (recursively), keyed `modules/<module>/<path>`."""
    from skyplan.assets import modules_dir

    root = modules_dir() / module
    if not root.is_dir():
        raise RenderError(f"skyplan is installed without its Terraform module {module!r} ({root})")
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        # Hidden files (a `.terraform/` of someone's test run, editor backups) are not the module.
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[f"{MODULES_DIR}/{module}/{rel.as_posix()}"] = path.read_bytes()
    return out
