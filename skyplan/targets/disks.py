"""SkyPilot's `disk_tier` (low / medium / high / ultra / best) as each cloud's boot-disk type.

The mapping is SkyPilot's own (sky/clouds/aws.py, gcp.py, azure.py `_get_disk_specs` and
`_get_disk_type`, commit 93a24d4), so a file tuned for `sky launch` gets the same disks:

| tier   | aws                         | gcp (remapped per series, below) | azure        |
|--------|-----------------------------|----------------------------------|--------------|
| low    | standard                    | pd-standard                      | Standard_LRS |
| medium | gp3, 3,500 IOPS, 218 MiB/s  | pd-balanced                      | Premium_LRS  |
| high   | gp3, 7,000 IOPS, 437 MiB/s  | pd-ssd                           | Premium_LRS  |
| ultra  | io2, 20,000 IOPS            | pd-extreme, 20,000 IOPS          | (none)       |
| best   | = ultra                     | = ultra                          | = high       |

GCP series without pd-extreme (n1, a2, g2, n2 under 64 vCPUs) get pd-ssd for ultra; a3 and g2
have no pd-standard (pd-balanced for low); a3-ultragpu, n4 and a4 take hyperdisk-balanced only,
and a3's ultra is hyperdisk-balanced. Azure has no ultra OS disk: an `ultra` shape is never placed
on Azure. Without `disk_tier` a disk is the target's default (gp3 at its baseline, pd-balanced,
StandardSSD_LRS), as before. local and ssh machines have the disks they have.
"""

from __future__ import annotations

from dataclasses import dataclass

TIERS = ("low", "medium", "high", "ultra", "best")
_BEST = {"aws": "ultra", "gcp": "ultra", "azure": "high"}
_AWS_IOPS = {"ultra": 20000, "high": 7000, "medium": 3500}
_GCP = {"ultra": "pd-extreme", "high": "pd-ssd", "medium": "pd-balanced", "low": "pd-standard"}
_GCP_EXTREME_IOPS = 20000  # SkyPilot's PD_EXTREME_IOPS
_AZURE = {"high": "Premium_LRS", "medium": "Premium_LRS", "low": "Standard_LRS"}


@dataclass(frozen=True)
class Disk:
    """A boot disk as the node module takes it (None: the provider's default for that type)."""

    type: str
    iops: int | None = None
    throughput_mibps: int | None = None


def supports(cloud: str, tier: str | None) -> bool:
    """Whether `cloud` has a disk for `tier` (Azure has no ultra OS disk)."""
    return not (cloud == "azure" and tier == "ultra")


def disk_for(cloud: str, instance_type: str, tier: str | None) -> Disk | None:
    """The boot disk of `tier` on `cloud` for `instance_type`; None without a tier (module default)."""
    if tier is None or cloud not in _BEST:
        return None
    tier = _BEST[cloud] if tier == "best" else tier
    if cloud == "aws":
        if tier == "low":
            return Disk("standard")
        if tier == "ultra":
            return Disk("io2", _AWS_IOPS[tier])
        # Custom throughput is gp3's alone; SkyPilot sets IOPS / 16.
        return Disk("gp3", _AWS_IOPS[tier], _AWS_IOPS[tier] // 16)
    if cloud == "gcp":
        kind = _gcp_type(instance_type, tier)
        return Disk(kind, _GCP_EXTREME_IOPS if kind == "pd-extreme" else None)
    return Disk(_AZURE[tier])


def _gcp_type(instance_type: str, tier: str) -> str:
    names = dict(_GCP)
    series = instance_type.split("-")[0]
    if series in ("n1", "a2", "g2"):
        names["ultra"] = names["high"]
    if series in ("a3", "g2"):
        names["low"] = names["medium"]
    if instance_type.startswith("a3-ultragpu") or series in ("n4", "a4"):
        names = dict.fromkeys(names, "hyperdisk-balanced")
    if series == "n2":
        parts = instance_type.split("-")
        if len(parts) > 2 and parts[2].isdigit() and int(parts[2]) < 64:
            names["ultra"] = names["high"]
    elif series == "a3":
        names["ultra"] = "hyperdisk-balanced"
    return names[tier]
