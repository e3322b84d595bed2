"""gs:// storage through google-cloud-storage.

Credentials are Application Default Credentials. When `STORAGE_EMULATOR_HOST` is set (a GCS
emulator, as in the tests), google-cloud-storage sends every request there itself; skyplan then
uses anonymous credentials, which the emulator accepts, instead of looking for ADC.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from skyplan.storage.base import Storage, split_bucket


class GCSStorage(Storage):
    """`gs://BUCKET/prefix`."""

    schemes: ClassVar[tuple[str, ...]] = ("gs",)
    cloud: ClassVar[str] = "gcp"
    sdk: ClassVar[tuple[str, str] | None] = ("gcp", "google-cloud-storage")

    def __init__(self, base: str):
        super().__init__(base)
        self.bucket, self.prefix = split_bucket(self.base.partition("://")[2], base)
        self._bucket: Any = None

    @property
    def client_bucket(self) -> Any:
        if self._bucket is None:
            try:
                from google.cloud import storage as gcs  # type: ignore[import-not-found]
            except ImportError:
                self._require()
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                client = gcs.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "skyplan"),
                                    credentials=AnonymousCredentials())
            else:
                client = gcs.Client()
            self._bucket = client.bucket(self.bucket)
        return self._bucket

    def read(self, key: str) -> bytes | None:
        from google.api_core.exceptions import NotFound

        try:
            return self.client_bucket.blob(self._object_name(key)).download_as_bytes()
        except NotFound:
            return None
        except Exception as exc:
            raise self._error(key, "read", exc) from None

    def write(self, key: str, data: bytes) -> None:
        try:
            self.client_bucket.blob(self._object_name(key)).upload_from_string(data)
        except Exception as exc:
            raise self._error(key, "write", exc) from None

    def list(self, prefix: str = "") -> list[str]:
        try:
            blobs = self.client_bucket.client.list_blobs(self.bucket, prefix=self._object_name(prefix))
            return sorted(self._key_of(b.name) for b in blobs)
        except Exception as exc:
            raise self._error(prefix, "list", exc) from None

    def delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.client_bucket.blob(self._object_name(key)).delete()
        except NotFound:
            pass
        except Exception as exc:
            raise self._error(key, "delete", exc) from None

    def upload_file(self, local_path: Path, key: str) -> None:
        try:  # resumable (chunked) upload above 8 MiB
            self.client_bucket.blob(self._object_name(key)).upload_from_filename(str(local_path))
        except Exception as exc:
            raise self._error(key, f"upload {local_path}", exc) from None

    def download_file(self, key: str, local_path: Path) -> bool:
        from google.api_core.exceptions import NotFound

        local_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client_bucket.blob(self._object_name(key)).download_to_filename(str(local_path))
        except NotFound:
            local_path.unlink(missing_ok=True)
            return False
        except Exception as exc:
            raise self._error(key, "download", exc) from None
        return True

    def rclone_remote(self, key: str = "") -> tuple[dict[str, str], str]:
        env = {
            "RCLONE_CONFIG_SKYPLAN_GCS_TYPE": "google cloud storage",
            "RCLONE_CONFIG_SKYPLAN_GCS_ENV_AUTH": "true",
            "RCLONE_CONFIG_SKYPLAN_GCS_BUCKET_POLICY_ONLY": "true",
        }
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator:
            env["RCLONE_CONFIG_SKYPLAN_GCS_ENDPOINT"] = emulator
            env["RCLONE_CONFIG_SKYPLAN_GCS_ANONYMOUS"] = "true"
            del env["RCLONE_CONFIG_SKYPLAN_GCS_ENV_AUTH"]
        return env, f"skyplan_gcs:{self.bucket}/{self._object_name(key)}".rstrip("/")
