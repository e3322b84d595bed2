"""Storage plug-ins: `for_uri(uri)` gives the backend for a storage URI (see `skyplan.storage.base`).

The list of backends lives only here. Modules are imported lazily; none imports a cloud SDK
before it first talks to its service.
"""

from __future__ import annotations

import importlib

from skyplan.errors import SkyplanError
from skyplan.storage.base import Storage

# module, class — in the order `handles()` is asked
_BACKENDS = (
    ("skyplan.storage.file", "FileStorage"),
    ("skyplan.storage.s3", "S3Storage"),
    ("skyplan.storage.gcs", "GCSStorage"),
    ("skyplan.storage.azure", "AzureBlobStorage"),
)
SUPPORTED = "file://, s3://, gs://, https://ACCOUNT.blob.core.windows.net/CONTAINER or az://ACCOUNT/CONTAINER"

__all__ = ["Storage", "backend_for", "cloud_of", "for_uri", "SUPPORTED"]


def backend_for(uri: str) -> type[Storage] | None:
    """The Storage class serving `uri`, None for an unknown scheme."""
    for module, name in _BACKENDS:
        cls = getattr(importlib.import_module(module), name)
        if cls.handles(uri):
            return cls
    return None


def for_uri(uri: str) -> Storage:
    """The storage at base URI `uri`.

    Raises:
        SkyplanError: an unknown scheme (naming the supported ones) or a URI without a bucket.
    """
    cls = backend_for(uri)
    if cls is None:
        raise SkyplanError(f"storage {uri!r}: unsupported scheme (use {SUPPORTED})")
    return cls(uri)


def cloud_of(uri: str) -> str | None:
    """The cloud holding `uri` ("aws", "gcp", "azure", "local"), None for an unknown scheme."""
    cls = backend_for(uri)
    return cls.cloud if cls is not None else None
