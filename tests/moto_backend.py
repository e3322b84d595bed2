"""A moto S3 server on loopback for Terraform's S3 backend (and the environment that points at it).

Terraform's S3 backend is built into Terraform (no provider download). It reads the endpoint from
AWS_ENDPOINT_URL_S3 and the credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, as it would
in CI; what only a test needs (path-style URLs for a loopback host, no STS/IMDS/region checks)
goes through TF_CLI_ARGS_init, Terraform's own way to add `-backend-config` to every init.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import storage_servers as servers

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


@pytest.fixture()
def moto_s3(tmp_path: Path) -> Iterator[MotoS3]:
    """A fresh moto server (tests/storage_servers.py) with one empty bucket, stopped after the test."""
    reason = servers.moto_missing()
    if reason:
        require(reason)
    server = servers.start_moto(tmp_path)
    try:
        moto = MotoS3(endpoint=server.env["AWS_ENDPOINT_URL"], bucket="skyplan-state")
        moto.client().create_bucket(Bucket=moto.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield moto
    finally:
        server.stop()
