"""AWS prices from the Pricing API (on-demand) and EC2 (spot, zones, machine shapes); reads only.

* On-demand: `pricing.get_products` (the API is served from us-east-1) for Linux, shared
  tenancy, no pre-installed software, `capacitystatus` Used, one `regionCode` at a time.
* Spot: `ec2.describe_spot_price_history` with `StartTime` = now, which returns the price in
  effect now for each availability zone.
* Zones: `ec2.describe_instance_type_offerings` by `availability-zone-id`, and
  `describe_availability_zones` to map the zone *names* spot history reports to zone ids (the
  catalog stores ids, catalog README "AWS notes").
* Shapes: `ec2.describe_instance_types` (vCPUs, memory, GPUs / Neuron devices).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

from skyplan.errors import CatalogError
from skyplan.refresh._errors import api_error, readable
from skyplan.refresh._rows import PriceRow, Progress, report

# The families the shipped snapshot covers (catalog README "AWS").
FAMILIES: tuple[str, ...] = (
    "c6i",
    "m6i",
    "r6i",
    "g4dn",
    "g5",
    "g5g",
    "g6",
    "g6e",
    "gr6",
    "p3",
    "p3dn",
    "p4d",
    "p4de",
    "p5",
    "p5e",
    "p5en",
    "inf1",
    "inf2",
    "trn1",
    "trn1n",
)
PRICING_REGION = "us-east-1"
_ON_DEMAND_FILTERS: tuple[tuple[str, str], ...] = (
    ("operatingSystem", "Linux"),
    ("tenancy", "Shared"),
    ("preInstalledSw", "NA"),
    ("capacitystatus", "Used"),
)
# Canonical names (the catalog's) for GPUs whose AWS name is shared by two memory sizes.
_GPU_BY_NAME_AND_MEMORY: dict[tuple[str, int], str] = {
    ("A100", 81920): "A100-80GB",
    ("V100", 32768): "V100-32GB",
}


def fetch_rows(session: Any, regions: Sequence[str], progress: Progress | None = None) -> list[PriceRow]:
    """Catalog rows for every shipped family in `regions`, one per (instance type, AZ id).

    `session` is a `boto3.Session` (tests pass one inside `moto.mock_aws`).
    """
    pricing = session.client("pricing", region_name=PRICING_REGION)
    rows: list[PriceRow] = []
    for number, region in enumerate(regions, start=1):
        report(progress, f"aws {region} ({number}/{len(regions)}): zones, machine types, spot prices")
        ec2 = session.client("ec2", region_name=region)
        with _api(f"AWS EC2 API ({region})"):
            zone_ids = _zone_ids(ec2, region)
            shapes = _instance_shapes(ec2)
            offered = _offerings(ec2, sorted(shapes))
            spot = _spot_prices(ec2, sorted(shapes), zone_ids)
        report(progress, f"aws {region} ({number}/{len(regions)}): on-demand prices")
        with _api(f"AWS Pricing API ({PRICING_REGION})"):
            on_demand = _on_demand_prices(pricing, region)
        for instance_type, zone_id in sorted(offered):
            shape = shapes.get(instance_type)
            if shape is None:
                continue
            vcpus, memory, accelerator, count = shape
            rows.append(
                PriceRow(
                    cloud="aws",
                    instance_type=instance_type,
                    accelerator=accelerator,
                    accelerator_count=count,
                    vcpus=vcpus,
                    memory_gib=memory,
                    price=on_demand.get(instance_type),
                    spot_price=spot.get((instance_type, zone_id)),
                    region=region,
                    zone=zone_id,
                )
            )
    return rows


@contextlib.contextmanager
def _api(service: str) -> Iterator[None]:
    """Calls to `service` fail as one line: its name, the HTTP status and the AWS error code.

    Missing credentials pass through: `refresh` explains those for every service at once."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except NoCredentialsError:
        raise
    except ClientError as err:
        error = err.response.get("Error", {})
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = readable(error.get("Code"))
        message = readable(error.get("Message"))
        # A bare status (`500`) is what botocore makes of an HTML error page: nothing to add.
        detail = None if code is None or code.isdigit() else (f"{code}: {message}" if message else code)
        raise api_error(service, status, detail) from err
    except BotoCoreError as err:  # no response at all: endpoint unreachable, timeouts, …
        raise api_error(service, None, err) from err


def _family_filter() -> list[dict[str, Any]]:
    return [{"Name": "instance-type", "Values": [f"{family}.*" for family in FAMILIES]}]


def _in_families(instance_type: str) -> bool:
    return instance_type.split(".", 1)[0] in FAMILIES


