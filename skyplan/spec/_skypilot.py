"""SkyPilot resource keys skyplan accepts without acting on them, and SkyPilot's clouds.

`autostop`, `labels`, `job_recovery` (and its old name `spot_recovery`) are checked for shape and
accepted with a compile warning that says what skyplan does instead (the warning is in PLAN.md,
so the review records it): a file written for `sky launch` compiles unchanged, and nothing is
silently dropped.
"""

from __future__ import annotations

from skyplan.spec._nodes import Node

# SkyPilot's clouds that are not skyplan targets (sky/clouds/, `sky check` names, `infra:`
# prefixes). An alternative naming one is dropped with a warning; a task left with none is
# refused naming the cloud and what skyplan targets.
SKYPILOT_CLOUDS = frozenset({
    "kubernetes", "k8s", "lambda", "runpod", "nebius", "oci", "ibm", "scp", "vsphere", "cudo",
    "paperspace", "fluidstack", "do", "vast", "hyperbolic", "slurm", "seeweb", "shadeform",
    "primeintellect", "coreweave", "cloudflare", "r2", "together", "yotta",
})
_RECOVERY_STRATEGIES = ("failover", "eager_next_region")
_RECOVERY_KEYS = ("strategy", "max_restarts_on_errors", "recover_on_exit_codes")


def accept(key: str, node: Node) -> None:
    """Check one accepted-but-not-acted-on key and warn what skyplan does instead."""
    if node.is_null:
        return
    if key == "autostop":
        _autostop(node)
        node.warn("autostop is accepted and has no effect: a skyplan task's machine is deleted when the task ends")
    elif key == "labels":
        for label, value in node.entries("a mapping of label names to values"):
            label.string("a label name")
            value.text("a label value")
        node.warn("labels are accepted but not yet set on the machines")
    else:
        _job_recovery(node)
        node.warn(f"{key} is accepted: skyplan recovers by failover (a failed zone is excluded and the plan "
                  "re-solved, up to apply's --max-attempts); a task that exits non-zero is not restarted")


def _autostop(node: Node) -> None:
    if node.is_bool() or node.is_scalar:
        return
    node.fields(("idle_minutes", "down", "wait_for", "hook", "hook_timeout"), what="an autostop mapping")


def _job_recovery(node: Node) -> None:
    if node.is_scalar:
        strategy = node.string("a recovery strategy").strip().lower()
        if strategy not in (*_RECOVERY_STRATEGIES, "none"):
            node.expected(f"a recovery strategy ({', '.join(_RECOVERY_STRATEGIES)})")
        return
    fields = node.fields(_RECOVERY_KEYS, what="a job_recovery mapping")
    if "max_restarts_on_errors" in fields and not fields["max_restarts_on_errors"].is_null:
        fields["max_restarts_on_errors"].number("a number of restarts")
