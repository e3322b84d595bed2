"""Price-API failures and missing SDKs are one line each: the service, the HTTP status, the extra."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from moto import mock_aws

from skyplan.catalog import CSV_HEADER
from skyplan.errors import EXIT_BAD_INPUT, CatalogError
from skyplan.refresh import azure, refresh

# What a load balancer in front of a price endpoint sends during an outage.
OUTAGE_PAGE = (b"<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n"
               b"<body><h1>Internal Server Error</h1><p>The server encountered an internal error.</p>"
               b"</body></html>\n")
HEADER = ",".join(CSV_HEADER) + "\n"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SKYPLAN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


class _Outage(http.server.BaseHTTPRequestHandler):
    status = 500
    requests: list[str] = []

    def _answer(self) -> None:
        type(self).requests.append(self.path)
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(OUTAGE_PAGE)))
        self.end_headers()
        self.wfile.write(OUTAGE_PAGE)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def outage() -> Iterator[str]:
    """A local endpoint that answers every request with HTTP 500 and an HTML page."""
    _Outage.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Outage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _Session:
    """A boto3 session sending the named services to `endpoint`, without botocore's retries."""

    def __init__(self, endpoint: str, services: tuple[str, ...]):
        self._session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                      region_name="us-east-1")
        self._endpoint = endpoint
        self._services = services

    def client(self, name, region_name=None):
        if name in self._services:
            return self._session.client(name, region_name=region_name, endpoint_url=self._endpoint,
                                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))
        return self._session.client(name, region_name=region_name)


def _one_line(error: CatalogError) -> str:
    text = str(error)
    assert "\n" not in text and "<" not in text
    return text


@mock_aws
def test_aws_pricing_http_500_is_one_line(tmp_path, outage):
    with pytest.raises(CatalogError) as caught:
        refresh("aws", tmp_path, regions=["us-east-1"], source=_Session(outage, ("pricing",)))
    assert _one_line(caught.value) == "AWS Pricing API (us-east-1): HTTP 500 Internal Server Error"
    assert _Outage.requests  # the failure came from the endpoint, not from a stub
    assert not (tmp_path / "aws.csv").exists()


def test_aws_ec2_http_500_names_the_region(tmp_path, outage):
    with pytest.raises(CatalogError) as caught:
        refresh("aws", tmp_path, regions=["eu-west-1"], source=_Session(outage, ("ec2", "pricing")))
    assert _one_line(caught.value) == "AWS EC2 API (eu-west-1): HTTP 500 Internal Server Error"


@mock_aws
def test_aws_error_codes_are_kept_when_they_are_text(tmp_path):
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    pricing = session.client("pricing", region_name="us-east-1")
    stubber = Stubber(pricing)
    stubber.add_client_error("get_products", service_error_code="AccessDeniedException",
                             service_message="User is not authorized to perform: pricing:GetProducts",
                             http_status_code=400)
    stubber.activate()

    class WithPricing:
        def client(self, name, region_name=None):
            return pricing if name == "pricing" else session.client(name, region_name=region_name)

    with pytest.raises(CatalogError) as caught:
        refresh("aws", tmp_path, regions=["us-east-1"], source=WithPricing())
    assert _one_line(caught.value) == ("AWS Pricing API (us-east-1): HTTP 400 Bad Request: AccessDeniedException: "
                                       "User is not authorized to perform: pricing:GetProducts")


def test_aws_unreachable_endpoint_is_one_line(tmp_path, outage):
    # A closed port: no HTTP status at all, the service and botocore's reason.
    closed = outage.rsplit(":", 1)[0] + ":9"
    with pytest.raises(CatalogError) as caught:
        refresh("aws", tmp_path, regions=["us-east-1"], source=_Session(closed, ("ec2",)))
    assert _one_line(caught.value).startswith("AWS EC2 API (us-east-1): Could not connect to the endpoint URL")


def _gcp_base(tmp_path: Path) -> Path:
    base = tmp_path / "base"
    base.mkdir()
    (base / "gcp.csv").write_text(HEADER + "gcp,n1-standard-8,,,8.0,30.0,0.38,0.08,us-central1,us-central1-a\n")
    return base


