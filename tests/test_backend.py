"""`skyplan compile --backend`: the backend block of every stack, its record in plan.json and PLAN.md,
`--check` noticing a changed backend, and the blocks Terraform accepts (validate, and a real GCS
backend against gcp-storage-emulator; the S3 backend runs against moto in test_remote_state.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skyplan.backend import parse_backend
from skyplan.errors import SkyplanError
from tests.tools import require, terraform_command

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart.yaml"
S3 = "s3://state-bucket/team/quickstart?region=eu-west-1"
GS = "gs://state-bucket/team/quickstart"
AZ = "azurerm://stateacct/tfstate/team/quickstart"


def skyplan(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skyplan", *args], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})), cwd=cwd)


def compile_to(out: Path, *extra: str, spec: Path = QUICKSTART) -> None:
    res = skyplan("compile", str(spec), "-o", str(out), *extra)
    assert res.returncode == 0, res.stderr


def test_s3_block_names_the_key_of_each_stack_and_nothing_secret():
    block = parse_backend(S3).block("local")
    assert block.splitlines()[2:] == [
        "terraform {",
        '  required_version = ">= 1.10.0"',
        "",
        '  backend "s3" {',
        '    bucket       = "state-bucket"',
        '    key          = "team/quickstart/local/terraform.tfstate"',
        '    region       = "eu-west-1"',
        "    use_lockfile = true",
        "  }",
        "}",
    ]


def test_gcs_and_azurerm_blocks():
    assert parse_backend(GS).settings("aws") == {"bucket": "state-bucket", "prefix": "team/quickstart/aws"}
    assert parse_backend(AZ).settings("gcp") == {
        "storage_account_name": "stateacct", "container_name": "tfstate",
        "key": "team/quickstart/gcp/terraform.tfstate", "use_azuread_auth": True}


@pytest.mark.parametrize("uri, message", [
    ("ftp://b/p", "unknown scheme 'ftp'"),
    ("s3://bucket", "give a prefix after the bucket"),
    ("s3://AKIA:secret@bucket/p?region=eu-west-1", "no credentials"),
    ("s3://bucket/p?region=eu-west-1&endpoint=http://x", "unknown setting(s) endpoint"),
    ("s3://bucket/p?region=mars", "'mars' is not an AWS region"),
    ("gs://bucket/a/../b", "'..' is not a bucket"),
    ("azurerm://acct/container", "azurerm needs a container and a prefix"),
])
def test_bad_uris_are_refused_in_one_line(uri: str, message: str, monkeypatch):
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(SkyplanError) as err:
        parse_backend(uri)
    assert message in err.value.message and "\n" not in err.value.message


def test_s3_region_comes_from_the_uri_or_aws_region(monkeypatch):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(SkyplanError, match=r"give the bucket's region"):
        parse_backend("s3://bucket/p")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert parse_backend("s3://bucket/p").uri == "s3://bucket/p?region=us-west-2"


def test_compile_writes_a_backend_per_stack_recorded_in_plan_and_summary(tmp_path: Path):
    out = tmp_path / "plan"
    compile_to(out, "--backend", S3)
    stacks = sorted(p.parent.name for p in out.glob("*/terraform.tf"))
    assert stacks == ["local"]
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/backend.tf")) == ["local/backend.tf"]
    doc = json.loads((out / "plan.json").read_text())
    assert doc["backend"] == {"type": "s3", "uri": S3, "bucket": "state-bucket", "prefix": "team/quickstart",
                              "region": "eu-west-1"}
    assert f"s3 backend `{S3}`" in (out / "PLAN.md").read_text()
    assert "local/backend.tf" in (out / "MANIFEST.sha256").read_text()
    text = "\n".join(p.read_text() for p in out.rglob("*.tf"))
    for secret in ("access_key", "secret_key", "endpoint", "profile", "token", "sas_token", "credentials"):
        assert secret not in text.replace("endpoints are not written", "")
    # Byte-identical for identical inputs.
    again = tmp_path / "again"
    compile_to(again, "--backend", S3)
    for path in out.rglob("*"):
        if path.is_file():
            assert (again / path.relative_to(out)).read_bytes() == path.read_bytes(), path
    # Compiling without --backend removes the block (skyplan wrote it).
    compile_to(out)
    assert not (out / "local" / "backend.tf").exists() and "backend" not in json.loads((out / "plan.json").read_text())


@pytest.mark.parametrize("old, new", [(None, S3), (S3, None), (S3, GS),
                                      (S3, "s3://state-bucket/team/other?region=eu-west-1")])
def test_check_notices_a_changed_backend(tmp_path: Path, old: str | None, new: str | None):
    out = tmp_path / "plan"
    compile_to(out, *(("--backend", old) if old else ()))
    current = skyplan("compile", str(QUICKSTART), *(("--backend", old) if old else ()), "--check", str(out), "--json")
    assert current.returncode == 0, current.stdout
    res = skyplan("compile", str(QUICKSTART), *(("--backend", new) if new else ()), "--check", str(out), "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert [r["code"] for r in doc["reasons"]] == ["backend_changed"]
    assert (doc["reasons"][0]["old"], doc["reasons"][0]["new"]) == (old, new)
    assert "local/backend.tf" in doc["files"]["differ" if old and new else ("missing" if new else "extra")]


@pytest.mark.parametrize("uri", [S3, GS, AZ])
def test_terraform_accepts_every_backend_block(tmp_path: Path, uri: str):
    """`terraform init -backend=false` + `validate`: the block's arguments are the backend's own
    (azurerm cannot be pointed at Azurite — its blob endpoint is always the cloud's — so this is
    the check azurerm gets; s3 and gcs also run against emulators)."""
    out = tmp_path / "plan"
    compile_to(out, "--backend", uri)
    tf = terraform_command()
    stack = out / "local"
    env = dict(os.environ, TF_IN_AUTOMATION="1", TF_CLI_ARGS_init="")
    init = subprocess.run([*tf, "init", "-backend=false", "-input=false", "-no-color"], cwd=stack, env=env,
                          capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stdout + init.stderr
    validate = subprocess.run([*tf, "validate", "-no-color"], cwd=stack, env=env, capture_output=True, text=True,
                              timeout=300)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    # An argument the backend does not know is an error: validate would catch a wrong block.
    text = (stack / "backend.tf").read_text()
    kind = parse_backend(uri).kind
    (stack / "backend.tf").write_text(text.replace(f'backend "{kind}" {{\n', f'backend "{kind}" {{\n    not_an_arg = 1\n'))
    bad = subprocess.run([*tf, "init", "-input=false", "-no-color"], cwd=stack, env=env, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode != 0 and "not_an_arg" in bad.stdout + bad.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_gcs_backend_against_gcp_storage_emulator(tmp_path: Path):
    """A `local` DAG applied with a gs:// backend: Terraform's GCS backend (built in) writes and
    locks the state in gcp-storage-emulator, and skyplan's run state goes beside it (`storage_custom_endpoint`, a fake OAuth token)."""
    emulator = shutil.which("gcp-storage-emulator") or str(Path(sys.executable).parent / "gcp-storage-emulator")
    require(None if os.path.exists(emulator) else "gcp-storage-emulator is not installed (pip install "
                                                   "gcp-storage-emulator)")
    import urllib.request

    port = _free_port()
    log = (tmp_path / "gcs.log").open("w")
    proc = subprocess.Popen([emulator, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
                            stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/storage/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                req = urllib.request.Request(f"{api}/b?project=test", data=b'{"name": "gstate"}',
                                             headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=5).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gcs.log").read_text()
                time.sleep(0.2)
        out = tmp_path / "plan"
        compile_to(out, "--backend", "gs://gstate/ci/quickstart")
        env = {"GOOGLE_OAUTH_ACCESS_TOKEN": "emulator-accepts-any-token", "SKYPLAN_LOCAL_SLOTS_DIR": str(tmp_path / "slots"),
               "TF_CLI_ARGS_init": f"-backend-config=storage_custom_endpoint={api}/",
               # skyplan's own run state reaches the same emulator the standard way of its SDK.
               "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}"}
        res = skyplan("apply", str(out), "--auto-approve", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "stays in" not in res.stderr  # gcs keeps the run state remotely too
        listing = json.loads(urllib.request.urlopen(f"{api}/b/gstate/o", timeout=5).read())
        names = sorted(item["name"] for item in listing.get("items", []))
        # The run lock was released; the event log and the applied plan sit beside the state.
        assert names == ["ci/quickstart/.skyplan/events.jsonl", "ci/quickstart/.skyplan/plan.applied.json",
                         "ci/quickstart/local/default.tfstate"]
        state = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/download/storage/v1/b/gstate/o/ci%2Fquickstart%2Flocal%2Fdefault.tfstate?alt=media",
            timeout=5).read())
        assert state["serial"] >= 2 and not [r for r in state["resources"] if r.get("instances")]
        assert not (out / "local" / "terraform.tfstate").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_the_pr_comment_says_when_the_state_moves(tmp_path: Path):
    compile_to(tmp_path / "local")
    compile_to(tmp_path / "s3", "--backend", S3)
    compile_to(tmp_path / "gs", "--backend", GS)
    moved = skyplan("diff", str(tmp_path / "local"), str(tmp_path / "s3")).stdout
    assert f"Terraform state: local (in the stacks' folders) → **`{S3}`**" in moved
    assert f"Terraform state: `{S3}` → **`{GS}`**" in skyplan("diff", str(tmp_path / "s3"), str(tmp_path / "gs")).stdout
    same = skyplan("diff", str(tmp_path / "s3"), str(tmp_path / "s3")).stdout
    assert "Terraform state" not in same
    doc = json.loads(skyplan("diff", str(tmp_path / "local"), str(tmp_path / "s3"), "--json").stdout)
    assert doc["backend"] == {"old": None, "new": S3}