def _pages(client: Any, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    yield from client.get_paginator(operation).paginate(**kwargs)


def _zone_ids(ec2: Any, region: str) -> dict[str, str]:
    response = ec2.describe_availability_zones(Filters=[{"Name": "region-name", "Values": [region]}])
    return {zone["ZoneName"]: zone["ZoneId"] for zone in response["AvailabilityZones"]}


def _instance_shapes(ec2: Any) -> dict[str, tuple[float, float, str | None, int]]:
    shapes: dict[str, tuple[float, float, str | None, int]] = {}
    for page in _pages(ec2, "describe_instance_types", Filters=_family_filter()):
        for info in page["InstanceTypes"]:
            name = info["InstanceType"]
            if not _in_families(name):
                continue
            vcpus = float(info["VCpuInfo"]["DefaultVCpus"])
            memory = info["MemoryInfo"]["SizeInMiB"] / 1024
            accelerator, count = _accelerator(info)
            shapes[name] = (vcpus, memory, accelerator, count)
    return shapes


def _accelerator(info: dict[str, Any]) -> tuple[str | None, int]:
    gpus = (info.get("GpuInfo") or {}).get("Gpus") or []
    if gpus:
        gpu = gpus[0]
        memory = (gpu.get("MemoryInfo") or {}).get("SizeInMiB", 0)
        name = _GPU_BY_NAME_AND_MEMORY.get((gpu["Name"], memory), gpu["Name"])
        return name, sum(int(g["Count"]) for g in gpus)
    neuron = (info.get("NeuronInfo") or {}).get("NeuronDevices") or []
    if not neuron:
        neuron = (info.get("InferenceAcceleratorInfo") or {}).get("Accelerators") or []
    if neuron:
        return neuron[0]["Name"], sum(int(device["Count"]) for device in neuron)
    return None, 0


def _chunks(names: list[str], size: int = 100) -> Iterator[list[str]]:
    # EC2 filters take a bounded number of values; exact names also work where wildcards
    # are not supported (moto's DescribeInstanceTypeOfferings).
    for start in range(0, len(names), size):
        yield names[start : start + size]


def _offerings(ec2: Any, instance_types: list[str]) -> set[tuple[str, str]]:
    offered: set[tuple[str, str]] = set()
    for names in _chunks(instance_types):
        pages = _pages(
            ec2,
            "describe_instance_type_offerings",
            LocationType="availability-zone-id",
            Filters=[{"Name": "instance-type", "Values": names}],
        )
        for page in pages:
            for item in page["InstanceTypeOfferings"]:
                offered.add((item["InstanceType"], item["Location"]))
    return offered


def _spot_prices(
    ec2: Any, instance_types: list[str], zone_ids: dict[str, str]
) -> dict[tuple[str, str], float]:
    latest: dict[tuple[str, str], tuple[_dt.datetime, float]] = {}
    now = _dt.datetime.now(_dt.timezone.utc)
    pages = (
        page
        for names in _chunks(instance_types)
        for page in _pages(
            ec2,
            "describe_spot_price_history",
            InstanceTypes=names,
            ProductDescriptions=["Linux/UNIX"],
            StartTime=now,
        )
    )
    for page in pages:
        for item in page["SpotPriceHistory"]:
            # "Linux/UNIX (Amazon VPC)" is the same product on VPC-only accounts.
            if not item.get("ProductDescription", "Linux/UNIX").startswith("Linux/UNIX"):
                continue
            zone_id = zone_ids.get(item["AvailabilityZone"])
            if zone_id is None:
                continue
            key = (item["InstanceType"], zone_id)
            stamp = item["Timestamp"]
            if key not in latest or stamp > latest[key][0]:
                latest[key] = (stamp, float(item["SpotPrice"]))
    return {key: price for key, (_, price) in latest.items()}


def _on_demand_prices(pricing: Any, region: str) -> dict[str, float]:
    filters = [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in _ON_DEMAND_FILTERS]
    filters.append({"Type": "TERM_MATCH", "Field": "regionCode", "Value": region})
    prices: dict[str, float] = {}
    for page in _pages(
        pricing, "get_products", ServiceCode="AmazonEC2", Filters=filters, FormatVersion="aws_v1"
    ):
        for document in page["PriceList"]:
            product = json.loads(document) if isinstance(document, str) else document
            parsed = _on_demand_price(product)
            if parsed is not None and _in_families(parsed[0]):
                prices[parsed[0]] = parsed[1]
    return prices


def _on_demand_price(product: dict[str, Any]) -> tuple[str, float] | None:
    attributes = product.get("product", {}).get("attributes", {})
    instance_type = attributes.get("instanceType")
    # Capacity Blocks and reserved capacity are listed with their own market option.
    if not instance_type or attributes.get("marketoption", "OnDemand") != "OnDemand":
        return None
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            if dimension.get("unit") != "Hrs":
                continue
            try:
                price = float(dimension["pricePerUnit"]["USD"])
            except (KeyError, ValueError) as err:
                raise CatalogError(
                    f"AWS Pricing API: unexpected price for {instance_type}: {dimension}"
                ) from err
            # A zero price marks an unavailable product, not a free machine.
            return (instance_type, price) if price > 0 else None
    return None
