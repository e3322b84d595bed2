"""The `gcp` target: Compute Engine VMs (GPUs attached or built in) and Cloud TPU VMs."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from skyplan.errors import RenderError
from skyplan.models import FailureScope
from skyplan.targets.base import ProviderPin, StackContext
from skyplan.targets.cloud import (
    CloudTarget,
    ErrorRule,
    hcl_list,
    machine_name,
    node_facts,
    parse_storage,
    region_alias,
    rule,
)

# Catalog GPU name → Compute Engine accelerator type ("GPU machine types", Compute Engine docs).
ACCELERATOR_TYPES: dict[str, str] = {
    "A100": "nvidia-tesla-a100",
    "A100-80GB": "nvidia-a100-80gb",
    "H100": "nvidia-h100-80gb",
    "H100-MEGA": "nvidia-h100-mega-80gb",
    "L4": "nvidia-l4",
    "T4": "nvidia-tesla-t4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
    "P4": "nvidia-tesla-p4",
}
# Accelerator-optimized families come with their GPUs; only N1 takes attached ones, through
# guest_accelerator ("Accelerator-optimized machine family", Compute Engine docs).
_BUILT_IN_GPU_FAMILIES = frozenset({"a2", "a3", "a4", "g2", "g4"})
# TPU generation → TPU VM software version ("TPU software versions", Cloud TPU docs).
TPU_RUNTIMES: dict[str, str] = {
    "v2": "tpu-ubuntu2204-base",
    "v3": "tpu-ubuntu2204-base",
    "v4": "tpu-ubuntu2204-base",
    "v5litepod": "v2-alpha-tpuv5-lite",
    "v5p": "v2-alpha-tpuv5",
    "v6e": "v2-alpha-tpuv6e",
}
# Boot images by family. GPUs: the Deep Learning VM "Base" image on Ubuntu 22.04 with the NVIDIA
# 580 driver and CUDA 12.9, supported until 2028 ("Choose an image", Deep Learning VM docs);
# CPUs: Canonical's Ubuntu 22.04 LTS. Both run cloud-init from the user-data metadata key.
_IMAGES: dict[str, tuple[str, str]] = {
    "gpu": ("deeplearning-platform-release", "common-cu129-ubuntu-2204-nvidia-580"),
    "cpu": ("ubuntu-os-cloud", "ubuntu-2204-lts"),
}


def _tpu(instance_type: str) -> tuple[str, str] | None:
    """(accelerator_type, runtime_version) for a catalog TPU slice (`tpu-v5litepod-8`), else None."""
    if not instance_type.startswith("tpu-"):
        return None
    accel = instance_type.removeprefix("tpu-")
    generation = accel.rsplit("-", 1)[0]
    if generation not in TPU_RUNTIMES:
        raise RenderError(f"no TPU software version known for {instance_type!r}")
    return accel, TPU_RUNTIMES[generation]


class GcpTarget(CloudTarget):
    """Compute Engine: one provider alias per region, one `modules/gcp-node` call per task."""

    name: ClassVar[str] = "gcp"
    providers: ClassVar[tuple[ProviderPin, ...]] = (
        ProviderPin("google", "hashicorp/google", "~> 6.50", "google.json.gz"),
        ProviderPin("google-beta", "hashicorp/google-beta", "~> 6.50", "google-beta.json.gz"),
    )
    # Compute Engine error reasons ("Troubleshooting resource availability errors" and "Quotas",
    # Compute Engine docs; Cloud TPU "Troubleshooting"). A global quota (…_ALL_REGIONS,
    # "globally") cannot be escaped by another region, so it rules out the whole cloud.
    error_rules: ClassVar[tuple[ErrorRule, ...]] = (
        rule(r"\brateLimitExceeded\b|\bRATE_LIMIT_EXCEEDED\b|Rate Limit Exceeded", FailureScope.RETRY,
             "rateLimitExceeded"),
        rule(r"ZONE_RESOURCE_POOL_EXHAUSTED|does not have enough resources available to fulfill",
             FailureScope.ZONE, "ZONE_RESOURCE_POOL_EXHAUSTED"),
        rule(r"no more capacity in the zone", FailureScope.ZONE, "tpu-capacity"),
        rule(r"\bstockout\b|\bSTOCKOUT\b", FailureScope.ZONE, "stockout"),
        rule(r"Quota '[A-Z0-9_]*ALL_REGIONS' exceeded|exceeded\.?\s+Limit: [\d.]+ globally", FailureScope.CLOUD,
             "quotaExceeded"),
        rule(r"Quota '[^']*' (?:exceeded|exhausted)|\bquotaExceeded\b|\bQUOTA_EXCEEDED\b", FailureScope.REGION,
             "quotaExceeded"),
        rule(r"Location \S+ is not found or access is unauthorized", FailureScope.ZONE, "notFoundOrUnauthorized"),
        rule(r"machine type .* does not exist in zone|accelerator type .* does not exist in zone",
             FailureScope.ZONE, "unsupportedInZone"),
        rule(r"Compute Engine API has not been used|\bSERVICE_DISABLED\b|\bbillingNotEnabled\b|"
             r"could not find default credentials", FailureScope.CLOUD, "apiOrCredentials"),
    )

    def stack_values(self, ctx: StackContext) -> dict[str, Any]:
        from skyplan.hcl import cloud_name
        from skyplan.targets.access import cross_cloud_access, gcs_condition

        facts = [node_facts(ctx, st) for st in ctx.tasks]
        plan_slug = cloud_name(ctx.plan_name)
        regions: dict[str, dict[str, Any]] = {}
        tasks: list[dict[str, Any]] = []
        images: dict[str, list[str]] = {}
        for f in facts:
            if f.zone is None:
                raise RenderError(f"gcp placement of {f.name!r} has no zone")
            tpu = _tpu(f.instance_type)
            r = regions.setdefault(f.region, {"name": f.region, "alias": region_alias(f.region), "tasks": [],
                                              "tpu": False, "tpu_tasks": []})
            r["tasks"].append(f.name)
            r["tpu"] = r["tpu"] or tpu is not None
            if tpu is not None:
                r["tpu_tasks"].append(f.name)
            family = f.instance_type.split("-", 1)[0]
            gpu = bool(f.accelerator) and tpu is None
            attach = gpu and family not in _BUILT_IN_GPU_FAMILIES
            if attach and f.accelerator not in ACCELERATOR_TYPES:
                raise RenderError(f"task {f.name!r}: no Compute Engine accelerator type known for {f.accelerator!r}")
            kind = "gpu" if gpu else "cpu"
            if tpu is None and not f.image_id:
                images.setdefault(kind, []).append(f.name)
            tasks.append({
                **f.__dict__,
                "alias": r["alias"],
                "tpu": tpu,
                "gpu": gpu,
                "accelerator_type": ACCELERATOR_TYPES[f.accelerator] if attach else "",
                "attach_count": f.accelerator_count if attach else 0,
                "image_expr": f"data.google_compute_image.{kind}[0].self_link" if not f.image_id else None,
                # GCE names: [a-z]([-a-z0-9]*[a-z0-9])?, at most 63 characters (node index appended).
                "vm_name": machine_name(ctx.plan_name, f.name),
                "tag": f"skyplan-{f.slug}",
            })
        storage = parse_storage(ctx.storage)
        gcs = storage if storage and storage.cloud == "gcp" else None
        digest = hashlib.sha256(ctx.plan_name.encode()).hexdigest()[:8]
        # The stack's own network: one subnetwork per region, 10.<i>.0.0/20 (sorted regions).
        region_list = [
            dict(regions[n], tasks=hcl_list(sorted(regions[n]["tasks"])),
                 tpu_tasks=hcl_list(sorted(regions[n]["tpu_tasks"])), cidr=f"10.{i}.0.0/20",
                 subnet_name=f"skyplan-{digest}-{n}"[:63].rstrip("-"))
            for i, n in enumerate(sorted(regions))
        ]
        return {
            "plan_name": ctx.plan_name,
            "plan_slug": plan_slug,
            "storage": ctx.storage,
            "terraform_version": ctx.terraform_version,
            "regions": region_list,
            "first_alias": region_list[0]["alias"],
            # google-beta only when a TPU VM is placed: it is another provider to install.
            "provider_names": ["google", "google-beta"] if any(r["tpu"] for r in region_list) else ["google"],
            "images": [{"kind": k, "project": _IMAGES[k][0], "family": _IMAGES[k][1],
                        "tasks": hcl_list(sorted(v))} for k, v in sorted(images.items())],
            "tasks": tasks,
            "all_tasks": hcl_list(sorted(f.name for f in facts)),
            "gcs": gcs,
            "gcs_condition": gcs_condition(gcs) if gcs else "",
            # The VMs' service account: Cloud Storage's grantee, or the identity another cloud trusts.
            "identity": bool(gcs or cross_cloud_access(self.name, storage)),
            # Service account ids: 6-30 characters, [a-z]([-a-z0-9]*[a-z0-9]).
            "sa_id": f"skyplan-{digest}",
            "net_name": f"skyplan-{digest}",
        }
