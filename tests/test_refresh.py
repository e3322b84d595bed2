"""Tests for skyplan.refresh: AWS (moto + Stubber), GCP (recorded SKUs), Azure (recorded pages)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from moto import mock_aws

from skyplan.catalog import CSV_HEADER, load_catalog, read_rows
from skyplan.errors import CatalogError
from skyplan.refresh import refresh
from skyplan.refresh._rows import PriceRow, format_number, render_csv
from skyplan.refresh.azure import region_url
from skyplan.refresh.gcp import COMPUTE_SERVICE, unit_prices

FIXTURES = Path(__file__).parent / "fixtures" / "refresh"
HEADER = ",".join(CSV_HEADER) + "\n"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SKYPLAN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def rows_by_key(path: Path) -> dict[tuple, PriceRow]:
    return {
        (r.instance_type, r.accelerator, r.accelerator_count, r.zone or r.region): r for r in read_rows(path)
    }


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def test_render_csv_matches_shipped_format_and_order():
    rows = [
        PriceRow("gcp", "n1-standard-8", None, 0, 8.0, 30.0, 0.38, None, "us-central1", "us-central1-a"),
        PriceRow("gcp", "", "T4", 1, None, None, 0.35, 0.14, "us-central1", "us-central1-a"),
        PriceRow("gcp", "", "T4", 4, None, None, 1.4, 0.56, "us-central1", "us-central1-a"),
        PriceRow("gcp", "", "A100", 16, None, None, 46.94, 15.5, "us-central1", "us-central1-a"),
        PriceRow("gcp", "", "A100", 2, None, None, 5.87, 1.9, "us-central1", "us-central1-a"),
    ]
    assert render_csv(rows).splitlines() == [
        ",".join(CSV_HEADER),
        "gcp,,A100,2,,,5.87,1.9,us-central1,us-central1-a",
        "gcp,,A100,16,,,46.94,15.5,us-central1,us-central1-a",
        "gcp,,T4,1,,,0.35,0.14,us-central1,us-central1-a",
        "gcp,,T4,4,,,1.4,0.56,us-central1,us-central1-a",
        "gcp,n1-standard-8,,,8.0,30.0,0.38,,us-central1,us-central1-a",
    ]
    assert format_number(0.00001, 8) == "0.00001" and format_number(2.0, 2) == "2.0"


def test_shipped_files_round_trip_through_the_writer():
    from skyplan.assets import builtin_catalog_dir

    for cloud in ("aws", "gcp", "azure"):
        path = builtin_catalog_dir() / f"{cloud}.csv"
        again = render_csv(read_rows(path))
        # Same rows, same order; only number spellings may differ (e.g. "64" vs "64.0").
        assert [line.split(",")[:4] for line in again.splitlines()] == [
            line.split(",")[:4] for line in path.read_text().splitlines()
        ]


# ---------------------------------------------------------------------------------------------
# AWS: EC2 through moto, Pricing GetProducts through botocore's Stubber (moto: "Not yet implemented")
# ---------------------------------------------------------------------------------------------


class StubbedPricingSession:
    """A boto3 session whose `pricing` client replays recorded GetProducts pages."""

    def __init__(self, session, pricing):
        self._session = session
        self._pricing = pricing

    def client(self, name, region_name=None):
        if name == "pricing":
            return self._pricing
        return self._session.client(name, region_name=region_name)


def aws_session_with_recorded_pricing():
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    pricing = session.client("pricing", region_name="us-east-1")
    stubber = Stubber(pricing)
    pages = fixture("aws_get_products_us-east-1.json")["pages"]
    token = None
    for page in pages:
        response = copy.deepcopy(page)
        response["PriceList"] = [json.dumps(product) for product in page["PriceList"]]
        expected = {
            "ServiceCode": "AmazonEC2",
            "FormatVersion": "aws_v1",
            "Filters": [
                {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
                {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
                {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
                {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
                {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"},
            ],
        }
        if token:
            expected["NextToken"] = token
        stubber.add_response("get_products", response, expected)
        token = page.get("NextToken")
    stubber.activate()
    return StubbedPricingSession(session, pricing), stubber


@mock_aws
def test_aws_refresh_writes_zone_id_rows(tmp_path):
    session, stubber = aws_session_with_recorded_pricing()
    messages: list[str] = []
    path = refresh("aws", tmp_path, regions=["us-east-1"], progress=messages.append, source=session)
    stubber.assert_no_pending_responses()
    assert path == tmp_path / "aws.csv"
    assert path.read_text().startswith(HEADER)
    rows = read_rows(path)
    assert rows == sorted(
        rows, key=lambda r: (r.instance_type, r.accelerator or "", r.accelerator_count, r.region, r.zone)
    )

    ec2 = boto3.client("ec2", region_name="us-east-1")
    ids = {z["ZoneName"]: z["ZoneId"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
    offered = {
        o["Location"]
        for o in ec2.describe_instance_type_offerings(
            LocationType="availability-zone-id", Filters=[{"Name": "instance-type", "Values": ["m6i.large"]}]
        )["InstanceTypeOfferings"]
    }
    spot = {
        ids[s["AvailabilityZone"]]: float(s["SpotPrice"])
        for s in ec2.describe_spot_price_history(
            InstanceTypes=["m6i.large"], ProductDescriptions=["Linux/UNIX"]
        )["SpotPriceHistory"]
    }

    m6i = {r.zone: r for r in rows if r.instance_type == "m6i.large"}
    assert set(m6i) == offered  # zones are AZ ids, one row per offering
    for zone_id, row in m6i.items():
        assert row.price == 0.096 and row.vcpus == 2.0 and row.memory_gib == 8.0
        assert row.spot_price == spot.get(zone_id)
    p4d = [r for r in rows if r.instance_type == "p4d.24xlarge"]
    assert p4d and all(
        r.accelerator == "A100" and r.accelerator_count == 8 and r.price == 32.7726 for r in p4d
    )
    # Canonical names for the 80 GB / 32 GB variants; a zero price means "not sold on demand".
    p4de = [r for r in rows if r.instance_type == "p4de.24xlarge"]
    assert p4de and all(r.accelerator == "A100-80GB" and r.price == 40.9657 for r in p4de)
    p3dn = [r for r in rows if r.instance_type == "p3dn.24xlarge"]
    assert all(r.accelerator == "V100-32GB" and r.price is None and r.spot_price for r in p3dn)
    # A Capacity Block price is not the on-demand price; non-shipped families are skipped.
    assert {r.price for r in rows if r.instance_type == "p5.48xlarge"} == {55.04}
    assert not [r for r in rows if r.instance_type.startswith("t3.")]
    inf1 = [r for r in rows if r.instance_type == "inf1.24xlarge"]
    assert not inf1 or inf1[0].accelerator == "Inferentia" and inf1[0].accelerator_count == 16
    assert any("on-demand prices" in m for m in messages) and "wrote" in messages[-1]
    assert load_catalog(tmp_path).offerings  # the result loads as a --catalog directory


def test_aws_missing_credentials_is_a_clear_error(tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(CatalogError, match="AWS credentials not found"):
        refresh("aws", tmp_path / "out", regions=["us-east-1"], source=boto3.Session(region_name="us-east-1"))
    assert not (tmp_path / "out" / "aws.csv").exists()


# ---------------------------------------------------------------------------------------------
# GCP: recorded SKUs, injected client
# ---------------------------------------------------------------------------------------------


GCP_BASE = HEADER + (
    "gcp,,A100,1,,,2.9,1.0,us-central1,us-central1-a\n"
    "gcp,,T4,1,,,0.3,0.1,us-central1,us-central1-a\n"
    "gcp,,T4,4,,,1.2,0.4,us-central1,us-central1-a\n"
    "gcp,,tpu-v5p-8,1,,,16.8,6.72,us-east5,us-east5-a\n"
    "gcp,a2-highgpu-1g,,,12.0,85.0,0.7,0.2,us-central1,us-central1-a\n"
    "gcp,c3-standard-4,,,4.0,16.0,0.2,0.02,us-central1,us-central1-a\n"
    "gcp,n1-standard-8,,,8.0,30.0,0.38,0.08,us-central1,us-central1-a\n"
    "gcp,n1-standard-8,,,8.0,30.0,0.38,0.08,us-east1,us-east1-b\n"
    "gcp,n1-standard-8,,,8.0,30.0,0.42,0.09,europe-west4,europe-west4-a\n"
)


class FakeBillingClient:
    def __init__(self, skus):
        self.skus = skus
        self.parents: list[str] = []

    def list_skus(self, parent):
        self.parents.append(parent)
        return iter(self.skus)


def gcp_base(tmp_path: Path) -> Path:
    base = tmp_path / "base"
    base.mkdir()
    (base / "gcp.csv").write_text(GCP_BASE)
    return base


def test_gcp_refresh_reprices_base_rows(tmp_path):
    client = FakeBillingClient(fixture("gcp_skus.json")["skus"])
    messages: list[str] = []
    path = refresh(
        "gcp",
        tmp_path / "out",
        regions=["us-central1", "us-east1", "us-east5"],
        base_dir=gcp_base(tmp_path),
        source=client,
        progress=messages.append,
    )
    assert client.parents == [COMPUTE_SERVICE]
    got = rows_by_key(path)
    n1 = got[("n1-standard-8", None, 0, "us-central1-a")]
    # 8 × 0.031611 + 30 × 0.004237 (N1 core and RAM SKUs), spot from the Spot Preemptible SKUs.
    assert n1.price == pytest.approx(8 * 0.031611 + 30 * 0.004237)
    assert n1.spot_price == pytest.approx(8 * 0.006655 + 30 * 0.000892)
    assert ("n1-standard-8", None, 0, "us-east1-b") in got
    assert got[("", "T4", 4, "us-central1-a")].price == pytest.approx(4 * 0.35)
    assert got[("", "T4", 4, "us-central1-a")].spot_price == pytest.approx(4 * 0.14)
    a100 = got[("", "A100", 1, "us-central1-a")]
    assert (
        a100.price == pytest.approx(2.933908) and a100.spot_price is None
    )  # the 1-year commitment is ignored
    a2 = got[("a2-highgpu-1g", None, 0, "us-central1-a")]
    # vCPUs × A2 core + GiB × A2 RAM reproduces the shipped host price (catalog README: 0.73948).
    assert a2.price == pytest.approx(12 * 0.031611 + 85 * 0.004237)
    assert a2.price == pytest.approx(0.73948, abs=1e-5)
    # Not asked for, or no SKU for the family (C3), or a TPU (carried over unchanged).
    assert not [k for k in got if k[3] == "europe-west4-a"]
    assert ("c3-standard-4", None, 0, "us-central1-a") not in got
    assert got[("", "tpu-v5p-8", 1, "us-east5-a")].price == 16.8
    assert any("TPU rows carried over" in m for m in messages)
    # The combined offering is host + GPU at the new prices.
    offering = next(
        o
        for o in load_catalog(path.parent).offerings
        if o.instance_type == "n1-standard-8" and o.accelerator == "T4" and o.accelerator_count == 1
    )
    assert offering.price == pytest.approx(n1.price + 0.35)


def _as_message_fields(sku: dict) -> dict:
    # `to_dict` spells int64 as strings and timestamps as text; the constructor wants numbers
    # and datetimes, so undo exactly those two.
    fields = copy.deepcopy(sku)
    for info in fields["pricing_info"]:
        info.pop("effective_time", None)
        for tier in info["pricing_expression"]["tiered_rates"]:
            tier["unit_price"]["units"] = int(tier["unit_price"]["units"])
    return fields


def test_gcp_sku_messages_and_dicts_agree():
    billing = pytest.importorskip("google.cloud.billing_v1")
    raw = fixture("gcp_skus.json")["skus"]
    messages = [billing.Sku(_as_message_fields(sku)) for sku in raw]
    assert unit_prices(messages) == unit_prices(raw)
    assert unit_prices(raw)[("N1", "Core", False, "us-central1")] == pytest.approx(0.031611)


def test_gcp_unknown_region_and_missing_credentials(tmp_path):
    base = gcp_base(tmp_path)
    with pytest.raises(CatalogError, match="not in the base catalog"):
        refresh("gcp", tmp_path / "out", regions=["mars-north1"], base_dir=base, source=FakeBillingClient([]))
    auth = pytest.importorskip("google.auth.exceptions")

    class NoCredentials:
        def list_skus(self, parent):
            raise auth.DefaultCredentialsError("Your default credentials were not found.")

    with pytest.raises(CatalogError, match="Google credentials not found"):
        refresh("gcp", tmp_path / "out", base_dir=base, source=NoCredentials())
    with pytest.raises(CatalogError, match="returned no prices"):
        refresh("gcp", tmp_path / "out", regions=["us-central1"], base_dir=base, source=FakeBillingClient([]))


# ---------------------------------------------------------------------------------------------
# Azure: recorded retail-price pages, injected fetch
# ---------------------------------------------------------------------------------------------


AZURE_BASE = HEADER + (
    "azure,Standard_D4s_v5,,,4.0,16,0.192,0.02,eastus,\n"
    "azure,Standard_NC24ads_A100_v4,A100-80GB,1,24.0,220,3.67,0.5,eastus,\n"
)


def test_azure_refresh_follows_pages_and_filters_meters(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "azure.csv").write_text(AZURE_BASE)
    first = fixture("azure_eastus_page1.json")
    pages = {region_url("eastus"): first, first["NextPageLink"]: fixture("azure_eastus_page2.json")}
    fetched: list[str] = []

    def fetch(url):
        fetched.append(url)
        return pages[url]

    path = refresh("azure", tmp_path / "out", base_dir=base, source=fetch)
    assert fetched == [region_url("eastus"), first["NextPageLink"]]
    assert "armRegionName%20eq%20%27eastus%27" in fetched[0]
    assert path.read_text() == HEADER + (
        # Linux consumption price and the Spot meter; Windows, Low Priority, DevTest and other
        # regions' meters are ignored; shapes come from the base catalog.
        "azure,Standard_D4s_v5,,,4.0,16.0,0.192,0.02112,eastus,\n"
        "azure,Standard_NC24ads_A100_v4,A100-80GB,1,24.0,220.0,3.673,1.1,eastus,\n"
    )
    # The other clouds come from the shipped snapshot, so the directory is a full catalog,
    # and its date is the oldest cloud's.
    meta = yaml.safe_load((tmp_path / "out" / "catalog.yaml").read_text())
    assert meta["clouds"]["gcp"] == meta["clouds"]["aws"] == "2026-11-22"
    assert meta["clouds"]["azure"] >= "2026-11-23"
    catalog = load_catalog(tmp_path / "out")
    assert catalog.info.date == "2026-11-22"
    assert {o.cloud for o in catalog.offerings} == {"aws", "gcp", "azure"}


def test_refresh_rejects_unknown_cloud(tmp_path):
    with pytest.raises(CatalogError, match="choose one of aws, gcp, azure"):
        refresh("oracle", tmp_path)
