"""Tests for skyplan.catalog: the shipped snapshot, GCP host+GPU combination, custom directories."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from skyplan import catalog as catalog_module
from skyplan.assets import builtin_catalog_dir
from skyplan.catalog import (
    CSV_HEADER,
    catalog_rows,
    is_accelerated,
    known_accelerators,
    load_catalog,
)
from skyplan.errors import CatalogError
from skyplan.models import Catalog, Location, Offering

HEADER = ",".join(CSV_HEADER) + "\n"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SKYPLAN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def builtin() -> Catalog:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SKYPLAN_NO_CACHE", "1")
        return load_catalog()


def find(
    catalog: Catalog,
    instance_type: str,
    zone: str | None,
    accelerator: str | None = None,
    count: int | None = None,
) -> list[Offering]:
    return [
        o
        for o in catalog.offerings
        if o.instance_type == instance_type
        and o.location.zone == zone
        and (accelerator is None or o.accelerator == accelerator)
        and (count is None or o.accelerator_count == count)
    ]


def one(
    catalog: Catalog,
    instance_type: str,
    zone: str | None,
    accelerator: str | None = None,
    count: int | None = None,
) -> Offering:
    found = find(catalog, instance_type, zone, accelerator, count)
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------------------------------------
# The shipped snapshot
# ---------------------------------------------------------------------------------------------


def test_builtin_info(builtin):
    assert builtin.info.date == "2026-11-22"
    assert builtin.info.source == "builtin"
    assert re.fullmatch(r"[0-9a-f]{64}", builtin.info.fingerprint)
    assert load_catalog().info.fingerprint == builtin.info.fingerprint


def test_builtin_row_counts(builtin):
    by_cloud = {c: sum(1 for o in builtin.offerings if o.cloud == c) for c in ("aws", "gcp", "azure")}
    # AWS and Azure rows map one to one; every row has a price (README "Hard checks").
    assert by_cloud["aws"] == 3683
    assert by_cloud["azure"] == 331
    # GCP: CPU hosts + TPU slices + (host, GPU) combinations.
    assert by_cloud["gcp"] > 4000


@pytest.mark.parametrize(
    ("host", "zone", "gpu", "count", "price"),
    [
        # catalog README, "Examples in us-central1-a (on-demand)"
        ("a2-highgpu-1g", "us-central1-a", "A100", 1, 3.67339),
        ("a3-highgpu-8g", "us-central1-a", "H100", 8, 46.02079),
        ("g2-standard-8", "us-central1-a", "L4", 1, 0.85362),
        ("n1-standard-8", "us-central1-a", "T4", 1, 0.73),
    ],
)
def test_gcp_host_plus_gpu_prices(builtin, host, zone, gpu, count, price):
    offering = one(builtin, host, zone, gpu, count)
    assert offering.price == pytest.approx(price, abs=1e-9)
    assert offering.host_type == host
    assert offering.location == Location("gcp", zone[:-2], zone)


def test_gcp_spot_is_host_spot_plus_gpu_spot(builtin):
    offering = one(builtin, "a3-highgpu-8g", "us-central1-a", "H100", 8)
    # a3-highgpu-8g spot 2.17547 (verify_output.txt) + H100×8 spot in that zone from gcp.csv.
    gpu_spot = _csv_value("gcp", ",H100,8,", "us-central1-a", column="spot_price_hourly")
    assert offering.spot_price == pytest.approx(2.17547 + gpu_spot, abs=1e-9)


def _csv_value(cloud: str, needle: str, zone: str, column: str) -> float:
    path = builtin_catalog_dir() / f"{cloud}.csv"
    for line in path.read_text().splitlines():
        if needle in line and line.endswith("," + zone):
            return float(line.split(",")[CSV_HEADER.index(column)])
    raise AssertionError(f"{needle} {zone} not in {path}")


@pytest.mark.parametrize(
    ("host", "gpu", "count"),
    [
        ("a2-highgpu-2g", "A100", 2),
        ("a2-megagpu-16g", "A100", 16),
        ("a2-ultragpu-1g", "A100-80GB", 1),
        ("a3-highgpu-4g", "H100", 4),
        ("a3-megagpu-8g", "H100-MEGA", 8),
        ("a3-edgegpu-8g", "H100", 8),
        ("g2-standard-4", "L4", 1),
        ("g2-standard-24", "L4", 2),
        ("g2-standard-48", "L4", 4),
        ("g2-standard-96", "L4", 8),
    ],
)
def test_gcp_fixed_gpu_hosts(builtin, host, gpu, count):
    combos = {(o.accelerator, o.accelerator_count) for o in builtin.offerings if o.instance_type == host}
    assert combos == {(gpu, count)}


def test_gcp_gpu_hosts_never_appear_without_their_gpu(builtin):
    for o in builtin.offerings:
        if o.cloud == "gcp" and o.instance_type.split("-")[0] in ("a2", "a3", "g2"):
            assert o.accelerator and o.accelerator_count > 0, o
    # H200 hosts have no attached-GPU price in the snapshot: left out rather than underpriced.
    assert not [o for o in builtin.offerings if o.instance_type.startswith("a3-ultragpu")]


def test_gcp_cpu_hosts_kept_as_cpu_offerings(builtin):
    for family in ("n1-standard-8", "n2-standard-8", "e2-standard-8", "c3-standard-8"):
        cpu_rows = [o for o in builtin.offerings if o.instance_type == family and o.accelerator is None]
        assert cpu_rows, family


def test_gcp_n1_gpu_counts_respect_host_limits(builtin):
    # V100×1 allows at most 12 vCPUs (cloud.google.com/compute/docs/gpus), so n1-standard-16
    # only carries 2 or more; T4 goes on anything up to 48 vCPUs with 1 GPU.
    n1_16 = {
        (o.accelerator, o.accelerator_count)
        for o in builtin.offerings
        if o.instance_type == "n1-standard-16" and o.accelerator
    }
    assert ("V100", 1) not in n1_16 and ("V100", 2) in n1_16
    assert ("T4", 1) in n1_16
    n1_96 = {
        (o.accelerator, o.accelerator_count)
        for o in builtin.offerings
        if o.instance_type == "n1-standard-96" and o.accelerator
    }
    assert n1_96 and all(count >= 4 for _, count in n1_96)


def test_gcp_tpu_rows(builtin):
    tpus = [o for o in builtin.offerings if o.instance_type == "tpu-v5p-8"]
    assert tpus
    for o in tpus:
        assert o.accelerator == "tpu-v5p-8" and o.accelerator_count == 1
        assert o.vcpus is None and o.memory_gib is None and o.host_type is None


def test_aws_zones_are_az_ids_and_spot_only_rows(builtin):
    aws = [o for o in builtin.offerings if o.cloud == "aws"]
    assert all(re.fullmatch(r"[a-z]+\d-az\d+", o.location.zone or "") for o in aws)
    p5e = [o for o in aws if o.instance_type == "p5e.48xlarge"]
    assert len(p5e) == 4 and all(o.price is None and o.spot_price for o in p5e)


def test_azure_has_no_zones_and_fixed_h100_count(builtin):
    azure = [o for o in builtin.offerings if o.cloud == "azure"]
    assert all(o.location.zone is None for o in azure)
    nd = [o for o in azure if o.instance_type == "Standard_ND96isr_H100_v5"]
    assert nd and all(o.accelerator == "H100" and o.accelerator_count == 8 for o in nd)
    a10 = [o for o in azure if o.instance_type == "Standard_NC32ads_A10_v4"]
    assert a10 and all(o.accelerator is None and is_accelerated(o) for o in a10)


def test_known_accelerators(builtin):
    names = known_accelerators(builtin)
    assert names == sorted(names)
    for name in ("A100", "A100-80GB", "H100", "L4", "T4", "A10G", "tpu-v5p-8", "Trainium"):
        assert name in names


def test_builtin_egress_rates(builtin):
    rates = builtin.rates
    assert (
        rates["aws"].same_zone,
        rates["aws"].cross_zone,
        rates["aws"].inter_region,
        rates["aws"].internet,
    ) == (0.0, 0.01, 0.02, 0.09)
    assert rates["gcp"].internet == 0.12 and rates["azure"].internet == 0.0875
    for cloud in ("local", "ssh"):
        r = rates[cloud]
        assert (r.same_zone, r.cross_zone, r.inter_region, r.internet) == (0, 0, 0, 0)
    for r in rates.values():
        assert r.same_zone <= r.cross_zone <= r.inter_region <= r.internet
    a, b = Location("aws", "us-east-1", "use1-az1"), Location("aws", "us-east-1", "use1-az2")
    assert builtin.egress_per_gb(a, b) == 0.01
    assert builtin.egress_per_gb(a, Location("gcp", "us-east1", "us-east1-b")) == 0.09


# ---------------------------------------------------------------------------------------------
# catalog show
# ---------------------------------------------------------------------------------------------


def test_catalog_rows_filters_and_sorts(builtin):
    rows = catalog_rows(builtin, cloud="gcp", accelerator="a100")
    assert rows and all(o.cloud == "gcp" and o.accelerator == "A100" for o in rows)
    keys = [(o.accelerator_count, o.price) for o in rows]
    assert keys == sorted(keys)
    assert len(catalog_rows(builtin)) == len(builtin.offerings)


def test_catalog_rows_unknown_names(builtin):
    with pytest.raises(CatalogError, match="did you mean.*A100"):
        catalog_rows(builtin, accelerator="A10O")
    with pytest.raises(CatalogError, match="clouds: aws, azure, gcp"):
        catalog_rows(builtin, cloud="oracle")


# ---------------------------------------------------------------------------------------------
# Custom directories
# ---------------------------------------------------------------------------------------------


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


AWS_ROWS = (
    "aws,m6i.large,,,2.0,8.0,0.096,0.03,us-east-1,use1-az1\n"
    "aws,p5e.48xlarge,H200,8,192.0,2048.0,,20.5,us-east-1,use1-az2\n"
)


def test_custom_directory_subset(tmp_path):
    write(tmp_path, "aws.csv", HEADER + AWS_ROWS)
    catalog = load_catalog(tmp_path)
    assert [o.instance_type for o in catalog.offerings] == ["m6i.large", "p5e.48xlarge"]
    assert catalog.offerings[1].price is None and catalog.offerings[1].spot_price == 20.5
    assert catalog.info.source == str(tmp_path.resolve())
    assert set(catalog.rates) >= {"aws", "gcp", "azure", "local", "ssh"}


def test_custom_directory_date_from_meta_or_mtime(tmp_path):
    path = write(tmp_path, "aws.csv", HEADER + AWS_ROWS)
    os.utime(path, (1_700_000_000, 1_700_000_000))  # 2023-11-14 UTC
    assert load_catalog(tmp_path).info.date == "2023-11-14"
    write(tmp_path, "catalog.yaml", "date: 2025-01-02\n")
    assert load_catalog(tmp_path).info.date == "2025-01-02"
    write(tmp_path, "catalog.yaml", "date: yesterday\n")
    with pytest.raises(CatalogError, match="catalog.yaml"):
        load_catalog(tmp_path)


def test_fingerprint_follows_content(tmp_path):
    write(tmp_path, "aws.csv", HEADER + AWS_ROWS)
    first = load_catalog(tmp_path)
    write(tmp_path, "aws.csv", HEADER + AWS_ROWS.replace("0.096", "0.097"))
    second = load_catalog(tmp_path)
    assert first.info.fingerprint != second.info.fingerprint
    # A changed file is re-read, never served from the cache.
    assert second.offerings[0].price == 0.097


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cloud,instance_type\n", r"aws.csv:1: header must be"),
        (
            HEADER + "aws,m6i.large,,,2.0,8.0,abc,,us-east-1,use1-az1\n",
            r"aws.csv:2: price_hourly 'abc' is not a number",
        ),
        (HEADER + "aws,m6i.large,,,2.0,8.0,0.1,,us-east-1\n", r"aws.csv:2: expected 10 columns, found 9"),
        (HEADER + AWS_ROWS + "aws,m6i.large,,,2.0,8.0,,,us-east-1,use1-az3\n", r"aws.csv:4: neither price"),
        (
            HEADER + AWS_ROWS + "gcp,m6i.large,,,2.0,8.0,0.1,,us-east-1,use1-az3\n",
            r"aws.csv:4: cloud is 'gcp'",
        ),
        (HEADER + AWS_ROWS + AWS_ROWS[: AWS_ROWS.index("\n") + 1], r"aws.csv:4: duplicate of line 2"),
        (
            HEADER + "aws,m6i.large,,,2.0,8.0,-1,,us-east-1,use1-az1\n",
            r"aws.csv:2: price_hourly must be a positive",
        ),
        (
            HEADER + "aws,p4d.24xlarge,A100,8.5,96,1152,32.7,,us-east-1,use1-az1\n",
            r"aws.csv:2: accelerator_count",
        ),
        (HEADER + "aws,m6i.large,,,2.0,8.0,0.1,,,use1-az1\n", r"aws.csv:2: region is empty"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, text, message):
    write(tmp_path, "aws.csv", text)
    with pytest.raises(CatalogError, match=message):
        load_catalog(tmp_path)


def test_missing_directory_or_files(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "nope")
    with pytest.raises(CatalogError, match="has none of aws.csv, gcp.csv, azure.csv"):
        load_catalog(tmp_path)


def test_custom_egress_overrides_per_cloud(tmp_path):
    write(tmp_path, "aws.csv", HEADER + AWS_ROWS)
    write(
        tmp_path,
        "egress.yaml",
        (
            "rates:\n  aws: {same_zone: 0, cross_zone: 0.02, inter_region: 0.05, internet: 0.07}\n"
            "bandwidth_gbps: {same_zone: 25, cross_zone: 20, inter_region: 2, internet: 1}\n"
        ),
    )
    catalog = load_catalog(tmp_path)
    assert catalog.rates["aws"].internet == 0.07
    assert catalog.rates["gcp"].internet == 0.12  # not overridden: shipped value
    assert catalog.bandwidth.internet == 1.0
    assert catalog.info.fingerprint != load_catalog_without_egress(tmp_path).info.fingerprint


def load_catalog_without_egress(folder: Path) -> Catalog:
    other = folder.parent / (folder.name + "-plain")
    other.mkdir()
    shutil.copy(folder / "aws.csv", other / "aws.csv")
    return load_catalog(other)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rates:\n  aws: {same_zone: 0, cross_zone: 0.03, inter_region: 0.02, internet: 0.09}\n",
            "same_zone <= cross_zone <= inter_region <= internet",
        ),
        ("rates:\n  aws: {same_zone: 0, cross_zone: 0.01}\n", "exactly the keys"),
        ("rates:\n  aws: {same_zone: -1, cross_zone: 0, inter_region: 0, internet: 0}\n", "must be >= 0"),
        ("rates: [1, 2\n", "not valid YAML"),
        ("bandwidth_gbps: {same_zone: 0, cross_zone: 1, inter_region: 1, internet: 1}\n", "must be > 0"),
    ],
)
def test_bad_egress_file(tmp_path, text, message):
    write(tmp_path, "aws.csv", HEADER + AWS_ROWS)
    write(tmp_path, "egress.yaml", text)
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_catalog(tmp_path)


def test_gcp_combination_in_custom_directory(tmp_path):
    write(
        tmp_path,
        "gcp.csv",
        HEADER
        + (
            "gcp,,A100,1,,,2.0,0.5,us-central1,us-central1-a\n"
            "gcp,,T4,1,,,0.35,0.1,us-central1,us-central1-a\n"
            "gcp,a2-highgpu-1g,,,12.0,85.0,0.7,0.2,us-central1,us-central1-a\n"
            "gcp,a2-highgpu-1g,,,12.0,85.0,0.7,0.2,us-central1,us-central1-b\n"
            "gcp,n1-standard-4,,,4.0,15.0,0.19,,us-central1,us-central1-a\n"
        ),
    )
    catalog = load_catalog(tmp_path)
    got = sorted(
        ((o.instance_type, o.accelerator, o.location.zone, o.price, o.spot_price) for o in catalog.offerings),
        key=str,
    )
    assert got == [
        # The a2 host in zone b has no A100 row there: no offering.
        ("a2-highgpu-1g", "A100", "us-central1-a", 2.7, 0.7),
        # No host spot price: the combination has no spot price either.
        ("n1-standard-4", "T4", "us-central1-a", 0.54, None),
        ("n1-standard-4", None, "us-central1-a", 0.19, None),
    ]


def test_cache_is_used_and_survives_corruption(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SKYPLAN_CACHE_DIR", str(cache))
    data = tmp_path / "data"
    write(data, "aws.csv", HEADER + AWS_ROWS)
    catalog_module._MEMO.clear()
    first = load_catalog(data)
    files = list(cache.glob("catalog-*.pickle"))
    assert len(files) == 1
    catalog_module._MEMO.clear()
    assert load_catalog(data).offerings == first.offerings
    catalog_module._MEMO.clear()
    files[0].write_bytes(b"not a pickle")
    assert load_catalog(data).offerings == first.offerings
