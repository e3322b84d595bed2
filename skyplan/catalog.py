"""Load the price catalog (offerings per zone plus egress rates) from CSV files into a `Catalog`.

The CSV format is the shipped snapshot's (`skyplan/data/catalog/*.csv`, described in the
snapshot's `skyplan/data/catalog/README.md`):

    cloud,instance_type,accelerator,accelerator_count,vcpus,memory_gib,
    price_hourly,spot_price_hourly,region,zone            (one line in the files)

GCP prices attached GPUs apart from their host VM, so its rows are combined here: every GPU
row is joined with each host machine type that can carry it in the same zone, and the
offering's price is host + GPUs. AWS zones are availability-zone *ids* (`use1-az1`) and are
kept as such; Azure rows have no zone.
"""

from __future__ import annotations

import csv
import datetime as _dt
import difflib
import hashlib
import io
import os
import pickle
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from skyplan import models
from skyplan.assets import builtin_catalog_dir
from skyplan.errors import CatalogError
from skyplan.models import Bandwidth, Catalog, CatalogInfo, Location, Offering, TierRates

CSV_HEADER: tuple[str, ...] = (
    "cloud",
    "instance_type",
    "accelerator",
    "accelerator_count",
    "vcpus",
    "memory_gib",
    "price_hourly",
    "spot_price_hourly",
    "region",
    "zone",
)
CATALOG_FILES: tuple[str, ...] = ("aws.csv", "gcp.csv", "azure.csv")
EGRESS_FILE = "egress.yaml"
META_FILE = "catalog.yaml"

_BUILTIN_EGRESS = Path(__file__).resolve().parent / "data" / EGRESS_FILE
_TIERS: tuple[str, ...] = ("same_zone", "cross_zone", "inter_region", "internet")
# Offerings already parsed in this process (failover re-solves reload the same files).
_MEMO: dict[str, tuple[Offering, ...]] = {}


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def load_catalog(directory: str | Path | None = None) -> Catalog:
    """Load the catalog in `directory` (None: the snapshot shipped with skyplan).

    The directory holds any subset of `aws.csv`, `gcp.csv`, `azure.csv`, and optionally
    `egress.yaml` (per-cloud overrides of the shipped rates) and `catalog.yaml` (`date:`).
    Parsed catalogs are cached in `$SKYPLAN_CACHE_DIR` (default `~/.cache/skyplan`), keyed by
    the files' sha256 and the loader's code, so a changed file is always re-read
    (`SKYPLAN_NO_CACHE=1` turns the cache off).

    Raises CatalogError naming the file (and line) of any missing or malformed input.
    """
    builtin = directory is None
    folder = builtin_catalog_dir() if builtin else Path(directory).expanduser()
    if not folder.is_dir():
        raise CatalogError(f"catalog directory {folder} does not exist")
    csv_paths = [folder / name for name in CATALOG_FILES if (folder / name).is_file()]
    if not csv_paths:
        raise CatalogError(f"catalog directory {folder} has none of {', '.join(CATALOG_FILES)}")
    egress_paths = [_BUILTIN_EGRESS]
    if not builtin and (folder / EGRESS_FILE).is_file():
        egress_paths.append(folder / EGRESS_FILE)

    contents = {path: _read_bytes(path) for path in (*csv_paths, *egress_paths)}
    fingerprint = _fingerprint(contents)
    info = CatalogInfo(
        date=_catalog_date(folder, csv_paths),
        fingerprint=fingerprint,
        source="builtin" if builtin else str(folder.resolve()),
    )
    rates, bandwidth = _load_egress(egress_paths, contents)

    offerings = _MEMO.get(fingerprint) or _read_cache(fingerprint)
    if offerings is None:
        offerings = _parse_offerings(csv_paths, contents)
        _write_cache(fingerprint, offerings)
    _MEMO[fingerprint] = offerings
    return Catalog(offerings=offerings, rates=rates, bandwidth=bandwidth, info=info)


def known_accelerators(catalog: Catalog) -> list[str]:
    """Sorted canonical accelerator names (GPUs, TPU slices, Inferentia...) in the catalog."""
    return sorted({o.accelerator for o in catalog.offerings if o.accelerator})


def is_accelerated(offering: Offering) -> bool:
    """Whether the machine carries an accelerator, named in the catalog or not.

    Azure N-series rows without an accelerator name (NC*ads_A10_v4 hold a fraction of an A10,
    NCC40ads_H100_v5 a confidential H100; catalog README "Azure data quirks") still bill for
    a GPU, so they are never offered to CPU-only tasks.
    """
    if offering.accelerator:
        return True
    return offering.cloud == "azure" and offering.instance_type.startswith("Standard_N")


