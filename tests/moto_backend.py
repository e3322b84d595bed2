"""A moto S3 server on loopback for Terraform's S3 backend (and the environment that points at it).

Terraform's S3 backend is built into Terraform (no provider download). It reads the endpoint from
AWS_ENDPOINT_URL_S3 and the credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, as it would
in CI; what only a test needs (path-style URLs for a loopback host, no STS/IMDS/region checks)
goes through TF_CLI_ARGS_init, Terraform's own way to add `-backend-config` to every init.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tools import require

REGION = "eu-west-1"
TEST_BACKEND_CONFIG = " ".join(
    f"-backend-config={setting}=true"
    for setting in ("use_path_style", "skip_credentials_validation", "skip_requesting_account_id",
                    "skip_metadata_api_check", "skip_region_validation")
)


@dataclass(frozen=True)
class MotoS3:
    endpoint: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """The environment a CI job would have, pointed at this server."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "TF_CLI_ARGS_init": TEST_BACKEND_CONFIG,
        }

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix`, sorted."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def moto_s3(tmp_path: Path) -> Iterator[MotoS3]:
    """A fresh moto server (`moto[server]`) with one empty bucket, stopped after the test."""
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        require(f"moto's server mode is not installed (pip install 'moto[server]'): {exc}")
    port = _free_port()
    log = (tmp_path / "moto.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    server = MotoS3(endpoint=f"http://127.0.0.1:{port}", bucket="skyplan-state")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                server.client().create_bucket(Bucket=server.bucket,
                                              CreateBucketConfiguration={"LocationConstraint": REGION})
                break
            except Exception as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start: {(tmp_path / 'moto.log').read_text()}") from exc
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
