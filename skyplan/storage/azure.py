"""Azure Blob storage through azure-storage-blob.

URIs: `https://ACCOUNT.blob.core.windows.net/CONTAINER/prefix` or `az://ACCOUNT/CONTAINER/prefix`.
Credentials: when `AZURE_STORAGE_CONNECTION_STRING` is set (Azurite, as in the tests, or an
account the user chose to reach by connection string) the client is built from it and talks to
its `BlobEndpoint`; otherwise `DefaultAzureCredential` (managed identity, `az login`, workload
identity) against the account's public endpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from skyplan.errors import SkyplanError
from skyplan.storage.base import Storage

_BLOB_HOST = ".blob.core.windows.net"


def is_blob_url(uri: str) -> bool:
    """Whether `uri` is an Azure blob URL (`https://ACCOUNT.blob.core.windows.net/…`) or `az://…`."""
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower()
    return bool(sep) and (scheme == "az" or (scheme == "https" and rest.split("/", 1)[0].lower().endswith(_BLOB_HOST)))


def connection_setting(name: str) -> str | None:
    """One `Name=value` setting of AZURE_STORAGE_CONNECTION_STRING (None when unset)."""
    for part in os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "").split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip().lower() == name.lower():
            return value.strip()
    return None


class AzureBlobStorage(Storage):
    """A container (and prefix) of an Azure storage account."""

    schemes: ClassVar[tuple[str, ...]] = ("az", "https")
    cloud: ClassVar[str] = "azure"
    sdk: ClassVar[tuple[str, str] | None] = ("azure", "azure-storage-blob and azure-identity")

    @classmethod
    def handles(cls, uri: str) -> bool:
        return is_blob_url(uri)

    def __init__(self, base: str):
        super().__init__(base)
        scheme, _, rest = self.base.partition("://")
        parts = [p for p in rest.split("/") if p]
        if len(parts) < 2:
            raise SkyplanError(
                f"storage {base!r}: Azure blob storage is https://ACCOUNT.blob.core.windows.net/CONTAINER/… "
                "or az://ACCOUNT/CONTAINER/…"
            )
        host = parts[0].lower()
        self.account = host.split(".", 1)[0] if scheme.lower() == "https" else host
        self.bucket, self.prefix = parts[1], "/".join(parts[2:])
        self._container: Any = None

    @property
    def container(self) -> Any:
        if self._container is None:
            try:
                from azure.storage.blob import BlobServiceClient
            except ImportError:
                self._require()
            conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
            if conn:
                service = BlobServiceClient.from_connection_string(conn)
            else:
                try:
                    from azure.identity import DefaultAzureCredential
                except ImportError:
                    self._require()
                service = BlobServiceClient(f"https://{self.account}{_BLOB_HOST}", credential=DefaultAzureCredential())
            self._container = service.get_container_client(self.bucket)
        return self._container

    def read(self, key: str) -> bytes | None:
        ResourceNotFoundError = self._import("azure.core.exceptions").ResourceNotFoundError

        try:
            return self.container.download_blob(self._object_name(key)).readall()
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise self._error(key, "read", exc) from None

    def write(self, key: str, data: bytes) -> None:
        try:
            self.container.upload_blob(self._object_name(key), data, overwrite=True)
        except Exception as exc:
            raise self._error(key, "write", exc) from None

    def list(self, prefix: str = "") -> list[str]:
        try:
            return sorted(self._key_of(b.name) for b in self.container.list_blobs(name_starts_with=self._object_name(prefix)))
        except Exception as exc:
            raise self._error(prefix, "list", exc) from None

    def delete(self, key: str) -> None:
        ResourceNotFoundError = self._import("azure.core.exceptions").ResourceNotFoundError

        try:
            self.container.delete_blob(self._object_name(key))
        except ResourceNotFoundError:
            pass
        except Exception as exc:
            raise self._error(key, "delete", exc) from None

    def upload_file(self, local_path: Path, key: str) -> None:
        try:  # the SDK uploads in blocks (Put Block / Put Block List) above 64 MiB by default
            with open(local_path, "rb") as f:
                self.container.upload_blob(self._object_name(key), f, overwrite=True, max_concurrency=4)
        except Exception as exc:
            raise self._error(key, f"upload {local_path}", exc) from None

    def download_file(self, key: str, local_path: Path) -> bool:
        data = self.read(key)
        if data is None:
            return False
        from skyplan.atomicfile import write_bytes

        write_bytes(local_path, data)
        return True

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        ResourceNotFoundError = self._import("azure.core.exceptions").ResourceNotFoundError

        try:
            downloader = self.container.download_blob(self._object_name(key))
            return downloader.readall(), downloader.properties.etag
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise self._error(key, "read", exc) from None

    def write_versioned(self, key: str, data: bytes, *, if_absent: bool = False,
                        if_version: str | None = None) -> str | None:
        MatchConditions = self._import("azure.core").MatchConditions
        ResourceExistsError = self._import("azure.core.exceptions").ResourceExistsError
        ResourceModifiedError = self._import("azure.core.exceptions").ResourceModifiedError

        condition: dict = {}
        if if_absent:
            condition = {"overwrite": False}
        elif if_version:
            condition = {"overwrite": True, "etag": if_version, "match_condition": MatchConditions.IfNotModified}
        else:
            condition = {"overwrite": True}
        try:
            done = self.container.get_blob_client(self._object_name(key)).upload_blob(data, **condition)
        except (ResourceExistsError, ResourceModifiedError):
            return None
        except Exception as exc:
            raise self._error(key, "write", exc) from None
        return done["etag"]

    def delete_versioned(self, key: str, if_version: str) -> bool:
        MatchConditions = self._import("azure.core").MatchConditions
        ResourceModifiedError = self._import("azure.core.exceptions").ResourceModifiedError
        ResourceNotFoundError = self._import("azure.core.exceptions").ResourceNotFoundError

        try:
            self.container.delete_blob(self._object_name(key), etag=if_version,
                                       match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        except Exception as exc:
            raise self._error(key, "delete", exc) from None
        return True

    def release_stale_lock(self, key: str) -> bool:
        """Break the lease on blob `key` (Terraform's azurerm backend locks state by an infinite
        lease on the state blob, which a killed Terraform never releases)."""
        ResourceNotFoundError = self._import("azure.core.exceptions").ResourceNotFoundError
        BlobLeaseClient = self._import("azure.storage.blob").BlobLeaseClient

        blob = self.container.get_blob_client(self._object_name(key))
        try:
            if blob.get_blob_properties().lease.state != "leased":
                return False
            BlobLeaseClient(blob).break_lease(lease_break_period=0)
        except ResourceNotFoundError:
            return False
        except Exception as exc:
            raise self._error(key, "break the lease of", exc) from None
        return True

    def rclone_remote(self, key: str = "") -> tuple[dict[str, str], str]:
        env = {"RCLONE_CONFIG_SKYPLAN_AZ_TYPE": "azureblob"}
        endpoint = connection_setting("BlobEndpoint")
        if endpoint:  # Azurite: its well-known development account, at the connection string's endpoint
            env["RCLONE_CONFIG_SKYPLAN_AZ_USE_EMULATOR"] = "true"
            env["RCLONE_CONFIG_SKYPLAN_AZ_ENDPOINT"] = endpoint
        else:
            env["RCLONE_CONFIG_SKYPLAN_AZ_ACCOUNT"] = self.account or ""
            env["RCLONE_CONFIG_SKYPLAN_AZ_ENV_AUTH"] = "true"
        return env, f"skyplan_az:{self.bucket}/{self._object_name(key)}".rstrip("/")
