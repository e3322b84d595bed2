"""The remote run lock (skyplan/remoterun.py) against a moto S3 server: one holder at a time, a
live holder keeps it past its expiry by renewing, a dead one's lock is taken over once expired."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from skyplan.backend import Backend
from skyplan.errors import SkyplanError
from skyplan.remoterun import RemoteRun
from tests.moto_backend import MotoS3, moto_s3  # noqa: F401  (fixture)

TTL = 4


@pytest.fixture()
def backend(moto_s3: MotoS3, monkeypatch) -> Backend:  # noqa: F811
    for key, value in moto_s3.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SKYPLAN_RUN_LOCK_TTL", str(TTL))
    return Backend("s3", bucket=moto_s3.bucket, prefix="plans/p", region="eu-west-1")


def test_one_holder_at_a_time_and_released(tmp_path: Path, backend: Backend, moto_s3: MotoS3):  # noqa: F811
    first, second = RemoteRun(tmp_path / "a", backend, "apply"), RemoteRun(tmp_path / "b", backend, "destroy")
    first.acquire()
    try:
        holder = json.loads(moto_s3.read("plans/p/.skyplan/lock"))
        assert holder["owner"] == first.owner and holder["what"] == "apply"
        with pytest.raises(SkyplanError, match=r"another skyplan run holds this plan's remote lock \(apply on"):
            second.acquire()
        # A live holder renews: past its first expiry it still holds the lock.
        time.sleep(TTL * 1.5)
        with pytest.raises(SkyplanError, match="remote lock"):
            second.acquire()
    finally:
        first.release()
    assert "plans/p/.skyplan/lock" not in moto_s3.keys()
    second.acquire()
    second.release()


def test_an_expired_lock_is_taken_over_with_the_terraform_locks_it_left(tmp_path: Path, backend: Backend,
                                                                        moto_s3: MotoS3, capsys):  # noqa: F811
    dead = {"owner": "killed", "what": "apply", "host": "runner-1", "pid": 1, "since": time.time() - 60,
            "expires": time.time() - 1}
    client = moto_s3.client()
    client.put_object(Bucket=moto_s3.bucket, Key="plans/p/.skyplan/lock", Body=json.dumps(dead).encode())
    client.put_object(Bucket=moto_s3.bucket, Key="plans/p/local/terraform.tfstate.tflock", Body=b"{}")
    run = RemoteRun(tmp_path, backend, "apply")
    run.acquire()
    try:
        assert json.loads(moto_s3.read("plans/p/.skyplan/lock"))["owner"] == run.owner
        assert "plans/p/local/terraform.tfstate.tflock" not in moto_s3.keys()
        err = capsys.readouterr().err
        assert "took over the remote run lock" in err and "runner-1" in err
    finally:
        run.release()


def test_run_files_are_mirrored_and_pulled_into_a_fresh_directory(tmp_path: Path, backend: Backend,
                                                                  moto_s3: MotoS3):  # noqa: F811
    old = tmp_path / "old"
    (old / ".skyplan").mkdir(parents=True)
    (old / "events.jsonl").write_text('{"event": "run_started"}\n')
    (old / ".skyplan" / "plan.applied.json").write_text('{"name": "p"}\n')
    run = RemoteRun(old, backend, "apply")
    run.push()
    assert moto_s3.read("plans/p/.skyplan/events.jsonl") == b'{"event": "run_started"}\n'
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert sorted(RemoteRun(fresh, backend, "apply").pull()) == [".skyplan/plan.applied.json", "events.jsonl"]
    assert (fresh / "events.jsonl").read_bytes() == (old / "events.jsonl").read_bytes()
    # A directory whose log is longer (the same runner resuming) keeps its own.
    (fresh / "events.jsonl").write_text('{"event": "run_started"}\n{"event": "run_finished"}\n')
    assert RemoteRun(fresh, backend, "apply").pull() == []


def test_azurerm_run_state_takes_over_a_dead_lock_and_breaks_terraforms_lease(tmp_path: Path, azurite_server,
                                                                               storage_env, monkeypatch, capsys):
    """The azurerm backend's run state in Azure Blob (Azurite): a dead run's lock is taken over,
    and the infinite lease Terraform's azurerm backend left on a state blob is broken, so the
    next `terraform plan` is not refused by a lock nobody holds."""
    from azure.storage.blob import BlobLeaseClient, BlobServiceClient

    base = storage_env(azurite_server)  # https://devstoreaccount1.blob.core.windows.net/<container>/runs
    account, container = base.split("://", 1)[1].split("/")[0].split(".")[0], base.split("/")[3]
    monkeypatch.setenv("SKYPLAN_RUN_LOCK_TTL", str(TTL))
    backend = Backend("azurerm", bucket=container, prefix="plans/p", account=account)
    blobs = BlobServiceClient.from_connection_string(azurite_server.env["AZURE_STORAGE_CONNECTION_STRING"])
    box = blobs.get_container_client(container)
    box.upload_blob("plans/p/local/terraform.tfstate", b'{"version": 4}')
    BlobLeaseClient(box.get_blob_client("plans/p/local/terraform.tfstate")).acquire(lease_duration=-1)
    dead = {"owner": "killed", "what": "apply", "host": "runner-1", "pid": 1, "since": time.time() - 60,
            "expires": time.time() - 1}
    box.upload_blob("plans/p/.skyplan/lock", json.dumps(dead).encode())

    live = RemoteRun(tmp_path / "a", backend, "apply")
    live.acquire()
    try:
        assert json.loads(box.download_blob("plans/p/.skyplan/lock").readall())["owner"] == live.owner
        lease = box.get_blob_client("plans/p/local/terraform.tfstate").get_blob_properties().lease
        assert lease.state in ("broken", "available"), lease.state
        assert "released the Terraform lock on plans/p/local/terraform.tfstate" in capsys.readouterr().err
        with pytest.raises(SkyplanError, match="remote lock"):
            RemoteRun(tmp_path / "b", backend, "destroy").acquire()  # a live holder keeps it
    finally:
        live.release()
    assert "plans/p/.skyplan/lock" not in [b.name for b in box.list_blobs()]