def test_gcp_http_500_is_one_line_without_the_page(tmp_path):
    exceptions = pytest.importorskip("google.api_core.exceptions")
    requests = pytest.importorskip("requests")
    # Built the way the REST transport builds it, from the HTTP response (its message quotes the body).
    response = requests.Response()
    response.status_code = 500
    response._content = OUTAGE_PAGE
    response.request = requests.Request("GET", "https://cloudbilling.googleapis.com/v1/services/x/skus").prepare()
    error = exceptions.from_http_response(response)
    assert "<html>" in str(error)

    class Failing:
        def list_skus(self, parent):
            raise error

    with pytest.raises(CatalogError) as caught:
        refresh("gcp", tmp_path / "out", base_dir=_gcp_base(tmp_path), source=Failing())
    assert _one_line(caught.value) == "GCP Cloud Billing Catalog API: HTTP 500 Internal Server Error"


def test_gcp_grpc_errors_carry_their_http_status(tmp_path):
    exceptions = pytest.importorskip("google.api_core.exceptions")

    class Denied:
        def list_skus(self, parent):
            raise exceptions.PermissionDenied("Cloud Billing API has not been used in project 123")

    with pytest.raises(CatalogError) as caught:
        refresh("gcp", tmp_path / "out", base_dir=_gcp_base(tmp_path), source=Denied())
    assert _one_line(caught.value) == ("GCP Cloud Billing Catalog API: HTTP 403 Forbidden: "
                                       "Cloud Billing API has not been used in project 123")


def test_azure_http_500_is_one_line_after_retries(tmp_path, outage, monkeypatch):
    base = tmp_path / "base"
    base.mkdir()
    (base / "azure.csv").write_text(HEADER + "azure,Standard_D4s_v5,,,4.0,16,0.192,0.02,eastus,\n")
    monkeypatch.setattr(azure, "API_URL", f"{outage}/api/retail/prices")
    monkeypatch.setattr(azure.time, "sleep", lambda seconds: None)  # the back-off, not the behaviour
    with pytest.raises(CatalogError) as caught:
        refresh("azure", tmp_path / "out", base_dir=base)
    assert _one_line(caught.value) == "Azure retail prices API (eastus): HTTP 500 Internal Server Error"
    assert len(_Outage.requests) == 4  # 500 is retried, then reported


def _cli_without(modules: tuple[str, ...], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`skyplan ARGS` in a fresh interpreter where importing `modules` fails, as on a plain install."""
    hide = ", ".join(repr(m) for m in modules)
    code = (f"import sys\nfor m in ({hide},): sys.modules[m] = None\n"
            "from skyplan.cli import main\nsys.argv = ['skyplan', *sys.argv[1:]]\nmain()\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(("cloud", "modules", "message"), [
    ("aws", ("boto3", "botocore"), "refreshing aws prices needs boto3, which is not installed: "
                                   "pip install 'skyplan[aws]'"),
    ("gcp", ("google.cloud.billing_v1",), "refreshing gcp prices needs google-cloud-billing, which is not "
                                          "installed: pip install 'skyplan[gcp]'"),
])
def test_refresh_without_the_sdk_names_the_extra(tmp_path, cloud, modules, message):
    done = _cli_without(modules, "catalog", "refresh", cloud, "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr.strip() == f"error: {message}"


def test_staging_to_s3_without_boto3_names_the_extra(tmp_path, monkeypatch):
    from skyplan.errors import SkyplanError
    from skyplan.storage import for_uri

    (tmp_path / "f").write_text("x")
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(SkyplanError, match=r"needs boto3, which is not installed: pip install 'skyplan\[aws\]'"):
        for_uri("s3://bucket/prefix").upload(tmp_path / "f", "t/workdir/f")


@pytest.mark.parametrize(("uri", "modules", "extra"), [
    ("s3://bucket/run/status.json", ("boto3", "botocore", "botocore.exceptions"), "aws"),
    ("gs://bucket/run/status.json", ("google.cloud.storage", "google.api_core.exceptions"), "gcp"),
    ("https://acct.blob.core.windows.net/c/run/status.json", ("azure.storage.blob", "azure.identity",
                                                              "azure.core.exceptions"), "azure"),
])
def test_reading_task_status_without_the_sdk_names_the_extra(monkeypatch, uri, modules, extra):
    from skyplan.errors import SkyplanError
    from skyplan.runstate import read_text

    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(SkyplanError, match=rf"which is not installed: pip install 'skyplan\[{extra}\]'$"):
        read_text(uri)
