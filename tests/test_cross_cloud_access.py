"""Cross-cloud storage access (issue 10 item 2): every task cloud × storage cloud pair renders
fmt-clean, schema-valid stacks whose trust and grant are the documented federation, limited to
the plan's prefix; the only pair apply refuses is the one the pinned providers cannot set up."""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest
import yaml

from skyplan.models import (
    Candidate,
    Location,
    Objective,
    Offering,
    Placement,
    Quantity,
    ResourceOption,
    SolverStats,
    Spec,
    Task,
    TaskPlacement,
)
from skyplan.outdir import write_output
from skyplan.pipeline import apply_blockers
from skyplan.render import render
from skyplan.targets.access import ACCESS_SCRIPT, ACCESS_TOKEN, MECHANISMS, UNSUPPORTED

sys.path.insert(0, str(Path(__file__).resolve().parent))
from schema_check import check_stack  # noqa: E402
from tools import require_tool, terraform_command  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLOUDS = ("aws", "gcp", "azure")
STORAGE = {
    "aws": "s3://stage-bkt/runs/ml",
    "gcp": "gs://stage-bkt/runs/ml",
    "azure": "https://stageacct.blob.core.windows.net/stage/runs/ml",
}
# Two Azure regions: the trust must name both regions' identities.
PLACES = {
    "aws": [("aws", "us-east-1", "use1-az4", "m6i.2xlarge")],
    "gcp": [("gcp", "us-central1", "us-central1-a", "n2-standard-8")],
    "azure": [("azure", "eastus", None, "Standard_D4s_v5"), ("azure", "westus2", None, "Standard_D4s_v5")],
}
# Resource types the trust of each cross-cloud pair is made of.
FEDERATION = {
    ("gcp", "aws"): {"aws_iam_role", "aws_iam_role_policy"},
    ("azure", "aws"): {"aws_iam_openid_connect_provider", "aws_iam_role", "aws_iam_role_policy"},
    ("aws", "gcp"): {"google_iam_workload_identity_pool", "google_iam_workload_identity_pool_provider",
                     "google_storage_bucket_iam_member"},
    ("azure", "gcp"): {"google_iam_workload_identity_pool", "google_iam_workload_identity_pool_provider",
                       "google_storage_bucket_iam_member"},
    ("gcp", "azure"): {"azurerm_user_assigned_identity", "azurerm_federated_identity_credential",
                       "azurerm_role_assignment"},
}


def pair_plan(task_cloud: str, storage_cloud: str) -> tuple[Spec, Placement]:
    tasks, placements = [], []
    for i, (cloud, region, zone, itype) in enumerate(PLACES[task_cloud]):
        name = f"step{i}"
        tasks.append(Task(name, (ResourceOption(cpus=Quantity(4, True)),), run="python main.py",
                          depends_on=(f"step{i - 1}",) if i else ()))
        offering = Offering(Location(cloud, region, zone), itype, None, 0, 8, 32, 1.0, 0.4)
        placements.append(TaskPlacement(name, Candidate(name, offering, False, 2.0, 1.0, 1, 0.0), 0.0, 0.0, 2.0))
    spec = Spec("xc", tuple(tasks), storage=STORAGE[storage_cloud])
    return spec, Placement("xc", Objective.COST, tuple(placements), 10.0, 4.0, (), SolverStats("OPTIMAL", 1.0, 0.01))


PAIRS = [(t, s) for t in CLOUDS for s in CLOUDS]


@pytest.fixture(scope="module")
def rendered_pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    out = {}
    for t, s in PAIRS:
        spec, placement = pair_plan(t, s)
        directory = tmp_path_factory.mktemp(f"{t}-{s}")
        write_output(render(spec, placement, plan_json="{}\n", plan_md="# plan\n"), directory)
        out[(t, s)] = directory
    return out


def resource_types(stack: Path) -> set[str]:
    text = "".join(p.read_text() for p in stack.glob("*.tf"))
    return set(re.findall(r'^resource "([a-z0-9_]+)"', text, re.M))


