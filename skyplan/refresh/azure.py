"""Azure prices from the public Retail Prices REST API (no credentials needed); reads only.

`GET https://prices.azure.com/api/retail/prices?$filter=...` returns pages of `Items` and a
`NextPageLink` until the last page. One item is one meter: `armSkuName` (Standard_D4s_v5),
`armRegionName`, `retailPrice` per `unitOfMeasure` ("1 Hour"), `meterName` ("D4s v5",
"D4s v5 Spot", "D4s v5 Low Priority") and `productName` (Windows products end in "Windows").

The API has no machine shapes (vCPUs, memory, GPUs); those come from a base catalog (the
shipped snapshot unless told otherwise), and so do the instance types to price.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from skyplan.refresh._errors import api_error
from skyplan.refresh._rows import PriceRow, Progress, report

API_URL = "https://prices.azure.com/api/retail/prices"
Fetch = Callable[[str], dict[str, Any]]


def region_url(region: str) -> str:
    """The first page's URL for consumption prices of virtual machines in `region`."""
    query = (
        f"serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and armRegionName eq '{region}'"
    )
    return f"{API_URL}?{urllib.parse.urlencode({'$filter': query}, quote_via=urllib.parse.quote)}"


def fetch_rows(
    base_rows: Sequence[PriceRow],
    regions: Sequence[str],
    progress: Progress | None = None,
    fetch: Fetch | None = None,
) -> list[PriceRow]:
    """Rows for the base catalog's Azure instance types in `regions`, priced from the API."""
    get = fetch or fetch_json
    shapes = {row.instance_type: row for row in base_rows if row.instance_type}
    rows: list[PriceRow] = []
    for number, region in enumerate(regions, start=1):
        on_demand: dict[str, float] = {}
        spot: dict[str, float] = {}
        url: str | None = region_url(region)
        pages = 0
        while url:
            pages += 1
            report(progress, f"azure {region} ({number}/{len(regions)}): page {pages}")
            page = get(url)
            for item in page.get("Items", []):
                _collect(item, region, shapes, on_demand, spot)
            url = page.get("NextPageLink") or None
        for instance_type in sorted(set(on_demand) | set(spot)):
            shape = shapes[instance_type]
            rows.append(
                PriceRow(
                    cloud="azure",
                    instance_type=instance_type,
                    accelerator=shape.accelerator,
                    accelerator_count=shape.accelerator_count,
                    vcpus=shape.vcpus,
                    memory_gib=shape.memory_gib,
                    price=on_demand.get(instance_type),
                    spot_price=spot.get(instance_type),
                    region=region,
                    zone=None,  # the catalog has no Azure zones (catalog README "Azure")
                )
            )
    return rows


def _collect(
    item: dict[str, Any],
    region: str,
    shapes: dict[str, PriceRow],
    on_demand: dict[str, float],
    spot: dict[str, float],
) -> None:
    name = item.get("armSkuName") or ""
    meter = item.get("meterName") or ""
    if (
        name not in shapes
        or item.get("armRegionName") != region
        or item.get("type", "Consumption") != "Consumption"
        or item.get("unitOfMeasure") != "1 Hour"
        or str(item.get("productName", "")).endswith("Windows")
        or "Low Priority" in meter
    ):
        return
    price = float(item.get("retailPrice") or 0)
    if price <= 0:
        return
    target = spot if "Spot" in meter else on_demand
    # Several meters can price one SKU (e.g. a promo); the catalog keeps the cheapest.
    target[name] = min(price, target.get(name, price))


def _service(url: str) -> str:
    """`Azure retail prices API (eastus)`: the region is the one the page's filter names."""
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query).get("$filter", [""])[0]
    region = query.rpartition("armRegionName eq '")[2].partition("'")[0]
    return f"Azure retail prices API ({region})" if region else "Azure retail prices API"


def _error_message(err: urllib.error.HTTPError) -> str | None:
    """The API's own `{"Error": {"Message": …}}` (or similar) text, if the body holds JSON."""
    try:
        body = json.loads(err.read(64 * 1024) or b"null")
    except (ValueError, OSError):
        return None
    error = body.get("Error") or body.get("error") if isinstance(body, dict) else None
    return error.get("Message") or error.get("message") if isinstance(error, dict) else None


def fetch_json(url: str, *, attempts: int = 4) -> dict[str, Any]:
    """GET a page of the retail prices API, retrying throttling (429) and server errors."""
    request = urllib.request.Request(url, headers={"User-Agent": "skyplan-catalog-refresh"})
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)
        except urllib.error.HTTPError as err:
            if err.code not in (429, 500, 502, 503, 504) or attempt == attempts - 1:
                raise api_error(_service(url), err.code, _error_message(err)) from err
        except json.JSONDecodeError as err:
            if attempt == attempts - 1:
                raise api_error(_service(url), None, f"the answer is not JSON ({err.msg})") from err
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            if attempt == attempts - 1:
                reason = getattr(err, "reason", None) or err
                raise api_error(_service(url), None, f"unreachable ({reason})") from err
        time.sleep(2**attempt)
    raise AssertionError("unreachable")
