"""s3:// storage through boto3.

boto3 takes its credentials from its own chain (environment, profile, instance role) and its
endpoint from `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` when set (botocore >= 1.31), which is
how the tests reach a moto server and how MinIO, Ceph or R2 users point skyplan at their service.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from skyplan.storage.base import Storage, split_bucket

_MISSING = ("NoSuchKey", "404", "NotFound")


class S3Storage(Storage):
    """`s3://BUCKET/prefix`."""

    schemes: ClassVar[tuple[str, ...]] = ("s3",)
    cloud: ClassVar[str] = "aws"
    sdk: ClassVar[tuple[str, str] | None] = ("aws", "boto3")

    def __init__(self, base: str):
        super().__init__(base)
        self.bucket, self.prefix = split_bucket(self.base.partition("://")[2], base)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError:
                self._require()
            self._client = boto3.client("s3")
        return self._client

    def read(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._object_name(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise self._error(key, "read", exc) from None

    def write(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._object_name(key), Body=data)
        except Exception as exc:  # an SDK error: say where
            raise self._error(key, "write", exc) from None

    def list(self, prefix: str = "") -> list[str]:
        keys = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._object_name(prefix))
            for page in pages:
                keys += [self._key_of(obj["Key"]) for obj in page.get("Contents", ())]
        except Exception as exc:
            raise self._error(prefix, "list", exc) from None
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._object_name(key))
        except Exception as exc:
            raise self._error(key, "delete", exc) from None

    def delete_prefix(self, prefix: str) -> None:
        keys = self.list(prefix)
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = [{"Key": self._object_name(k)} for k in keys[i : i + 1000]]
            try:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except Exception as exc:
                raise self._error(prefix, "delete", exc) from None

    def upload_file(self, local_path: Path, key: str) -> None:
        try:  # upload_file switches to a multipart upload above 8 MiB
            self.client.upload_file(str(local_path), self.bucket, self._object_name(key))
        except Exception as exc:
            raise self._error(key, f"upload {local_path}", exc) from None

    def download_file(self, key: str, local_path: Path) -> bool:
        from botocore.exceptions import ClientError

        local_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self._object_name(key), str(local_path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise self._error(key, "download", exc) from None
        return True

    def rclone_remote(self, key: str = "") -> tuple[dict[str, str], str]:
        env = {
            "RCLONE_CONFIG_SKYPLAN_S3_TYPE": "s3",
            "RCLONE_CONFIG_SKYPLAN_S3_PROVIDER": "AWS",
            "RCLONE_CONFIG_SKYPLAN_S3_ENV_AUTH": "true",
        }
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:  # moto, MinIO, Ceph, R2: path-style addressing at that endpoint
            env["RCLONE_CONFIG_SKYPLAN_S3_PROVIDER"] = "Other"
            env["RCLONE_CONFIG_SKYPLAN_S3_ENDPOINT"] = endpoint
            env["RCLONE_CONFIG_SKYPLAN_S3_FORCE_PATH_STYLE"] = "true"
        return env, f"skyplan_s3:{self.bucket}/{self._object_name(key)}".rstrip("/")
