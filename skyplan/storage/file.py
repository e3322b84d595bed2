"""file:// storage: a directory on the machine that runs skyplan (local and ssh targets)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlparse

from skyplan.atomicfile import copy_file, error_from_os, write_bytes
from skyplan.errors import SkyplanError
from skyplan.storage.base import Storage, walk_files


def file_uri_path(uri: str) -> Path:
    """The local path of a `file://` URI (`file:///abs` or `file://relative`)."""
    parsed = urlparse(uri)
    return Path(unquote(parsed.netloc + parsed.path))


class _FileLock:
    """An exclusive flock on a file, held for a `with` block."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = -1

    def __enter__(self) -> _FileLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class FileStorage(Storage):
    """`file:///abs/dir`: objects are files; writes go through `skyplan.atomicfile` (atomic, fsync'ed)."""

    schemes: ClassVar[tuple[str, ...]] = ("file",)
    cloud: ClassVar[str] = "local"
    sdk: ClassVar[tuple[str, str] | None] = None

    def __init__(self, base: str):
        super().__init__(base)
        self.root = file_uri_path(self.base)

    def path(self, key: str = "") -> Path:
        """The local path of `key`."""
        return self.root / key.strip("/") if key.strip("/") else self.root

    def read(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise error_from_os(exc, self.path(key)) from None

    def write(self, key: str, data: bytes) -> None:
        write_bytes(self.path(key), data)

    def _list(self, prefix: str = "") -> list[str]:
        prefix = prefix.lstrip("/")
        directory = prefix.rpartition("/")[0]  # walk only the directory the prefix lies in
        start = self.path(directory)
        if not start.is_dir():
            return []
        lead = f"{directory}/" if directory else ""
        return [lead + rel for _, rel in walk_files(start) if (lead + rel).startswith(prefix)]

    def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            path.unlink(missing_ok=True)
        except (IsADirectoryError, NotADirectoryError):
            return
        except OSError as exc:
            raise error_from_os(exc, path) from None
        # Object stores have no directories: drop the ones the file leaves empty, so that a
        # prefix with nothing under it does not look like a directory to the executor.
        for parent in path.parents:
            if parent == self.root or self.root not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def delete_prefix(self, prefix: str) -> None:
        prefix = prefix.lstrip("/")
        if prefix.endswith("/") or not prefix:
            shutil.rmtree(self.path(prefix), ignore_errors=True)
            if not prefix:
                return
        super().delete_prefix(prefix)

    def upload_file(self, local_path: Path, key: str) -> None:
        copy_file(local_path, self.path(key))

    def upload(self, local_path, key: str) -> list[str]:
        """A directory is copied beside its destination, then swapped in: an interrupted copy never
        looks complete, and what the destination held before is replaced, not merged. The
        storage directory itself is skipped when it lies inside the uploaded one (`workdir: .`
        beside a plan directory that keeps its file:// storage)."""
        if not self.root.is_absolute():
            raise SkyplanError(f"storage {self.base!r} must be an absolute file:/// URI")
        source = Path(local_path)
        if not source.is_dir():
            return super().upload(source, key)
        dst = self.path(key.rstrip("/"))
        partial = dst.with_name(f"{dst.name}.partial-{uuid.uuid4().hex}")
        skip = self.root.resolve()
        written = []
        try:
            for file, rel in walk_files(source, skip=skip):
                target = partial / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target)
                written.append(f"{key.rstrip('/')}/{rel}")
            partial.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(dst, ignore_errors=True)
            if dst.exists():  # a file where the directory goes
                dst.unlink()
            partial.rename(dst)
        except OSError as exc:
            raise error_from_os(exc, dst) from None
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return sorted(written)

    def download_file(self, key: str, local_path: Path) -> bool:
        if not self.path(key).is_file():
            return False
        copy_file(self.path(key), local_path)
        return True

    # Conditional operations: the version is the content's SHA-256; a compare-and-swap holds an
    # flock on `<root>/.skyplan-storage.lock`, which every skyplan process writing here takes.

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        data = self.read(key)
        return None if data is None else (data, hashlib.sha256(data).hexdigest())

    def _locked(self):
        self.root.mkdir(parents=True, exist_ok=True)
        return _FileLock(self.root / ".skyplan-storage.lock")

    def write_versioned(self, key: str, data: bytes, *, if_absent: bool = False,
                        if_version: str | None = None) -> str | None:
        with self._locked():
            current = self.read_versioned(key)
            if (if_absent and current is not None) or (
                    if_version is not None and (current is None or current[1] != if_version)):
                return None
            self.write(key, data)
        return hashlib.sha256(data).hexdigest()

    def delete_versioned(self, key: str, if_version: str) -> bool:
        with self._locked():
            current = self.read_versioned(key)
            if current is None or current[1] != if_version:
                return False
            self.delete(key)
        return True

    def list(self, prefix: str = "") -> list[str]:
        return [k for k in self._list(prefix) if k != ".skyplan-storage.lock"]

    def rclone_remote(self, key: str = "") -> tuple[dict[str, str], str]:
        return {"RCLONE_CONFIG_SKYPLAN_FILE_TYPE": "local"}, f"skyplan_file:{self.path(key)}"
