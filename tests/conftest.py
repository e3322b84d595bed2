"""Session-wide fixtures: the loopback storage servers of tests/storage_servers.py.

`s3_server`, `gcs_server` and `azurite_server` start their server once per session, on first use,
and stop it at the end; a test skips (with the reason) only when the server is not installed.
`storage_env(server)` returns a fresh bucket's base URI with the server's env set for the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import storage_servers as servers


def _server(tmp_path_factory: pytest.TempPathFactory, missing: Callable[[], str | None],
            start: Callable) -> Iterator[servers.StorageServer]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    server = start(tmp_path_factory.mktemp("storage-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto in server mode (S3, STS, IAM)."""
    yield from _server(tmp_path_factory, servers.moto_missing, servers.start_moto)


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory):
    """gcp-storage-emulator."""
    yield from _server(tmp_path_factory, servers.gcs_missing, servers.start_gcs)


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory):
    """Azurite (blob service only)."""
    yield from _server(tmp_path_factory, servers.azurite_missing, servers.start_azurite)


@pytest.fixture
def storage_env(monkeypatch) -> Callable[[servers.StorageServer], str]:
    """`storage_env(server)`: set the server's env for this test and return a new bucket's base URI."""

    def make(server: servers.StorageServer) -> str:
        for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "GOOGLE_APPLICATION_CREDENTIALS"):
            monkeypatch.delenv(key, raising=False)
        for key, value in server.env.items():
            monkeypatch.setenv(key, value)
        return servers.new_bucket(server)

    return make


@pytest.fixture(params=["file", "s3", "gcs", "azure"])
def storage_uri(request, tmp_path, storage_env) -> str:
    """A fresh, empty storage base URI on each backend in turn (servers on loopback)."""
    if request.param == "file":
        return f"file://{tmp_path}/storage"
    server = request.getfixturevalue({"s3": "s3_server", "gcs": "gcs_server", "azure": "azurite_server"}[request.param])
    return storage_env(server)