@pytest.mark.parametrize(("task_cloud", "storage_cloud"), PAIRS)
def test_every_pair_is_fmt_clean_and_schema_valid(rendered_pairs, task_cloud: str, storage_cloud: str) -> None:
    # An unsupported pair (refused by apply) still renders for review, with no trust at all.
    stack = rendered_pairs[(task_cloud, storage_cloud)] / task_cloud
    assert check_stack(stack) == []
    res = subprocess.run([*terraform_command(), "fmt", "-check", "-diff", "-recursive", str(stack)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    has_access = (stack / "storage_access.tf").exists()
    assert has_access == (task_cloud != storage_cloud and (task_cloud, storage_cloud) not in UNSUPPORTED)
    if has_access:
        assert FEDERATION[(task_cloud, storage_cloud)] <= resource_types(stack)


def test_the_pairs_are_the_documented_ones() -> None:
    crossing = {(t, s) for t, s in PAIRS if t != s}
    assert set(MECHANISMS) | set(UNSUPPORTED) == crossing and not set(MECHANISMS) & set(UNSUPPORTED)
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Cross-cloud storage access"):]
    for t, s in crossing:
        assert re.search(rf"\| {t} \| {s} \|", table), (t, s)


def test_only_the_unsupported_pair_is_refused() -> None:
    for t, s in PAIRS:
        blockers = [b for b in apply_blockers(*pair_plan(t, s)) if "storage" in b]
        if (t, s) in UNSUPPORTED:
            assert len(blockers) == 1 and "sts:GetWebIdentityToken" in blockers[0], blockers
        else:
            assert blockers == [], (t, s, blockers)


def text_of(stack: Path) -> str:
    return "".join(p.read_text() for p in sorted(stack.glob("*.tf")))


def test_trusts_name_the_machines_identity(rendered_pairs) -> None:
    gcp_s3 = text_of(rendered_pairs[("gcp", "aws")] / "gcp")
    assert '"accounts.google.com:sub"  = google_service_account.node[0].unique_id' in gcp_s3
    assert 'Federated = "accounts.google.com"' in gcp_s3
    az_s3 = text_of(rendered_pairs[("azure", "aws")] / "azure")
    assert "azurerm_user_assigned_identity.eastus[*].principal_id" in az_s3
    assert "azurerm_user_assigned_identity.westus2[*].principal_id" in az_s3
    assert 'url            = "https://${local.access_issuer}"' in az_s3
    aws_gcs = text_of(rendered_pairs[("aws", "gcp")] / "aws")
    assert "attribute.aws_role == \\\"${aws_iam_role.node[0].name}\\\"" in aws_gcs
    assert "account_id = data.aws_caller_identity.storage_access[0].account_id" in aws_gcs
    az_gcs = text_of(rendered_pairs[("azure", "gcp")] / "azure")
    assert 'issuer_uri        = "https://sts.windows.net/' in az_gcs
    gcp_blob = text_of(rendered_pairs[("gcp", "azure")] / "gcp")
    assert 'issuer              = "https://accounts.google.com"' in gcp_blob
    assert "subject             = google_service_account.node[0].unique_id" in gcp_blob


@pytest.mark.parametrize(("task_cloud", "storage_cloud"), [p for p in PAIRS if p not in UNSUPPORTED])
def test_every_grant_is_limited_to_the_prefix(rendered_pairs, task_cloud: str, storage_cloud: str) -> None:
    text = text_of(rendered_pairs[(task_cloud, storage_cloud)] / task_cloud)
    if storage_cloud == "aws":
        assert '"arn:aws:s3:::stage-bkt/runs/ml/xc/*"' in text and '"s3:prefix" = ["runs/ml/xc", "runs/ml/xc/*"]' in text
        assert '"arn:aws:s3:::stage-bkt/*"' not in text
    elif storage_cloud == "gcp":
        assert 'startsWith(\\"projects/_/buckets/stage-bkt/objects/runs/ml/xc/\\")' in text
        assert "objectAdmin" not in text
        assert len(re.findall(r"(?m)^  condition \{", text)) == text.count('resource "google_storage_bucket_iam_member"')
    else:
        assignments = text.count('resource "azurerm_role_assignment"')
        assert assignments and text.count('condition_version    = "2.0"') == assignments
        assert "containers/blobs:path] StringStartsWith 'runs/ml/xc/'" in text


@pytest.mark.parametrize(("task_cloud", "storage_cloud"), [p for p in PAIRS if p not in UNSUPPORTED])
def test_machines_run_the_executor_through_the_access_script(rendered_pairs, task_cloud, storage_cloud) -> None:
    directory = rendered_pairs[(task_cloud, storage_cloud)]
    init = (directory / "cloud-init" / "step0.yaml").read_text()
    stack = text_of(directory / task_cloud)
    if task_cloud == storage_cloud:
        assert ACCESS_TOKEN not in init and "replace(file(" not in stack
        return
    assert f'"{ACCESS_TOKEN}", jsonencode(local.access_env' in stack
    doc = yaml.safe_load(init.replace(ACCESS_TOKEN, json.dumps("SKYPLAN_ACCESS_SOURCE=aws-signed\n")))
    files = {f["path"]: f for f in doc["write_files"]}
    script = gzip.decompress(base64.b64decode(files[ACCESS_SCRIPT]["content"])).decode()
    assert script == (REPO / "templates" / "access" / "refresh.sh").read_text()
    assert doc["runcmd"][-1] == [ACCESS_SCRIPT, "env", "SKYPLAN_SHUTDOWN=1", "/var/lib/skyplan/executor.sh"]
    assert ["systemctl", "enable", "--now", "skyplan-access.timer"] in doc["runcmd"]


def test_access_script_writes_the_google_credential_config_and_wraps_the_command(tmp_path: Path) -> None:
    # The aws-signed mode needs no metadata server: it writes the external_account configuration.
    creds = tmp_path / "google.json"
    env_file = tmp_path / "access.env"
    env_file.write_text("SKYPLAN_ACCESS_SOURCE=aws-signed\n"
                        "SKYPLAN_GCP_AUDIENCE=//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws\n"
                        f"GOOGLE_APPLICATION_CREDENTIALS={creds}\n")
    res = subprocess.run(["bash", str(REPO / "templates" / "access" / "refresh.sh"), "sh", "-c",
                          'echo "$GOOGLE_APPLICATION_CREDENTIALS"'],
                         env={**os.environ, "SKYPLAN_ACCESS_ENV": str(env_file)}, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(creds)
    config = json.loads(creds.read_text())
    assert config["type"] == "external_account"
    assert config["subject_token_type"] == "urn:ietf:params:aws:token-type:aws4_request"
    assert config["credential_source"]["environment_id"] == "aws1"
    assert config["audience"].endswith("/providers/aws")


def test_ml_pipeline_compiles_with_federation_and_no_refusal(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "skyplan", "compile", str(REPO / "examples" / "ml-pipeline.yaml"),
                          "-o", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "cross-cloud" not in res.stdout + res.stderr
    assert "Before you apply" not in (out / "PLAN.md").read_text()
    placed = {c for c in CLOUDS if (out / c).is_dir()}
    assert "azure" in placed
    assert {"aws_iam_openid_connect_provider", "aws_iam_role"} <= resource_types(out / "azure")
    for cloud in placed:
        assert check_stack(out / cloud) == [], cloud


class _Metadata(http.server.BaseHTTPRequestHandler):
    """The two metadata endpoints the access script asks, on loopback: each answers only a request
    with its cloud's header, and echoes what it was asked for into the token."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path.endswith("/service-accounts/default/identity") and self.headers.get("Metadata-Flavor") == "Google":
            body = f"google-id-token:{query.get('audience')}:{query.get('format')}".encode()
        elif url.path == "/metadata/identity/oauth2/token" and self.headers.get("Metadata") == "true":
            body = json.dumps({"access_token": f"entra-token:{query.get('resource')}:{query.get('client_id')}"}).encode()
        else:
            self.send_response(400)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metadata_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("source", "expected"), [
    ("gcp-metadata", "google-id-token:sts.amazonaws.com:full"),
    ("azure-imds", "entra-token:https://management.azure.com/:client-1"),
])
def test_access_script_fetches_the_machine_token(tmp_path: Path, metadata_server: str, source: str,
                                                 expected: str) -> None:
    token = tmp_path / "run" / "token"
    audience = "sts.amazonaws.com" if source == "gcp-metadata" else "https://management.azure.com/"
    env_file = tmp_path / "access.env"
    env_file.write_text(f"SKYPLAN_ACCESS_SOURCE={source}\nSKYPLAN_ACCESS_AUDIENCE={audience}\n"
                        f"SKYPLAN_ACCESS_IDENTITY=client-1\nSKYPLAN_ACCESS_TOKEN_FILE={token}\n"
                        f"AWS_WEB_IDENTITY_TOKEN_FILE={token}\n")
    res = subprocess.run(["bash", str(REPO / "templates" / "access" / "refresh.sh"), "sh", "-c",
                          'cat "$AWS_WEB_IDENTITY_TOKEN_FILE"'],
                         env={**os.environ, "SKYPLAN_ACCESS_ENV": str(env_file),
                              "SKYPLAN_ACCESS_GCE_METADATA": metadata_server,
                              "SKYPLAN_ACCESS_AZURE_IMDS": metadata_server},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == expected
    assert token.stat().st_mode & 0o077 == 0


def test_access_script_is_shellcheck_clean() -> None:
    exe = require_tool("shellcheck")
    proc = subprocess.run([exe, "-s", "bash", str(REPO / "templates" / "access" / "refresh.sh")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