def spot_note(offering: Offering) -> str | None:
    """A note for a row whose spot price is not below its on-demand price, else None.

    Such rows are real (AWS lists spot at the on-demand price where its spot pool is tight).
    The planner never prefers them on price: a spot candidate also carries the preemption
    overhead (`candidates.SPOT_OVERHEAD`), so `use_spot: auto` picks on-demand there; only
    `use_spot: true`, or an on-demand quota that is full, can place a task on one, and compile
    then says so."""
    if offering.price is None or offering.spot_price is None or offering.spot_price < offering.price:
        return None
    relation = "=" if offering.spot_price == offering.price else ">"
    return f"spot {relation} on-demand"


def catalog_rows(
    catalog: Catalog, *, cloud: str | None = None, accelerator: str | None = None
) -> list[Offering]:
    """Offerings for `skyplan catalog show`, filtered and sorted (cheapest first within a shape).

    `accelerator` matches case-insensitively. An unknown cloud or accelerator raises
    CatalogError with the names that do exist.
    """
    rows: Iterable[Offering] = catalog.offerings
    if cloud is not None:
        clouds = sorted({o.cloud for o in catalog.offerings})
        if cloud not in clouds:
            raise CatalogError(f"no cloud {cloud!r} in the catalog (clouds: {', '.join(clouds)})")
        rows = [o for o in rows if o.cloud == cloud]
    if accelerator is not None:
        names = known_accelerators(catalog)
        by_lower = {n.lower(): n for n in names}
        wanted = by_lower.get(accelerator.lower())
        if wanted is None:
            close = difflib.get_close_matches(accelerator, names, n=5, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(names)}"
            raise CatalogError(f"no accelerator {accelerator!r} in the catalog; {hint}")
        rows = [o for o in rows if o.accelerator == wanted]
    return sorted(rows, key=_display_key)


# ---------------------------------------------------------------------------------------------
# CSV parsing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogRow:
    """One CSV row as written (GCP GPU and host rows not yet combined)."""

    cloud: str
    instance_type: str
    accelerator: str | None
    accelerator_count: int
    vcpus: float | None
    memory_gib: float | None
    price: float | None
    spot_price: float | None
    region: str
    zone: str | None


def read_rows(path: str | Path) -> list[CatalogRow]:
    """The rows of one catalog CSV file (`<cloud>.csv`), validated; CatalogError names file and line."""
    path = Path(path)
    return _parse_csv(path, _read_bytes(path), path.stem)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise CatalogError(f"{path}: cannot read: {err.strerror or err}") from err


def _parse_offerings(csv_paths: list[Path], contents: Mapping[Path, bytes]) -> tuple[Offering, ...]:
    offerings: list[Offering] = []
    for path in csv_paths:
        cloud = path.stem
        rows = _parse_csv(path, contents[path], cloud)
        if cloud == "gcp":
            offerings.extend(_combine_gcp(rows))
        else:
            offerings.extend(_plain_offering(_fix_known_quirks(row)) for row in rows)
    return tuple(offerings)


def _parse_csv(path: Path, data: bytes, cloud: str) -> list[CatalogRow]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CatalogError(f"{path}: not UTF-8 text ({err.reason})") from err
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != CSV_HEADER:
        raise CatalogError(f"{path}:1: header must be {','.join(CSV_HEADER)}")
    rows: list[CatalogRow] = []
    seen: dict[tuple, int] = {}
    for line, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        row = _parse_row(path, line, fields, cloud)
        key = (row.instance_type, row.accelerator, row.accelerator_count, row.region, row.zone)
        if key in seen:
            raise CatalogError(f"{path}:{line}: duplicate of line {seen[key]} ({_describe_key(key)})")
        seen[key] = line
        rows.append(row)
    return rows


