"""file:// storage: a directory on the machine that runs skyplan (local and ssh targets)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlparse

from skyplan.atomicfile import copy_file, error_from_os, write_bytes
from skyplan.storage.base import Storage, walk_files


def file_uri_path(uri: str) -> Path:
    """The local path of a `file://` URI (`file:///abs` or `file://relative`)."""
    parsed = urlparse(uri)
    return Path(unquote(parsed.netloc + parsed.path))


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

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = [rel for _, rel in walk_files(self.root)]
        return [k for k in keys if k.startswith(prefix.lstrip("/"))]

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink(missing_ok=True)
        except IsADirectoryError:
            pass
        except OSError as exc:
            raise error_from_os(exc, self.path(key)) from None

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

    def rclone_remote(self, key: str = "") -> tuple[dict[str, str], str]:
        return {"RCLONE_CONFIG_SKYPLAN_FILE_TYPE": "local"}, f"skyplan_file:{self.path(key)}"
