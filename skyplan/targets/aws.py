"""The `aws` target: EC2 instances in default-VPC subnets picked by availability-zone ID."""

from __future__ import annotations

import re
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

# AMIs found by name, newest first. GPU: the DLAMI "Deep Learning Base OSS Nvidia Driver GPU AMI
# (Ubuntu 22.04)" (NVIDIA driver, CUDA, Docker + NVIDIA container toolkit); Inferentia/Trainium:
# "Deep Learning AMI Neuron (Ubuntu 22.04)" (AWS DLAMI developer guide, release notes); CPU:
# Canonical's Ubuntu 22.04 (owner 099720109477, "Find Ubuntu images on AWS", Ubuntu docs).
_IMAGES: dict[str, tuple[str, str, str]] = {
    # kind: (owner, name filter, architecture)
    "gpu": ("amazon", "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *", "x86_64"),
    "gpu_arm64": ("amazon", "Deep Learning ARM64 Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *", "arm64"),
    "neuron": ("amazon", "Deep Learning AMI Neuron (Ubuntu 22.04) *", "x86_64"),
    "cpu": ("099720109477", "ubuntu/images/hvm-ssd*/ubuntu-jammy-22.04-amd64-server-*", "x86_64"),
    "cpu_arm64": ("099720109477", "ubuntu/images/hvm-ssd*/ubuntu-jammy-22.04-arm64-server-*", "arm64"),
}
# Graviton families carry a "g" after the generation digit: g5g, c6g, m7gd, r6gn.
_GRAVITON = re.compile(r"[a-z]+\d+[a-z]*g[a-z]*\.")
_NEURON = ("Inferentia", "Inferentia2", "Trainium")


def _image_kind(instance_type: str, accelerator: str | None) -> str:
    arm = bool(_GRAVITON.match(instance_type))
    if accelerator in _NEURON or instance_type.startswith(("inf", "trn")):
        return "neuron"
    if accelerator:
        return "gpu_arm64" if arm else "gpu"
    return "cpu_arm64" if arm else "cpu"


class AwsTarget(CloudTarget):
    """EC2: one provider alias per region, one `modules/aws-node` call per task."""

    name: ClassVar[str] = "aws"
    providers: ClassVar[tuple[ProviderPin, ...]] = (
        ProviderPin("aws", "hashicorp/aws", "~> 6.25", "aws.json.gz"),
    )
    # Codes of the EC2 API ("Error codes for the Amazon EC2 API", EC2 API reference); the texts
    # reach us wrapped by the provider as "api error <Code>: <message>", so the message phrases
    # are matched too for logs that carry only the message.
    error_rules: ClassVar[tuple[ErrorRule, ...]] = (
        rule(r"\bRequestLimitExceeded\b|Request limit exceeded|\bThrottling\b", FailureScope.RETRY,
             "RequestLimitExceeded"),
        rule(r"\bInsufficientInstanceCapacity\b|do not have sufficient .* capacity|"
             r"no Spot capacity available", FailureScope.ZONE, "InsufficientInstanceCapacity"),
        rule(r"\bInsufficientCapacity\b", FailureScope.ZONE, "InsufficientCapacity"),
        rule(r"\bUnsupported\b.*Availability Zone|is not supported in your requested Availability Zone",
             FailureScope.ZONE, "Unsupported"),
        rule(r"\bVcpuLimitExceeded\b|more vCPU capacity than your current vCPU limit",
             FailureScope.REGION, "VcpuLimitExceeded"),
        rule(r"\bMaxSpotInstanceCountExceeded\b|Max spot instance count exceeded", FailureScope.REGION,
             "MaxSpotInstanceCountExceeded"),
        rule(r"\bInstanceLimitExceeded\b", FailureScope.REGION, "InstanceLimitExceeded"),
        rule(r"\bSpotMaxPriceTooLow\b", FailureScope.ZONE, "SpotMaxPriceTooLow"),
        rule(r"\bOptInRequired\b", FailureScope.REGION, "OptInRequired"),
        rule(r"\bUnauthorizedOperation\b|not authorized to perform this operation", FailureScope.CLOUD,
             "UnauthorizedOperation"),
        rule(r"\bAuthFailure\b|\bInvalidClientTokenId\b|\bExpiredToken\b|no valid credential sources",
             FailureScope.CLOUD, "AuthFailure"),
    )

    def stack_values(self, ctx: StackContext) -> dict[str, Any]:
        from skyplan.hcl import cloud_name, hcl_string
        from skyplan.targets.access import cross_cloud_access

        facts = [node_facts(ctx, st) for st in ctx.tasks]
        regions: dict[str, dict[str, Any]] = {}
        tasks = []
        for f in facts:
            if f.zone is None:
                raise RenderError(f"aws placement of task {f.name!r} has no availability-zone id")
            r = regions.setdefault(f.region, {"name": f.region, "alias": region_alias(f.region), "tasks": [],
                                              "zones": {}, "images": {}})
            r["tasks"].append(f.name)
            r["zones"].setdefault(f.zone, {"id": f.zone, "ident": region_alias(f.zone), "tasks": []})
            r["zones"][f.zone]["tasks"].append(f.name)
            image_expr = None
            if not f.image_id:
                kind = _image_kind(f.instance_type, f.accelerator)
                owner, pattern, arch = _IMAGES[kind]
                image = r["images"].setdefault(kind, {"ident": f"{kind}_{r['alias']}", "owner": owner,
                                                      "pattern": pattern, "arch": arch})
                image_expr = f"data.aws_ami.{image['ident']}[0].id"
            tasks.append({**f.__dict__, "alias": r["alias"], "zone_ident": region_alias(f.zone),
                          "image_expr": image_expr, "vm_name": machine_name(ctx.plan_name, f.name)})
        region_list = [
            {**r, "tasks": sorted(r["tasks"]),
             "zones": [dict(z, tasks=sorted(z["tasks"])) for _, z in sorted(r["zones"].items())],
             "images": [i for _, i in sorted(r["images"].items())]}
            for _, r in sorted(regions.items())
        ]
        storage = parse_storage(ctx.storage)
        s3 = storage if storage and storage.cloud == "aws" else None
        return {
            "plan_name": ctx.plan_name,
            "plan_slug": cloud_name(ctx.plan_name),
            # IAM name_prefix allows 38 characters; security groups are named the same way.
            "name_prefix": f"skyplan-{cloud_name(ctx.plan_name, max_len=24)}-",
            "storage": ctx.storage,
            "terraform_version": ctx.terraform_version,
            "regions": region_list,
            "region_pairs": [(hcl_string(r["name"]), hcl_list(r["tasks"])) for r in region_list],
            "zone_pairs": [(hcl_string(z["id"]), hcl_list(z["tasks"])) for r in region_list for z in r["zones"]],
            "first_alias": region_list[0]["alias"],
            "tasks": tasks,
            "s3": s3,
            # The machines' role: S3's grantee, or the identity another cloud's storage trusts.
            "identity": bool(s3 or cross_cloud_access(self.name, storage)),
            "s3_prefix": s3.prefix if s3 else "",
        }