def _parse_row(path: Path, line: int, fields: list[str], cloud: str) -> CatalogRow:
    where = f"{path}:{line}"
    if len(fields) != len(CSV_HEADER):
        raise CatalogError(f"{where}: expected {len(CSV_HEADER)} columns, found {len(fields)}")
    (row_cloud, instance_type, accelerator, count, vcpus, memory, price, spot, region, zone) = (
        f.strip() for f in fields
    )
    if row_cloud != cloud:
        raise CatalogError(f"{where}: cloud is {row_cloud!r} in {path.name} (expected {cloud!r})")
    if not region:
        raise CatalogError(f"{where}: region is empty")
    if not instance_type and not accelerator:
        raise CatalogError(f"{where}: instance_type and accelerator are both empty")
    row = CatalogRow(
        cloud=cloud,
        instance_type=instance_type,
        accelerator=accelerator or None,
        accelerator_count=_parse_count(where, count, accelerator),
        vcpus=_parse_number(where, "vcpus", vcpus),
        memory_gib=_parse_number(where, "memory_gib", memory),
        price=_parse_number(where, "price_hourly", price),
        spot_price=_parse_number(where, "spot_price_hourly", spot),
        region=region,
        zone=zone or None,
    )
    if row.price is None and row.spot_price is None:
        raise CatalogError(f"{where}: neither price_hourly nor spot_price_hourly is set")
    return row


