"""The `azure` target: Linux VMs in a per-region resource group, virtual network and NSG."""

from __future__ import annotations

from typing import Any, ClassVar

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
from skyplan.targets.templating import aligned

# Marketplace images (publisher, offer, sku). GPU: Microsoft's Ubuntu-HPC 22.04 image, which ships
# the NVIDIA driver, CUDA and InfiniBand drivers ("Azure HPC VM images", Azure docs); CPU:
# Canonical's Ubuntu 22.04 LTS Gen2. azurerm has no data source that searches marketplace
# images, but `azurerm_platform_image` resolves the newest version of a given one, so the
# version is fixed at plan time and shows up in `terraform plan`.
_IMAGES: dict[str, tuple[str, str, str]] = {
    "gpu": ("microsoft-dsvm", "ubuntu-hpc", "2204"),
    "cpu": ("Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"),
}


class AzureTarget(CloudTarget):
    """Azure VMs: one `modules/azure-node` call per task, shared network per region."""

    name: ClassVar[str] = "azure"
    providers: ClassVar[tuple[ProviderPin, ...]] = (
        ProviderPin("azurerm", "hashicorp/azurerm", "~> 4.55", "azurerm.json.gz"),
    )
    # Azure Resource Manager error codes ("Troubleshoot common Azure deployment errors",
    # "Resolve errors for SKU not available", "Allocation failures", Azure docs).
    error_rules: ClassVar[tuple[ErrorRule, ...]] = (
        rule(r"\bTooManyRequests\b|\bRetryableError\b|status 429", FailureScope.RETRY, "TooManyRequests"),
        rule(r"\bZonalAllocationFailed\b|sufficient capacity for the requested VM size in this zone",
             FailureScope.ZONE, "ZonalAllocationFailed"),
        rule(r"\bSkuNotAvailable\b|requested VM size .* is currently not available in location",
             FailureScope.REGION, "SkuNotAvailable"),
        rule(r"\bAllocationFailed\b|\bOverconstrainedAllocationRequest\b|Allocation failed",
             FailureScope.REGION, "AllocationFailed"),
        rule(r"exceeding approved .* quota|\bQuotaExceeded\b|\bOperationNotAllowed\b.*quota",
             FailureScope.REGION, "OperationNotAllowed"),
        rule(r"\bSpotVMEvictionOrCapacity|\bSkuNotAvailableForSpot|Spot .* not available",
             FailureScope.REGION, "SpotCapacity"),
        rule(r"\bReadOnlyDisabledSubscription\b|subscription .* is disabled|\bSubscriptionNotFound\b|"
             r"\bAuthorizationFailed\b|\bInvalidAuthenticationToken", FailureScope.CLOUD, "Subscription"),
    )

    def stack_values(self, ctx: StackContext) -> dict[str, Any]:
        from skyplan.hcl import cloud_name, hcl_string
        from skyplan.targets.access import blob_condition, cross_cloud_access

        facts = [node_facts(ctx, st) for st in ctx.tasks]
        plan_slug = cloud_name(ctx.plan_name)
        regions: dict[str, dict[str, Any]] = {}
        tasks: list[dict[str, Any]] = []
        port_rules = 0
        for f in facts:
            r = regions.setdefault(f.region, {"name": f.region, "ident": region_alias(f.region), "tasks": [],
                                              "images": {}})
            r["tasks"].append(f.name)
            kind = "gpu" if f.accelerator else "cpu"
            if not f.image_id:
                r["images"].setdefault(kind, []).append(f.name)
            port_rules += bool(f.ports)
            tasks.append({
                **f.__dict__,
                "kind": kind,
                "image_ident": f"{kind}_{r['ident']}",
                "rident": r["ident"],
                # NSG rule priorities are unique per group, 100-4096 ("Network security groups").
                "priority": 100 + port_rules,
                # Linux VM names: at most 64 characters; the node index is appended.
                "vm_name": machine_name(ctx.plan_name, f.name),
            })
        storage = parse_storage(ctx.storage)
        blob = storage if storage and storage.cloud == "azure" and storage.account else None
        region_list = []
        for name in sorted(regions):
            r = regions[name]
            region_list.append({
                **r,
                "tasks": hcl_list(sorted(r["tasks"])),
                "images": [{"kind": k, "ident": f"{k}_{r['ident']}", "publisher": _IMAGES[k][0], "offer": _IMAGES[k][1],
                            "sku": _IMAGES[k][2]} for k in sorted(r["images"])],
                "rg": f"skyplan-{plan_slug}-{name}",
            })
        return {
            "plan_name": ctx.plan_name,
            "plan_slug": plan_slug,
            "storage": ctx.storage,
            "terraform_version": ctx.terraform_version,
            "regions": region_list,
            "region_pairs": aligned([(hcl_string(r["name"]), r["tasks"]) for r in region_list], 4),
            "tasks": tasks,
            "blob": blob,
            "blob_condition": blob_condition(blob) if blob else None,
            # Each region's user-assigned identity: Azure Blob's grantee, or the one another cloud trusts.
            "identity": bool(blob or cross_cloud_access(self.name, storage)),
            "blob_scope_suffix": f"/blobServices/default/containers/{blob.bucket}" if blob else "",
        }
