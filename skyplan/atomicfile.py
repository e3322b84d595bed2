"""Atomic file writes: a reader (or a later run after a kill, a power cut or a full disk) sees the old
bytes or the new bytes, never a mix, an empty file or a cut-off one.

Every file skyplan writes under a plan directory or into `file://` storage goes through
`write_bytes`: the data goes to a temporary file in the same directory, is fsync'ed, renamed over
the destination, and the directory is fsync'ed so that the rename itself survives a crash. A
failed write removes its temporary file and leaves the destination as it was. Errors say which
path they are about; a full disk says so (`DiskFullError`), never a bare "No space left on device".
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from skyplan.errors import SkyplanError


class DiskFullError(SkyplanError):
    """The disk (or quota) holding a path skyplan writes is full."""

    exit_code = 1


def describe_os_error(exc: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """One line for an OSError: the path, what went wrong, and for a full disk how much is free."""
    where = str(path or exc.filename or "")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{where}: no space left on the device (disk full; {free_space(where)}): free some space and retry"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}: cannot write ({exc.strerror}): make the directory writable and retry"
    return f"{where}: {exc.strerror or exc}" if where else str(exc.strerror or exc)


def free_space(path: str | os.PathLike[str]) -> str:
    """`N bytes free` on the file system holding `path` (or its nearest existing parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return "free space unknown"
    return f"{st.f_bavail * st.f_frsize} bytes free"


def error_from_os(exc: OSError, path: str | os.PathLike[str] | None = None) -> SkyplanError:
    """The SkyplanError to raise for an OSError on `path` (DiskFullError for ENOSPC/EDQUOT)."""
    message = describe_os_error(exc, path)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(message)
    return SkyplanError(message)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically and durably (parents are created).

    Raises:
        DiskFullError: the disk is full (the destination is left as it was).
        SkyplanError: any other OS error, naming the path.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise error_from_os(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise error_from_os(exc, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text(path: str | os.PathLike[str], text: str, *, mode: int = 0o644) -> None:
    """`write_bytes` of UTF-8 text."""
    write_bytes(path, text.encode("utf-8"), mode=mode)


def write_json(path: str | os.PathLike[str], doc: Any, *, indent: int | None = 2) -> None:
    """`write_bytes` of a JSON document (sorted keys, trailing newline: byte-identical for equal data)."""
    write_text(path, json.dumps(doc, sort_keys=True, indent=indent) + "\n")


def copy_file(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Copy a file's bytes to `dest` atomically."""
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise error_from_os(exc, source) from None
    write_bytes(dest, data)