def _parse_number(where: str, column: str, text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise CatalogError(f"{where}: {column} {text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise CatalogError(f"{where}: {column} must be a positive number, got {text!r}")
    return value


def _parse_count(where: str, text: str, accelerator: str) -> int:
    if not text:
        if accelerator:
            raise CatalogError(f"{where}: accelerator {accelerator!r} has no accelerator_count")
        return 0
    value = _parse_number(where, "accelerator_count", text)
    if value is None or value != int(value):
        raise CatalogError(f"{where}: accelerator_count {text!r} is not a whole number")
    if not accelerator:
        raise CatalogError(f"{where}: accelerator_count is set but accelerator is empty")
    return int(value)


def _describe_key(key: tuple) -> str:
    instance_type, accelerator, count, region, zone = key
    shape = instance_type or f"{accelerator}:{count}"
    return f"{shape} in {zone or region}"


# Azure source quirks that would mislead the optimizer (catalog README "Azure data quirks").
# ND96isr_H100_v5 is an 8×H100 VM (Azure ND H100 v5 series docs); the source says 12.
_ACCELERATOR_COUNT_FIXES: Mapping[tuple[str, str], int] = {
    ("azure", "Standard_ND96isr_H100_v5"): 8,
}


def _fix_known_quirks(row: CatalogRow) -> CatalogRow:
    fixed_count = _ACCELERATOR_COUNT_FIXES.get((row.cloud, row.instance_type))
    if fixed_count is None or row.accelerator_count == fixed_count:
        return row
    return CatalogRow(**{**row.__dict__, "accelerator_count": fixed_count})


# One Location object per zone, shared by its offerings: less memory, and the dictionary
# lookups candidates do per location short-cut on identity.
_LOCATIONS: dict[tuple[str, str, str | None], Location] = {}


def _location(cloud: str, region: str, zone: str | None) -> Location:
    key = (cloud, region, zone)
    found = _LOCATIONS.get(key)
    if found is None:
        found = _LOCATIONS[key] = Location(cloud, region, zone)
    return found


def _plain_offering(row: CatalogRow) -> Offering:
    return Offering(
        location=_location(row.cloud, row.region, row.zone),
        instance_type=row.instance_type,
        accelerator=row.accelerator,
        accelerator_count=row.accelerator_count,
        vcpus=row.vcpus,
        memory_gib=row.memory_gib,
        price=row.price,
        spot_price=row.spot_price,
    )


# ---------------------------------------------------------------------------------------------
# GCP: join attached GPUs with their host machine types
# ---------------------------------------------------------------------------------------------

# CPU families whose machine types are useful without a GPU (catalog README "CPU families").
# The A2/A3/G2 host rows price only the host VM and cannot run without their GPUs.
_GCP_CPU_FAMILIES: tuple[str, ...] = ("n1", "n2", "e2", "c3")

# GPUs that attach to N1 hosts of any size, and the largest N1 host (vCPUs, memory GiB) each
# GPU count allows: https://cloud.google.com/compute/docs/gpus (the same table as SkyPilot's
# gcp_catalog `_NUM_ACC_TO_MAX_CPU_AND_MEMORY`). A bigger host is refused at create time.
_N1_GPU_LIMITS: Mapping[str, Mapping[int, tuple[float, float]]] = {
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
}

# G2 machine types have a fixed number of L4 GPUs (GCP accelerator-optimized machines docs).
_G2_L4_COUNT: Mapping[str, int] = {
    "g2-standard-4": 1,
    "g2-standard-8": 1,
    "g2-standard-12": 1,
    "g2-standard-16": 1,
    "g2-standard-24": 2,
    "g2-standard-32": 1,
    "g2-standard-48": 4,
    "g2-standard-96": 8,
}

# Fixed-GPU hosts: (machine type pattern, GPU name, GPU count or None for "the N in -Ng").
# a3-edgegpu-8g(-nolssd) has the a3-highgpu-8g shape (208 vCPUs, 1872 GiB) and the same
# on-demand and spot host price in every zone where both are sold (32 of 32 rows of the
# snapshot), so it is that H100 host and carries H100×8.
# a3-ultragpu-8g carries H200 GPUs, for which GCP has no attached-GPU row in the snapshot:
# pricing the host alone would make it look 8 GPUs cheaper than it is, so it is left out.
_GCP_FIXED_HOSTS: tuple[tuple[re.Pattern[str], str, int | None], ...] = (
    (re.compile(r"a2-highgpu-(\d+)g"), "A100", None),
    (re.compile(r"a2-megagpu-16g"), "A100", 16),
    (re.compile(r"a2-ultragpu-(\d+)g"), "A100-80GB", None),
    (re.compile(r"a3-highgpu-(\d+)g"), "H100", None),
    (re.compile(r"a3-megagpu-8g"), "H100-MEGA", 8),
    (re.compile(r"a3-edgegpu-8g(-nolssd)?"), "H100", 8),
)


def _gcp_host_gpus(host: CatalogRow) -> list[tuple[str, int]]:
    """The (GPU name, count) pairs the host machine type can carry; [] when none."""
    machine = host.instance_type
    if machine in _G2_L4_COUNT:
        return [("L4", _G2_L4_COUNT[machine])]
    for pattern, gpu, count in _GCP_FIXED_HOSTS:
        match = pattern.fullmatch(machine)
        if match:
            return [(gpu, count if count is not None else int(match.group(1)))]
    if machine.startswith("n1-") and host.vcpus is not None and host.memory_gib is not None:
        return [
            (gpu, n)
            for gpu, limits in _N1_GPU_LIMITS.items()
            for n, (max_vcpus, max_memory) in limits.items()
            if host.vcpus <= max_vcpus and host.memory_gib <= max_memory
        ]
    return []


def _sum_prices(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    # Rounded so that 0.73948 + 2.93391 prints as the 3.67339 a reader adds up by hand.
    return round(a + b, 8)


def _combine_gcp(rows: list[CatalogRow]) -> list[Offering]:
    gpus_by_zone: dict[tuple[str, str | None, str, int], CatalogRow] = {}
    hosts: list[CatalogRow] = []
    offerings: list[Offering] = []
    for row in rows:
        if row.instance_type:
            hosts.append(row)
        elif row.accelerator and row.accelerator.startswith("tpu-"):
            # A TPU slice is its own machine: the price covers the whole slice (README "TPU rows").
            offerings.append(
                Offering(
                    location=_location("gcp", row.region, row.zone),
                    instance_type=row.accelerator,
                    accelerator=row.accelerator,
                    accelerator_count=1,
                    vcpus=None,
                    memory_gib=None,
                    price=row.price,
                    spot_price=row.spot_price,
                )
            )
        else:
            assert row.accelerator is not None  # _parse_row refuses rows with neither
            gpus_by_zone[(row.region, row.zone, row.accelerator, row.accelerator_count)] = row
    for host in hosts:
        family = host.instance_type.split("-", 1)[0]
        if family in _GCP_CPU_FAMILIES:
            offerings.append(_plain_offering(host))
        for gpu_name, count in _gcp_host_gpus(host):
            gpu = gpus_by_zone.get((host.region, host.zone, gpu_name, count))
            if gpu is None:
                continue
            price = _sum_prices(host.price, gpu.price)
            spot = _sum_prices(host.spot_price, gpu.spot_price)
            if price is None and spot is None:
                continue
            offerings.append(
                Offering(
                    location=_location("gcp", host.region, host.zone),
                    instance_type=host.instance_type,
                    accelerator=gpu_name,
                    accelerator_count=count,
                    vcpus=host.vcpus,
                    memory_gib=host.memory_gib,
                    price=price,
                    spot_price=spot,
                    host_type=host.instance_type,
                )
            )
    return offerings


# ---------------------------------------------------------------------------------------------
# Egress rates, metadata, fingerprint, cache
# ---------------------------------------------------------------------------------------------


def _load_egress(paths: list[Path], contents: Mapping[Path, bytes]) -> tuple[dict[str, TierRates], Bandwidth]:
    rates: dict[str, TierRates] = {}
    bandwidth = Bandwidth()
    for path in paths:
        try:
            doc = yaml.safe_load(contents[path].decode("utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise CatalogError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(doc, dict) or not set(doc) <= {"rates", "bandwidth_gbps"}:
            raise CatalogError(f"{path}: expected a mapping with keys 'rates' and 'bandwidth_gbps'")
        for cloud, tiers in (doc.get("rates") or {}).items():
            values = _tier_values(path, f"rates.{cloud}", tiers, minimum=0.0)
            if any(a > b for a, b in zip(values, values[1:], strict=False)):
                raise CatalogError(
                    f"{path}: rates.{cloud} must satisfy same_zone <= cross_zone <= inter_region"
                    f" <= internet (the optimizer relies on it), got {values}"
                )
            rates[str(cloud)] = TierRates(*values)
        if doc.get("bandwidth_gbps") is not None:
            bw = _tier_values(path, "bandwidth_gbps", doc["bandwidth_gbps"], minimum=None)
            bandwidth = Bandwidth(*bw)
    return rates, bandwidth


def _tier_values(path: Path, key: str, tiers: object, *, minimum: float | None) -> tuple[float, ...]:
    if not isinstance(tiers, dict) or set(tiers) != set(_TIERS):
        raise CatalogError(f"{path}: {key} must have exactly the keys {', '.join(_TIERS)}")
    values = []
    for tier in _TIERS:
        value = tiers[tier]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CatalogError(f"{path}: {key}.{tier} must be a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise CatalogError(f"{path}: {key}.{tier} must be >= {minimum}, got {value}")
        if minimum is None and value <= 0:
            raise CatalogError(f"{path}: {key}.{tier} must be > 0, got {value}")
        values.append(float(value))
    return tuple(values)


def _catalog_date(folder: Path, csv_paths: list[Path]) -> str:
    meta = folder / META_FILE
    if meta.is_file():
        try:
            doc = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
            raise CatalogError(f"{meta}: not valid YAML: {err}") from err
        date = doc.get("date") if isinstance(doc, dict) else None
        if isinstance(date, _dt.date):
            return date.isoformat()
        if isinstance(date, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
            return date
        raise CatalogError(f"{meta}: 'date' must be a date like 2026-11-22, got {date!r}")
    newest = max(path.stat().st_mtime for path in csv_paths)
    return _dt.datetime.fromtimestamp(newest, tz=_dt.timezone.utc).date().isoformat()


def _fingerprint(contents: Mapping[Path, bytes]) -> str:
    digest = hashlib.sha256()
    # Fixed order: CSVs in CATALOG_FILES order, then the egress files in override order.
    for index, (path, data) in enumerate(contents.items()):
        label = path.name if path.suffix == ".csv" else f"{EGRESS_FILE}#{index}"
        digest.update(label.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return digest.hexdigest()


def _cache_path(fingerprint: str) -> Path | None:
    if os.environ.get("SKYPLAN_NO_CACHE"):
        return None
    base = os.environ.get("SKYPLAN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "skyplan"
    )
    # The key covers this loader's code and the Offering layout too, so an upgrade that
    # changes how rows are combined never reads a cache written by the old rules.
    code = hashlib.sha256()
    for module in (Path(__file__), Path(models.__file__)):
        code.update(module.read_bytes())
    return Path(base) / f"catalog-{fingerprint[:24]}-{code.hexdigest()[:12]}.pickle"


def _read_cache(fingerprint: str) -> tuple[Offering, ...] | None:
    path = _cache_path(fingerprint)
    if path is None or not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            stored_fingerprint, offerings = pickle.load(handle)
    except Exception:  # noqa: BLE001 - a corrupt or stale cache is simply rebuilt
        return None
    return offerings if stored_fingerprint == fingerprint else None


def _write_cache(fingerprint: str, offerings: tuple[Offering, ...]) -> None:
    path = _cache_path(fingerprint)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a concurrent reader never sees half a file.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as handle:
            pickle.dump((fingerprint, offerings), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(handle.name, path)
    except OSError:
        pass  # a read-only home only costs speed


def _display_key(o: Offering) -> tuple:
    price = o.price if o.price is not None else float("inf")
    return (
        o.cloud,
        o.accelerator or "",
        o.accelerator_count,
        price,
        o.location.region,
        o.location.zone or "",
        o.instance_type,
    )
