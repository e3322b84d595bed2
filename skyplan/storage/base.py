"""The storage seam: one `Storage` subclass per scheme (file://, s3://, gs://, Azure blob).

Everything skyplan reads or writes in a run's storage (task status, result ids, staged workdirs
and file_mounts) goes through `skyplan.storage.for_uri(base).<method>(key)`, with keys relative
to the base URI. A backend imports its cloud SDK only when it first talks to the service, so
parsing a URI or asking `cloud_of()` never needs an SDK; a missing one is a one-line error
naming the pip extra. Credentials are always the SDK's own chain (or its standard emulator
setting), never a key of skyplan's.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from skyplan.errors import SkyplanError
from skyplan.sdk import missing_sdk


class MissingSDKError(SkyplanError):
    """The cloud SDK a storage backend needs is not installed (the message names the pip extra)."""


class Storage(ABC):
    """A base URI in one storage service, and the operations skyplan needs on keys under it.

    Keys are `/`-separated paths relative to the base (`train/status.json`); a key ending in
    `/` names a "directory" (a prefix). Subclasses set the ClassVars and implement the
    abstract methods; `write` of a whole object is atomic on every backend (a reader sees the
    old object or the new one)."""

    schemes: ClassVar[tuple[str, ...]]  # URI schemes handled, e.g. ("s3",)
    cloud: ClassVar[str]  # "aws", "gcp", "azure" or "local"
    sdk: ClassVar[tuple[str, str] | None]  # (pip extra, packages), e.g. ("aws", "boto3"); None: stdlib only

    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.bucket = ""  # bucket or container; "" for file://
        self.prefix = ""  # without leading or trailing "/"
        self.account: str | None = None  # Azure storage account

    @classmethod
    def handles(cls, uri: str) -> bool:
        """Whether this backend serves `uri` (by default: its scheme is one of `schemes`)."""
        scheme, sep, _ = uri.partition("://")
        return bool(sep) and scheme.lower() in cls.schemes

    # -- keys and URIs ------------------------------------------------------------------------

    def uri(self, key: str = "") -> str:
        """The full URI of `key` (the base itself for "")."""
        key = key.lstrip("/")
        return f"{self.base}/{key}" if key else self.base

    def _object_name(self, key: str) -> str:
        """The bucket-relative name of `key` (prefix joined)."""
        key = key.lstrip("/")
        if not key:  # the base itself: the object a full object URI names
            return self.prefix
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key_of(self, name: str) -> str:
        """The base-relative key of a bucket-relative object name."""
        return name[len(self.prefix) + 1 :] if self.prefix else name

    def _require(self, purpose: str = "") -> None:
        """Raise the one-line missing-SDK error (used by backends when an import fails)."""
        assert self.sdk is not None
        extra, packages = self.sdk
        raise missing_sdk(extra, packages, purpose or f"{self.schemes[0]}:// storage ({self.base})",
                          MissingSDKError) from None

    def _import(self, module: str) -> Any:
        """Import a module of the backend's SDK, or raise the one-line missing-SDK error."""
        try:
            return importlib.import_module(module)
        except ImportError:
            self._require()

    def _error(self, key: str, what: str, exc: BaseException) -> SkyplanError:
        return SkyplanError(f"{self.uri(key)}: could not {what}: {exc}")

    # -- operations ---------------------------------------------------------------------------

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """The bytes of object `key`, None when it does not exist."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Create or replace object `key` with `data` (atomically)."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """The keys of every object whose key starts with `prefix`, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete object `key`; nothing when it is not there."""

    @abstractmethod
    def upload_file(self, local_path: Path, key: str) -> None:
        """Upload one local file to `key` (multipart for large files where the service has it)."""

    @abstractmethod
    def download_file(self, key: str, local_path: Path) -> bool:
        """Download object `key` to `local_path` (parents created); False when it does not exist."""

    @abstractmethod
    def rclone_remote(self, key: str = "") -> tuple[dict[str, str], str]:
        """What the executor runs to move data: (env, remote path) for rclone.

        `env` holds `RCLONE_CONFIG_<NAME>_*` settings that define an rclone remote named
        `<name>` taking its credentials from the environment (or the emulator setting), plus
        rclone's own settings a backend needs (e.g. `RCLONE_CA_CERT`) — never a secret value;
        the path is `<name>:bucket/prefix/key`."""

    # -- conditional operations (a lock or a compare-and-swap in storage) ---------------------

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """(bytes, version) of object `key`, None when it does not exist. The version is an opaque
        token (ETag, generation) for `write_versioned` / `delete_versioned`."""

    @abstractmethod
    def write_versioned(self, key: str, data: bytes, *, if_absent: bool = False,
                        if_version: str | None = None) -> str | None:
        """Write `key` only if it does not exist (`if_absent`) or still has version `if_version`.

        Returns the new version, or None when the condition did not hold (nothing written)."""

    @abstractmethod
    def delete_versioned(self, key: str, if_version: str) -> bool:
        """Delete `key` only if it still has version `if_version`; whether it was deleted."""

    def release_stale_lock(self, key: str) -> bool:
        """Remove the lock a killed writer left on `key`; whether there was one. A lock object
        (Terraform's S3 `<state>.tflock`, GCS `default.tflock`) is deleted; backends whose locks
        are leases on the locked object itself (Azure Blob) break the lease instead."""
        if self.read(key) is None:
            return False
        self.delete(key)
        return True

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with `prefix` (one call for a whole task's files)."""
        for key in self.list(prefix):
            self.delete(key)

    def upload(self, local_path: str | os.PathLike[str], key: str) -> list[str]:
        """Upload a file to `key`, or a directory's files (symlinks followed) under `key/`.

        Returns the keys written, sorted."""
        path = Path(local_path)
        if not path.is_dir():
            self.upload_file(path, key)
            return [key]
        written = []
        for file, rel in walk_files(path):
            self.upload_file(file, f"{key.rstrip('/')}/{rel}" if key.strip("/") else rel)
            written.append(f"{key.rstrip('/')}/{rel}" if key.strip("/") else rel)
        return sorted(written)

    def download(self, key: str, local_path: str | os.PathLike[str]) -> list[Path]:
        """Download object `key` to `local_path`, or, for a key ending in `/`, every object under it
        into the directory `local_path`. Returns the local files written."""
        dest = Path(local_path)
        if not key.endswith("/"):
            return [dest] if self.download_file(key, dest) else []
        out = []
        for found in self.list(key):
            rel = found[len(key) :]
            if rel and not rel.endswith("/"):
                self.download_file(found, dest / rel)
                out.append(dest / rel)
        return out


def walk_files(root: Path, skip: Path | None = None) -> Iterator[tuple[Path, str]]:
    """(file, path relative to `root`) for every file under `root`, sorted; symlinks are followed.
    `skip` (a resolved directory) is left out, with everything under it."""
    found = []
    for directory, dirs, names in os.walk(root, followlinks=True):
        if skip is not None:
            dirs[:] = [d for d in dirs if Path(directory, d).resolve() != skip]
        dirs.sort()
        for name in names:
            file = Path(directory, name)
            found.append((file, file.relative_to(root).as_posix()))
    return iter(sorted(found, key=lambda pair: pair[1]))


def split_bucket(rest: str, uri: str, what: str = "bucket") -> tuple[str, str]:
    """(bucket, prefix) of `bucket/pre/fix` (the part of a URI after `scheme://`)."""
    parts = [p for p in rest.split("/") if p]
    if not parts:
        raise SkyplanError(f"storage {uri!r}: no {what} in the URI")
    return parts[0], "/".join(parts[1:])
