"""GCP prices from the Cloud Billing Catalog API (`CloudCatalogClient.list_skus`); reads only.

Compute Engine (service `6F81-5844-456A`) prices machines per vCPU-hour and per GiB-hour of
RAM for each machine family, and attached GPUs per GPU-hour, each per region. A machine
type's price is `vcpus × core + memory × RAM`; an attached-GPU row is `count × GPU`. Spot
SKUs carry usage type "Preemptible" and a description starting with "Spot Preemptible".

The billing catalog knows prices, not which zones sell which machine type, nor machine
shapes. Both come from a base catalog (the shipped snapshot unless told otherwise): every
(machine type or GPU, zone) row of the base is re-priced, in the requested regions. TPU
slices are priced by another service with per-chip SKUs; their rows are carried over from the
base unchanged, and the progress callback says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from skyplan.refresh._rows import PriceRow, Progress, report

COMPUTE_SERVICE = "services/6F81-5844-456A"

# Machine-type prefix → the family name in SKU descriptions ("N1 Predefined Instance Core
# running in Americas", "N2 Instance Core running in ..."; " Predefined" is dropped, since
# both spellings occur). a2-highgpu and a2-ultragpu share the A2 SKUs, a3-highgpu/-megagpu/
# -edgegpu the A3 ones: the snapshot's host prices are exactly vCPUs × core + GiB × RAM.
_FAMILY_OF_PREFIX: Mapping[str, str] = {
    "n1": "N1",
    "n2": "N2",
    "e2": "E2",
    "c3": "C3",
    "a2": "A2",
    "a3": "A3",
    "g2": "G2",
}
# GPU name in SKU descriptions → the catalog's canonical name.
_GPU_OF_SKU: Mapping[str, str] = {
    "Tesla T4": "T4",
    "Tesla V100": "V100",
    "Tesla P100": "P100",
    "Tesla P4": "P4",
    "Tesla A100": "A100",
    "Tesla A100 80GB": "A100-80GB",
    "A100 80GB": "A100-80GB",
    "H100 80GB": "H100",
    "H100 80GB Mega": "H100-MEGA",
    "L4": "L4",
}
_CORE_OR_RAM = re.compile(r"(?P<family>.+?) Instance (?P<kind>Core|Ram) running in .+")
_GPU = re.compile(r"Nvidia (?P<gpu>.+?) GPU running in .+")
# Variants that are not the plain list price of a predefined machine.
_SKIP_WORDS: tuple[str, ...] = (
    "Commitment",
    "Reserved",
    "Sole Tenancy",
    "Custom",
    "Extended",
    "DWS",
    "Calendar",
    "Premium",
)

PriceKey = tuple[str, str, bool, str]  # (family or GPU, "Core" | "Ram" | "GPU", spot, region)


def fetch_rows(
    client: Any,
    base_rows: Sequence[PriceRow],
    regions: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> list[PriceRow]:
    """Re-price the base catalog's GCP rows (in `regions`, default all) from the billing catalog.

    `client` has `list_skus(parent=...)` returning `Sku` messages or their `to_dict` form.
    """
    report(progress, f"gcp: reading Compute Engine SKUs ({COMPUTE_SERVICE})")
    prices = unit_prices(client.list_skus(parent=COMPUTE_SERVICE), progress)
    report(progress, f"gcp: {len(prices)} unit prices; pricing machine types")
    wanted = set(regions) if regions is not None else None
    rows: list[PriceRow] = []
    carried = missing = 0
    for base in base_rows:
        if wanted is not None and base.region not in wanted:
            continue
        if base.accelerator and base.accelerator.startswith("tpu-"):
            rows.append(base)
            carried += 1
            continue
        priced = _reprice(base, prices)
        if priced is None:
            missing += 1
            continue
        rows.append(priced)
    if carried:
        report(
            progress, f"gcp: {carried} TPU rows carried over unchanged (TPUs are billed by another service)"
        )
    if missing:
        report(progress, f"gcp: {missing} rows dropped: no SKU price for their family or GPU in that region")
    return rows


def unit_prices(skus: Iterable[Any], progress: Progress | None = None) -> dict[PriceKey, float]:
    """Hourly unit prices by (family or GPU, "Core" | "Ram" | "GPU", spot, region)."""
    prices: dict[PriceKey, float] = {}
    for count, sku in enumerate(skus, start=1):
        if count % 5000 == 0:
            report(progress, f"gcp: {count} SKUs read")
        parsed = _parse_sku(sku)
        if parsed is None:
            continue
        what, kind, spot, price = parsed
        for region in _field(sku, "service_regions") or ():
            prices[(what, kind, spot, str(region))] = price
    return prices


def _field(message: Any, name: str) -> Any:
    """A field of a proto-plus message or of its `to_dict` form."""
    if isinstance(message, Mapping):
        return message.get(name)
    return getattr(message, name, None)


def _parse_sku(sku: Any) -> tuple[str, str, bool, float] | None:
    category = _field(sku, "category") or {}
    usage = _field(category, "usage_type")
    if usage not in ("OnDemand", "Preemptible"):
        return None
    description = str(_field(sku, "description") or "")
    if any(word in description for word in _SKIP_WORDS):
        return None
    spot = usage == "Preemptible"
    for prefix in ("Spot Preemptible ", "Preemptible "):
        if description.startswith(prefix):
            description = description[len(prefix) :]
    match = _CORE_OR_RAM.fullmatch(description)
    family = match["family"].removesuffix(" Predefined") if match else None
    if match and family in _FAMILY_OF_PREFIX.values():
        what, kind = family, match["kind"]
        expected_unit = "h" if kind == "Core" else "GiBy.h"
    else:
        match = _GPU.fullmatch(description)
        if not match or match["gpu"] not in _GPU_OF_SKU:
            return None
        what, kind, expected_unit = _GPU_OF_SKU[match["gpu"]], "GPU", "h"
    price = _hourly_price(sku, expected_unit)
    return None if price is None else (what, kind, spot, price)


def _hourly_price(sku: Any, expected_unit: str) -> float | None:
    for info in _field(sku, "pricing_info") or ():
        expression = _field(info, "pricing_expression") or {}
        if _field(expression, "usage_unit") != expected_unit:
            continue
        for tier in _field(expression, "tiered_rates") or ():
            if float(_field(tier, "start_usage_amount") or 0) != 0:
                continue
            money = _field(tier, "unit_price") or {}
            # google.type.Money: whole units plus nanos (1e-9); int64 units are strings in JSON.
            return int(_field(money, "units") or 0) + int(_field(money, "nanos") or 0) / 1e9
    return None


def _reprice(base: PriceRow, prices: Mapping[PriceKey, float]) -> PriceRow | None:
    region = base.region
    if base.instance_type:
        family = _FAMILY_OF_PREFIX.get(base.instance_type.split("-", 1)[0])
        if family is None or base.vcpus is None or base.memory_gib is None:
            return None

        def machine(spot: bool) -> float | None:
            core = prices.get((family, "Core", spot, region))
            ram = prices.get((family, "Ram", spot, region))
            if core is None or ram is None:
                return None
            return round(base.vcpus * core + base.memory_gib * ram, 8)

        on_demand, spot_price = machine(False), machine(True)
    else:
        per_gpu = {spot: prices.get((base.accelerator or "", "GPU", spot, region)) for spot in (False, True)}
        on_demand, spot_price = (
            None if per_gpu[s] is None else round(per_gpu[s] * base.accelerator_count, 8)
            for s in (False, True)
        )
    if on_demand is None and spot_price is None:
        return None
    return PriceRow(
        cloud="gcp",
        instance_type=base.instance_type,
        accelerator=base.accelerator,
        accelerator_count=base.accelerator_count,
        vcpus=base.vcpus,
        memory_gib=base.memory_gib,
        price=on_demand,
        spot_price=spot_price,
        region=region,
        zone=base.zone,
    )
