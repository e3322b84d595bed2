"""SkyPilot resource keys skyplan accepts without acting on them, and SkyPilot's clouds.

`autostop`, `labels`, `network_tier`, `job_recovery` (and its old name `spot_recovery`) are checked and
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
    elif key == "network_tier":
        tier = node.string("standard or best").strip().lower()
        if tier not in ("standard", "best"):
            node.expected("standard or best")
        if tier == "best":
            node.warn("network_tier best is accepted, but machines get their cloud's standard network (no EFA, "
                      "GPUDirect or InfiniBand is set up): multi-node collectives run slower than under SkyPilot")
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


# `config:` sections for SkyPilot clouds and features skyplan does not target: no effect.
_CONFIG_NOT_TARGETED = frozenset(SKYPILOT_CLOUDS | {"ssh"})
# Per-cloud config keys, for the clouds skyplan targets.
_REMOTE_IDENTITY = "remote_identity"
# skyplan's machines reach storage through their own cloud's identity and never get local
# credentials: the SkyPilot settings that mean the same are accepted, the others refused.
_IDENTITY_LIKE_SKYPLAN = ("SERVICE_ACCOUNT", "NO_UPLOAD")


def config(node: Node) -> None:
    """SkyPilot's per-task `config:` overrides: those that change nothing for skyplan's targets are
    accepted with a warning; those skyplan would have to honour and cannot are refused by name."""
    for section, value in node.entries("a mapping of SkyPilot config sections"):
        name = section.string("a config section").strip()
        if name in _CONFIG_NOT_TARGETED:
            value.warn(f"config.{name} has no effect: skyplan does not target {name}")
            continue
        if name in ("aws", "gcp", "azure") and value.is_mapping:
            for key, setting in value.entries(f"config.{name} settings"):
                _cloud_setting(name, key.string("a setting name"), key, setting)
            continue
        if name == "docker":
            section.fail("config.docker cannot be honoured yet: skyplan does not run tasks in containers yet; remove it")
        section.fail(f"config.{name} cannot be honoured: skyplan renders its own Terraform for each cloud and "
                     f"has no such setting; remove it")


def _cloud_setting(cloud: str, key: str, where: Node, value: Node) -> None:
    if key == _REMOTE_IDENTITY and value.is_scalar and value.text().strip().upper() in _IDENTITY_LIKE_SKYPLAN:
        value.warn(f"config.{cloud}.remote_identity {value.text().strip()} is what skyplan does anyway: machines "
                   "reach storage through their own cloud identity and never get local credentials")
        return
    if key == _REMOTE_IDENTITY:
        where.fail(f"config.{cloud}.remote_identity {value.text() if value.is_scalar else ''} cannot be honoured: "
                   "skyplan never copies local credentials to machines (they use their cloud identity)")
    where.fail(f"config.{cloud}.{key} cannot be honoured: skyplan renders its own Terraform for {cloud} and has "
               "no such setting; remove it")
