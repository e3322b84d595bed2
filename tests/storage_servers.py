"""Real storage servers on loopback for the tests: moto (S3, STS, IAM), gcp-storage-emulator (GCS)
and Azurite (Azure Blob). Each runs as its own process on a free port and is reached the way a
user reaches an emulator: by the SDKs' standard settings (`AWS_ENDPOINT_URL`,
`STORAGE_EMULATOR_HOST`, `AZURE_STORAGE_CONNECTION_STRING`), never by code of skyplan's.

tests/conftest.py starts each one once per session, on first use, and stops it at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Azurite's fixed development account (public, documented by Microsoft: not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# Where .ci/run installs Azurite (`npm install --prefix DIR azurite`); SKYPLAN_AZURITE names the
# azurite-blob binary directly.
AZURITE_DIRS = (REPO / ".ci" / "node_modules", Path.home() / ".cache" / "skyplan-azurite" / "node_modules")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class StorageServer:
    """One running server: `env` is what a client (SDK, CLI, executor) needs to reach it."""

    name: str
    proc: subprocess.Popen
    env: dict[str, str]
    log: Path
    buckets: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers: up (an error status for a bare GET is fine)
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{url}: server did not answer within {timeout:.0f}s: {log.read_text(errors='replace')[-2000:]}")


def _spawn(argv: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    out = open(log, "wb")
    try:  # cwd: Azurite writes its debug/extent files there even when persisting in memory
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=cwd)
    finally:
        out.close()


def moto_missing() -> str | None:
    try:
        import flask  # noqa: F401  (moto[server])
        import moto.server  # noqa: F401
    except ImportError as exc:
        return f"moto server mode is not installed ({exc.name}): pip install 'moto[server]'"
    return None


def start_moto(workdir: Path) -> StorageServer:
    """moto in server mode: S3, STS and IAM (every service) on one endpoint."""
    port = free_port()
    log = workdir / "moto.log"
    proc = _spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log)
    endpoint = f"http://127.0.0.1:{port}"
    _wait_http(endpoint + "/moto-api/", proc, log)
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    return StorageServer("s3", proc, env, log)


def gcs_missing() -> str | None:
    if shutil.which("gcp-storage-emulator") is None and not _venv_bin("gcp-storage-emulator").exists():
        return "gcp-storage-emulator is not installed: pip install gcp-storage-emulator"
    try:
        import google.cloud.storage  # noqa: F401
    except ImportError:
        return "google-cloud-storage is not installed: pip install 'skyplan[gcp]'"
    return None


def _venv_bin(name: str) -> Path:
    return Path(sys.executable).parent / name


def start_gcs(workdir: Path) -> StorageServer:
    port = free_port()
    log = workdir / "gcs.log"
    exe = shutil.which("gcp-storage-emulator") or str(_venv_bin("gcp-storage-emulator"))
    proc = _spawn([exe, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"], log)
    endpoint = f"http://127.0.0.1:{port}"
    _wait_http(endpoint + "/storage/v1/b", proc, log)
    env = {"STORAGE_EMULATOR_HOST": endpoint, "GOOGLE_CLOUD_PROJECT": "skyplan-test"}
    return StorageServer("gcs", proc, env, log)


def azurite_binary() -> str | None:
    if os.environ.get("SKYPLAN_AZURITE"):
        return os.environ["SKYPLAN_AZURITE"]
    for directory in AZURITE_DIRS:
        exe = directory / ".bin" / "azurite-blob"
        if exe.exists():
            return str(exe)
    return shutil.which("azurite-blob")


def azurite_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (Azurite is a node program)"
    if azurite_binary() is None:
        return "Azurite is not installed: npm install --prefix ~/.cache/skyplan-azurite azurite (.ci/run does)"
    try:
        import azure.storage.blob  # noqa: F401
    except ImportError:
        return "azure-storage-blob is not installed: pip install 'skyplan[azure]'"
    return None


def start_azurite(workdir: Path) -> StorageServer:
    port = free_port()
    log = workdir / "azurite.log"
    exe = azurite_binary()
    assert exe is not None
    proc = _spawn([exe, "--loose", "--skipApiVersionCheck", "--inMemoryPersistence", "--blobHost", "127.0.0.1",
                   "--blobPort", str(port)], log, cwd=workdir)
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    _wait_http(endpoint + "?comp=list", proc, log)
    conn = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={endpoint};")
    return StorageServer("azure", proc, {"AZURE_STORAGE_CONNECTION_STRING": conn}, log)


def new_bucket(server: StorageServer) -> str:
    """Create a fresh bucket (container) on `server`; returns the storage base URI for it."""
    name = f"skyplan-{uuid.uuid4().hex[:12]}"
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    try:
        if server.name == "s3":
            import boto3

            boto3.client("s3").create_bucket(Bucket=name)
            uri = f"s3://{name}/runs"
        elif server.name == "gcs":
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            storage.Client(project="skyplan-test", credentials=AnonymousCredentials()).create_bucket(name)
            uri = f"gs://{name}/runs"
        else:
            from azure.storage.blob import BlobServiceClient

            BlobServiceClient.from_connection_string(server.env["AZURE_STORAGE_CONNECTION_STRING"]).create_container(name)
            uri = f"https://{AZURITE_ACCOUNT}.blob.core.windows.net/{name}/runs"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    server.buckets.append(name)
    return uri
