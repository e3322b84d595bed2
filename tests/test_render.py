"""Render stage: aws/gcp/azure stacks are fmt-clean, schema-valid, deterministic and safe.

Placements are built by hand from the models, so these tests do not depend on the optimizer.
Golden copies of the rendered stacks live in tests/fixtures/render/<scenario>/; regenerate them
with `SKYPLAN_UPDATE_GOLDEN=1 pytest tests/test_render.py` and review the diff.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from skyplan.errors import RenderError
from skyplan.executor import USER_DATA_LIMITS, executor_script
from skyplan.models import (
    AcceleratorDemand,
    Candidate,
    Location,
    Objective,
    Offering,
    Placement,
    Quantity,
    ResourceOption,
    SolverStats,
    Spec,
    SpotPolicy,
    Task,
    TaskPlacement,
)
from skyplan.outdir import write_output
from skyplan.render import render, waves
from skyplan.targets import get_target, target_names
from skyplan.targets.cloud import RANK_TOKEN, STORAGE_TOKEN, parse_storage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from schema_check import check_stack, load_schema  # noqa: E402
from tools import terraform_command  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "render"
CLOUDS = ("aws", "gcp", "azure")
HOSTILE = 'evil "${x}" %{y} \\ ünïcødé 名前\nnext'

# ---------------------------------------------------------------------------------------------
# Building placements by hand
# ---------------------------------------------------------------------------------------------


def task(name: str, *, gpu: tuple[str, int] | None = None, depends_on: tuple[str, ...] = (), ports=(),
         num_nodes: int = 1, run: str = "python main.py", image_id: str | None = None, disk: int = 256,
         spot: SpotPolicy = SpotPolicy.AUTO) -> Task:
    option = ResourceOption(
        cpus=Quantity(4, True),
        accelerator=AcceleratorDemand(*gpu) if gpu else None,
        ports=tuple(ports),
        image_id=image_id,
        disk_gb=disk,
        use_spot=spot,
    )
    return Task(name, (option,), num_nodes=num_nodes, setup="pip install -r requirements.txt", run=run,
                envs=(("EPOCHS", "10"),), depends_on=depends_on,
                ingress_from=INGRESS if ports else ())


INGRESS = ("198.51.100.7/32", "203.0.113.0/24")  # documentation ranges (RFC 5737)


def placed(name: str, cloud: str, region: str, zone: str | None, instance_type: str, *,
           gpu: tuple[str, int] | None = None, spot: bool = False, nodes: int = 1) -> TaskPlacement:
    offering = Offering(Location(cloud, region, zone), instance_type, gpu[0] if gpu else None,
                        gpu[1] if gpu else 0, 8, 32, 1.0, 0.4,
                        host_type=instance_type if cloud == "gcp" and gpu and not instance_type.startswith("tpu") else None)
    cand = Candidate(name, offering, spot, 2.0, 0.4 if spot else 1.0, nodes, 0.0)
    return TaskPlacement(name, cand, 0.0, 0.0, 2.0)


def plan(name: str, tasks: list[Task], placements: list[TaskPlacement], storage: str | None) -> tuple[Spec, Placement]:
    spec = Spec(name, tuple(tasks), storage=storage)
    placement = Placement(name, Objective.COST, tuple(placements), 10.0, 4.0, (),
                          SolverStats("OPTIMAL", 10.0, 0.01))
    return spec, placement


def mixed() -> tuple[Spec, Placement]:
    """CPU + GPU pipeline across aws, gcp and azure, spot and on-demand, ports on some tasks."""
    tasks = [
        task("prep"),
        task("train", gpu=("A100", 8), depends_on=("prep",), num_nodes=2, ports=(8080,)),
        task("eval-t4", gpu=("T4", 1), depends_on=("train",)),
        task("serve", gpu=("A100-80GB", 1), depends_on=("train",), ports=(443, 8888)),
        task("report", depends_on=("eval-t4", "serve")),
    ]
    placements = [
        placed("prep", "aws", "us-east-1", "use1-az4", "m6i.2xlarge"),
        placed("train", "aws", "us-east-1", "use1-az6", "p4d.24xlarge", gpu=("A100", 8), spot=True, nodes=2),
        placed("eval-t4", "gcp", "us-central1", "us-central1-a", "n1-standard-8", gpu=("T4", 1), spot=True),
        placed("serve", "azure", "eastus", None, "Standard_NC24ads_A100_v4", gpu=("A100-80GB", 1), spot=True),
        placed("report", "azure", "westus2", None, "Standard_D4s_v5"),
    ]
    return plan("ml-pipeline", tasks, placements, "s3://my-bucket/skyplan")


def gcp_gpus() -> tuple[Spec, Placement]:
    """GCP: n1 with an attached GPU, a2 with a built-in one, a TPU slice; gs:// storage."""
    tasks = [
        task("n1-v100", gpu=("V100", 4)),
        task("a2-a100", gpu=("A100", 1), depends_on=("n1-v100",), ports=(22,)),
        task("tpu-v5e", gpu=("tpu-v5litepod-8", 1), depends_on=("n1-v100",), num_nodes=2),
        task("cpu", depends_on=("a2-a100", "tpu-v5e")),
    ]
    placements = [
        placed("n1-v100", "gcp", "us-central1", "us-central1-b", "n1-highmem-16", gpu=("V100", 4)),
        placed("a2-a100", "gcp", "us-central1", "us-central1-c", "a2-highgpu-1g", gpu=("A100", 1), spot=True),
        placed("tpu-v5e", "gcp", "us-west4", "us-west4-a", "tpu-v5litepod-8", gpu=("tpu-v5litepod-8", 1),
               spot=True, nodes=2),
        placed("cpu", "gcp", "europe-west4", "europe-west4-a", "n2-standard-8"),
    ]
    return plan("gcp-gpus", tasks, placements, "gs://bkt/runs")


def aws_multi_region() -> tuple[Spec, Placement]:
    """AWS only, three regions and two zones in one of them, a Graviton GPU, a Neuron chip, an AMI id."""
    tasks = [
        task("a", image_id="ami-0123456789abcdef0"),
        task("b", gpu=("T4g", 1), depends_on=("a",)),
        task("c", gpu=("Inferentia2", 1), depends_on=("a",)),
        task("d", depends_on=("b", "c")),
    ]
    placements = [
        placed("a", "aws", "us-east-1", "use1-az1", "c6i.large"),
        placed("b", "aws", "us-west-2", "usw2-az1", "g5g.xlarge", gpu=("T4g", 1), spot=True),
        placed("c", "aws", "eu-west-1", "euw1-az2", "inf2.xlarge", gpu=("Inferentia2", 1)),
        placed("d", "aws", "us-east-1", "use1-az2", "m6i.large"),
    ]
    return plan("multi-region", tasks, placements, None)


def hostile() -> tuple[Spec, Placement]:
    """Task names with quotes, ${, %{, backslash, unicode, a newline; hostile commands; azure blob storage."""
    names = [HOSTILE, "Ωmega task", "a_b.c"]
    tasks = [
        task(names[0], run="echo \"${HOME}\" '%{x}' $(id)\ncat <<EOF\n$PATH\nEOF\n"),
        task(names[1], depends_on=(names[0],), ports=(8080,)),
        task(names[2], depends_on=(names[1],), gpu=("V100", 1)),
    ]
    placements = [
        placed(names[0], "aws", "eu-central-1", "euc1-az2", "m6i.large", spot=True),
        placed(names[1], "gcp", "europe-west4", "europe-west4-b", "n2-standard-4"),
        placed(names[2], "azure", "westus3", None, "Standard_NC6s_v3", gpu=("V100", 1)),
    ]
    return plan('plan "${x}" ü', tasks, placements, "https://acct01.blob.core.windows.net/container/pre")


SCENARIOS = {"mixed": mixed, "gcp_gpus": gcp_gpus, "aws_multi_region": aws_multi_region, "hostile": hostile}


def rendered(scenario: str) -> dict[str, bytes]:
    spec, placement = SCENARIOS[scenario]()
    return render(spec, placement, plan_json='{"format_version": 1}\n', plan_md="# plan\n")


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def out(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    directory = tmp_path_factory.mktemp(request.param)
    write_output(rendered(request.param), directory)
    return request.param, directory


def stacks(directory: Path) -> list[Path]:
    return [directory / c for c in CLOUDS if (directory / c).is_dir()]


# ---------------------------------------------------------------------------------------------
# HCL helpers
# ---------------------------------------------------------------------------------------------


def hcl_unquote(literal: str) -> str:
    """The value of an HCL quoted string literal as python-hcl2 returns it (quotes included)."""
    assert literal.startswith('"') and literal.endswith('"'), literal
    body = literal[1:-1].replace("$${", "${").replace("%%{", "%{")
    body = re.sub(r"\\U([0-9a-f]{8})", lambda m: chr(int(m.group(1), 16)), body)
    return json.loads('"' + body + '"')


def parse_dir(directory: Path) -> dict[str, Any]:
    merged: dict[str, list] = {}
    for path in sorted(directory.glob("*.tf")):
        for key, value in hcl2.loads(path.read_text()).items():
            merged.setdefault(key, []).extend(value)
    return merged


def blocks(doc: dict[str, Any], kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every resource/data block."""
    out = []
    for block in doc.get(kind, []):
        for rtype, named in block.items():
            for rname, body in named.items():
                if not rname.startswith("__"):
                    out.append((rtype.strip('"'), rname.strip('"'), body))
    return out


def modules(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k.strip('"'): v for b in doc.get("module", []) for k, v in b.items() if not k.startswith("__")}


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------


def test_terraform_fmt_clean(out: tuple[str, Path]) -> None:
    _, directory = out
    for path in [*stacks(directory), directory / "modules"]:
        res = subprocess.run([*terraform_command(), "fmt", "-check", "-diff", "-recursive", str(path)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr


def test_schema_valid(out: tuple[str, Path]) -> None:
    _, directory = out
    assert stacks(directory)
    for stack in stacks(directory):
        assert check_stack(stack) == [], stack.name


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rerender_is_byte_identical(scenario: str) -> None:
    first, second = rendered(scenario), rendered(scenario)
    assert first == second
    assert list(first) == sorted(first)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_golden(scenario: str) -> None:
    # Stacks only: cloud-init files embed the executor, whose golden tests live with the executor.
    files = {k: v for k, v in rendered(scenario).items() if k.split("/")[0] in CLOUDS}
    folder = GOLDEN / scenario
    if os.environ.get("SKYPLAN_UPDATE_GOLDEN"):
        shutil.rmtree(folder, ignore_errors=True)
        write_output(files, folder)
        (folder / "MANIFEST.sha256").unlink()  # the golden copy is the stack files alone
    have = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    assert sorted(have) == sorted(files), "stack files changed; rerun with SKYPLAN_UPDATE_GOLDEN=1 and review"
    for name, data in files.items():
        assert have[name] == data, f"{scenario}/{name} differs from the golden copy"


def test_contract_variables_and_task_gating(out: tuple[str, Path]) -> None:
    scenario, directory = out
    spec, placement = SCENARIOS[scenario]()
    for stack in stacks(directory):
        doc = parse_dir(stack)
        variables = {k.strip('"'): v for b in doc["variable"] for k, v in b.items()}
        assert variables["active_tasks"]["type"] == "${set(string)}"
        assert variables["active_tasks"]["default"] == []
        assert hcl_unquote(variables["storage"]["default"]).startswith(
            (spec.storage or "file://").rstrip("/"))
        assert hcl_unquote(variables["plan"]["default"]) == spec.name
        names_here = [tp.task for tp in placement.tasks if tp.candidate.offering.cloud == stack.name]
        calls = modules(doc)
        assert len(calls) == len(names_here)
        gated = set()
        for call in calls.values():
            m = re.fullmatch(r'\$\{contains\(var\.active_tasks, (".*")\) \? 1 : 0\}', call["count"])
            assert m, call["count"]
            gated.add(hcl_unquote(m.group(1)))
            assert call["storage"] == "${var.storage}"
            # The cloud-init file, with its access.env filled in when storage is on another cloud.
            assert re.fullmatch(r'\$\{file\("\$\{path\.module\}/\.\./cloud-init/[a-z][-a-z0-9]*\.yaml"\)\}'
                                r'|\$\{replace\(file\("\$\{path\.module\}/\.\./cloud-init/[a-z][-a-z0-9]*\.yaml"\), '
                                r'"SKYPLAN_ACCESS_ENV_TOKEN", jsonencode\(local\.access_env(\["[a-z0-9_]+"\])?\)\)\}',
                                call["user_data"])
        assert gated == set(names_here)
        # The `tasks` output is keyed by the exact task names.
        output = {k.strip('"'): v for b in doc["output"] for k, v in b.items()}["tasks"]["value"]
        assert {hcl_unquote(k) for k in output} == set(names_here)
        for entry in output.values():
            assert {"zone", "active", "ids", "names", "private_ips", "public_ips"} <= set(entry)


def test_nothing_exists_without_active_tasks(out: tuple[str, Path]) -> None:
    # Every resource and data source is gated on var.active_tasks (directly or through a local).
    _, directory = out
    for stack in stacks(directory):
        doc = parse_dir(stack)
        for kind in ("resource", "data"):
            for rtype, rname, body in blocks(doc, kind):
                gate = body.get("count") or body.get("for_each")
                assert gate, f"{stack.name}: {rtype}.{rname} is not gated"
                assert re.search(r"var\.active_tasks|local\.(region|zone)_active|local\.any_active", str(gate)), gate


@pytest.mark.parametrize("scenario", ["aws_multi_region", "hostile", "mixed"])
def test_aws_zone_rendered_only_through_zone_id(scenario: str, tmp_path: Path) -> None:
    directory = tmp_path
    write_output(rendered(scenario), directory)
    _, placement = SCENARIOS[scenario]()
    text = "".join(p.read_text() for p in [*(directory / "aws").glob("*.tf"),
                                           *(directory / "modules" / "aws-node").glob("*.tf")])
    text = re.sub(r"(?m)^\s*#.*$", "", text)  # comments may explain zone names
    assert "availability_zone " not in text and "availability_zone=" not in text
    assert not re.search(r"\b[a-z]{2}-[a-z]+-\d[a-f]\b", text), "a zone *name* such as us-east-1a appears"
    doc = parse_dir(directory / "aws")
    subnets = {}
    for rtype, rname, body in blocks(doc, "data"):
        if rtype == "aws_subnets":
            filters = {f["name"].strip('"'): f["values"] for f in body["filter"]}
            assert set(filters) == {"vpc-id", "availability-zone-id", "default-for-az"}
            subnets[rname] = [v.strip('"') for v in filters["availability-zone-id"]]
    zones = {tp.candidate.offering.location.zone for tp in placement.tasks if tp.candidate.offering.cloud == "aws"}
    assert sorted(z for zs in subnets.values() for z in zs) == sorted(zones)
    for call in modules(doc).values():
        rname = re.fullmatch(r"\$\{data\.aws_subnets\.(\w+)\[0\]\.ids\[0\]\}", call["subnet_id"]).group(1)
        assert rname in subnets


def test_user_data_fits_and_decodes_to_the_executor(out: tuple[str, Path]) -> None:
    scenario, directory = out
    spec, placement = SCENARIOS[scenario]()
    from skyplan.hcl import cloud_name

    for tp in placement.tasks:
        cloud = tp.candidate.offering.cloud
        t = spec.task(tp.task)
        text = (directory / "cloud-init" / f"{cloud_name(t.name)}.yaml").read_text()
        assert text.startswith("#cloud-config\n")
        assert text.isascii()
        storage = get_target(cloud).storage_uri(spec.storage, spec.name)
        # What the node module hands the cloud: tokens replaced by jsonencode(storage) and the rank.
        real = text.replace(STORAGE_TOKEN, json.dumps(storage)).replace(RANK_TOKEN, f"'{t.num_nodes - 1}'")
        assert len(real.encode()) <= USER_DATA_LIMITS[cloud]
        doc = yaml.safe_load(real)
        files = {f["path"]: f for f in doc["write_files"]}
        assert files["/etc/skyplan/storage"]["content"] == storage
        assert ("/etc/skyplan/node-rank" in files) == (t.num_nodes > 1)
        executor = files["/var/lib/skyplan/executor.sh"]
        assert executor["encoding"] == "gz+b64"
        script = gzip.decompress(base64.b64decode(executor["content"])).decode()
        assert script == executor_script(t, plan_name=spec.name, upstream=t.depends_on)
        assert doc["runcmd"]


def test_tags_on_everything_that_takes_tags(out: tuple[str, Path]) -> None:
    _, directory = out
    sources = {"aws": "hashicorp/aws", "google": "hashicorp/google", "azurerm": "hashicorp/azurerm"}
    dirs = [*stacks(directory), *[p for p in (directory / "modules").rglob("*") if p.is_dir()]]
    seen = 0
    for d in dirs:
        for rtype, rname, body in blocks(parse_dir(d), "resource"):
            provider = "google-beta" if "google-beta" in str(body.get("provider", "")) else rtype.split("_")[0]
            schema = load_schema(sources.get(provider, "hashicorp/google-beta"))["resource_schemas"][rtype]["block"]
            attrs = schema["attributes"]
            key = "labels" if provider.startswith("google") else "tags"
            if key in attrs and not (attrs[key].get("computed") and not attrs[key].get("optional")):
                assert key in body, f"{d.name}: {rtype}.{rname} has no {key}"
                seen += 1
    assert seen > 0


def test_no_ingress_unless_ports_asked(out: tuple[str, Path]) -> None:
    scenario, directory = out
    spec, placement = SCENARIOS[scenario]()
    from skyplan.hcl import hcl_identifier

    with_ports = {hcl_identifier(t.name) for t in spec.tasks if t.options[0].ports}
    for stack in stacks(directory):
        for rtype, rname, body in blocks(parse_dir(stack), "resource"):
            assert "ingress" not in body and "security_rule" not in body
            if (rtype, rname) == ("google_compute_firewall", "deny_ingress"):
                # The GCP network's one rule of its own denies all ingress.
                assert body.get("deny") and body.get("priority") == 65534 and "allow" not in body
                continue
            if rtype in ("aws_vpc_security_group_ingress_rule", "google_compute_firewall",
                         "azurerm_network_security_rule"):
                assert rname.removesuffix("_ports") in with_ports, rname
            if rtype == "aws_security_group" and rname.endswith("_ports"):
                assert rname.removesuffix("_ports") in with_ports
    # And the tasks that asked do get their ports.
    for t in spec.tasks:
        if t.options[0].ports:
            cloud = placement.task(t.name).candidate.offering.cloud
            text = (directory / cloud / "main.tf").read_text()
            for port in t.options[0].ports:
                assert f'"{port}"' in text or f'"{port} {INGRESS[0]}"' in text
    # Opened only to the sources the task names, never to everyone.
    for stack in stacks(directory):
        for rtype, rname, body in blocks(parse_dir(stack), "resource"):
            if not rname.endswith("_ports") or rtype == "aws_security_group":
                continue
            text = json.dumps(body)
            assert "0.0.0.0/0" not in text, (rtype, text)
            assert not [k for k, v in body.items() if k.startswith("source") and k != "source_port_range" and "*" in json.dumps(v)], (rtype, text)
            assert all(cidr in text for cidr in INGRESS), (rtype, text)


def test_spot_exactly_when_spot(out: tuple[str, Path]) -> None:
    scenario, directory = out
    _, placement = SCENARIOS[scenario]()
    from skyplan.hcl import hcl_identifier

    for stack in stacks(directory):
        calls = modules(parse_dir(stack))
        for tp in placement.tasks:
            if tp.candidate.offering.cloud == stack.name:
                assert calls[hcl_identifier(tp.task)]["spot"] is tp.candidate.spot

def test_node_modules_apply_spot_only_when_asked() -> None:
    from skyplan.assets import modules_dir

    root = modules_dir()
    aws = (root / "aws-node" / "main.tf").read_text()
    assert 'for_each = var.spot ? [1] : []' in aws and 'market_type = "spot"' in aws
    gcp = (root / "gcp-node" / "main.tf").read_text()
    assert 'provisioning_model          = var.spot ? "SPOT" : "STANDARD"' in gcp
    assert 'instance_termination_action = "DELETE"' in gcp  # spot or the max_run_duration ceiling
    tpu = (root / "gcp-node" / "tpu" / "main.tf").read_text()
    assert 'dynamic "scheduling_config" {\n    for_each = var.spot ? [1] : []' in tpu
    azure = (root / "azure-node" / "main.tf").read_text()
    assert 'priority              = var.spot ? "Spot" : "Regular"' in azure
    assert 'eviction_policy       = var.spot ? "Delete" : null' in azure
    assert "max_bid_price         = var.spot ? -1 : null" in azure


def test_gcp_accelerators() -> None:
    files = rendered("gcp_gpus")
    doc = hcl2.loads(files["gcp/main.tf"].decode())
    calls = modules(doc)
    n1 = calls["n1-v100"]
    assert (n1["accelerator_type"], n1["accelerator_count"], n1["gpu"]) == ('"nvidia-tesla-v100"', 4, True)
    a2 = calls["a2-a100"]  # built in: no guest_accelerator
    assert (a2["accelerator_type"], a2["accelerator_count"], a2["gpu"]) == ('""', 0, True)
    cpu = calls["cpu"]
    assert (cpu["accelerator_count"], cpu["gpu"]) == (0, False)
    assert "deeplearning-platform-release" in files["gcp/main.tf"].decode()
    tpu = calls["tpu-v5e"]
    assert tpu["source"] == '"../modules/gcp-node/tpu"'
    assert tpu["accelerator_type"] == '"v5litepod-8"' and tpu["runtime_version"] == '"v2-alpha-tpuv5-lite"'
    assert "google-beta" in files["gcp/terraform.tf"].decode()
    assert 'provider "google-beta"' in files["gcp/providers.tf"].decode()
    # Storage identity on gs://: a service account with a role on the bucket.
    assert 'bucket = "bkt"' in files["gcp/main.tf"].decode()
    assert "modules/gcp-node/tpu/main.tf" in files


def test_google_beta_only_with_a_tpu() -> None:
    files = rendered("mixed")
    assert "google-beta" not in files["gcp/terraform.tf"].decode()
    assert "google-beta" not in files["gcp/providers.tf"].decode()


def test_aws_images_and_identity() -> None:
    multi = {k: v.decode() for k, v in rendered("aws_multi_region").items() if k.endswith(".tf")}
    main = multi["aws/main.tf"]
    assert '"ami-0123456789abcdef0"' in main  # image_id honoured, no lookup for it
    assert "Deep Learning ARM64 Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *" in main  # g5g
    assert "Deep Learning AMI Neuron (Ubuntu 22.04) *" in main  # inf2
    assert "aws_iam_role" not in main  # no s3 storage, no identity
    assert [m for m in re.findall(r'provider "aws" \{\n  alias  = "(\w+)"', multi["aws/providers.tf"])] == \
        ["eu_west_1", "us_east_1", "us_west_2"]
    mixed_main = rendered("mixed")["aws/main.tf"].decode()
    assert '"arn:aws:s3:::my-bucket/skyplan/ml-pipeline/*"' in mixed_main
    assert "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *" in mixed_main


def test_azure_identity_on_blob_storage() -> None:
    main = rendered("hostile")["azure/main.tf"].decode()
    assert 'name = "acct01"' in main
    assert '/blobServices/default/containers/container"' in main
    assert 'role_definition_name = "Storage Blob Data Contributor"' in main
    assert "microsoft-dsvm" in main


def test_user_data_too_big_for_aws_is_refused() -> None:
    import random

    rng = random.Random(0)
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(30_000))
    spec, placement = plan("big", [task("t", run=f"echo {noise}")],
                           [placed("t", "aws", "us-east-1", "use1-az1", "m6i.large")], None)
    with pytest.raises(RenderError, match="16,384"):
        render(spec, placement, plan_json="{}", plan_md="")
    # The same task fits GCP's 256 KiB.
    spec, placement = plan("big", [task("t", run=f"echo {noise}")],
                           [placed("t", "gcp", "us-east1", "us-east1-b", "n2-standard-4")], None)
    assert "gcp/main.tf" in render(spec, placement, plan_json="{}", plan_md="")


def test_unplaced_task_is_an_error() -> None:
    spec, placement = mixed()
    spec = Spec(spec.name, (*spec.tasks, task("orphan")), storage=spec.storage)
    with pytest.raises(RenderError, match="orphan"):
        render(spec, placement, plan_json="{}", plan_md="")


def test_waves() -> None:
    spec, _ = mixed()
    assert waves(spec) == {"prep": 0, "train": 1, "eval-t4": 2, "serve": 2, "report": 3}


def test_write_output_removes_stale_generated_files_but_keeps_state(tmp_path: Path) -> None:
    write_output(rendered("mixed"), tmp_path)
    state = {
        "aws/terraform.tfstate": b"{}", "aws/.terraform/providers/x": b"bin", "aws/.terraform.lock.hcl": b"lock",
        "aws/skyplan.tfvars.json": b"{}", "events.jsonl": b"{}\n", ".skyplan/run.json": b"{}",
        "gcp/terraform.tfstate.backup": b"{}",
    }
    for rel, data in state.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    before = (tmp_path / "aws" / "main.tf").stat().st_mtime_ns
    # Re-render a plan without gcp and azure: their stacks go, their state stays.
    spec, placement = aws_multi_region()
    new = render(spec, placement, plan_json="{}\n", plan_md="# p\n")
    write_output(new, tmp_path)
    for rel, data in state.items():
        assert (tmp_path / rel).read_bytes() == data, rel
    assert not (tmp_path / "gcp" / "main.tf").exists() and not (tmp_path / "azure").exists()
    assert not (tmp_path / "modules" / "gcp-node").exists()
    assert not (tmp_path / "cloud-init" / "serve.yaml").exists()
    assert (tmp_path / "cloud-init" / "d.yaml").exists()
    assert (tmp_path / "aws" / "main.tf").read_bytes() == new["aws/main.tf"]
    # Unchanged files are not rewritten.
    write_output(new, tmp_path)
    assert before != (tmp_path / "aws" / "main.tf").stat().st_mtime_ns  # changed content was rewritten once
    mtime = (tmp_path / "aws" / "main.tf").stat().st_mtime_ns
    write_output(new, tmp_path)
    assert (tmp_path / "aws" / "main.tf").stat().st_mtime_ns == mtime
    assert (tmp_path / "aws" / "main.tf").stat().st_mode & 0o777 == 0o644


def test_write_output_makes_scripts_executable_and_refuses_escapes(tmp_path: Path) -> None:
    write_output({"local/executors/a.sh": b"#!/usr/bin/env bash\necho\n", "plan.json": b"{}"}, tmp_path)
    assert (tmp_path / "local/executors/a.sh").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "plan.json").stat().st_mode & 0o777 == 0o644
    with pytest.raises(RenderError):
        write_output({"../escape.tf": b""}, tmp_path / "sub")


def test_registry() -> None:
    assert {"aws", "gcp", "azure"} <= set(target_names())
    for name in ("aws", "gcp", "azure"):
        assert get_target(name).name == name
        assert get_target(name) is get_target(name)
    from skyplan.errors import SkyplanError

    with pytest.raises(SkyplanError, match="did you mean 'azure'"):
        get_target("azrue")


@pytest.mark.parametrize(
    ("uri", "cloud", "bucket", "prefix", "account"),
    [
        ("s3://b/p/q", "aws", "b", "p/q", None),
        ("gs://b", "gcp", "b", "", None),
        ("https://acct.blob.core.windows.net/c/p", "azure", "c", "p", "acct"),
        ("az://acct/c/p/q", "azure", "c", "p/q", "acct"),
    ],
)
def test_parse_storage(uri: str, cloud: str, bucket: str, prefix: str, account: str | None) -> None:
    ref = parse_storage(uri)
    assert ref is not None
    assert (ref.cloud, ref.bucket, ref.prefix, ref.account) == (cloud, bucket, prefix, account)


@pytest.mark.parametrize("uri", ["file:///tmp/x", "/tmp/x", "http://example.com/x"])
def test_parse_storage_other(uri: str) -> None:
    assert parse_storage(uri) is None


@pytest.mark.parametrize("example", ["ml-pipeline.yaml", "eu-residency.yaml"])
def test_examples_compile_to_valid_stacks(example: str, tmp_path: Path) -> None:
    # End to end through the real optimizer: whatever it picks must render valid stacks.
    from skyplan.pipeline import compile_plan

    repo = Path(__file__).resolve().parents[1]
    compile_plan(repo / "examples" / example, tmp_path)
    assert stacks(tmp_path)
    for stack in stacks(tmp_path):
        assert check_stack(stack) == [], stack.name
        res = subprocess.run([*terraform_command(), "fmt", "-check", "-recursive", str(stack)], capture_output=True,
                             text=True)
        assert res.returncode == 0, res.stdout


@pytest.mark.slow
def test_catalog_wide_render_is_valid(tmp_path: Path) -> None:
    # One task on every distinct (cloud, instance type, accelerator) of the shipped catalog.
    from skyplan.catalog import load_catalog

    seen: dict[tuple[str, str, str], Offering] = {}
    for o in load_catalog(None).offerings:
        if o.cloud in CLOUDS:
            seen.setdefault((o.cloud, o.instance_type, o.accelerator or ""), o)
    tasks, placements = [], []
    for i, (_, o) in enumerate(sorted(seen.items())):
        name = f"{o.cloud}-{i}"
        gpu = (o.accelerator, o.accelerator_count) if o.accelerator else None
        tasks.append(task(name, gpu=gpu, num_nodes=1 + i % 2))
        cand = Candidate(name, o, i % 3 == 0, 1.0, 1.0, 1 + i % 2, 0.0)
        placements.append(TaskPlacement(name, cand, 0.0, 0.0, 1.0))
    spec, placement = plan("catalog", tasks, placements, "s3://b/p")
    write_output(render(spec, placement, plan_json="{}", plan_md=""), tmp_path)
    for stack in stacks(tmp_path):
        assert check_stack(stack) == [], stack.name


@pytest.mark.parametrize("cloud", CLOUDS)
def test_provider_pins_match_the_schemas(cloud: str) -> None:
    from schema_check import SCHEMA_FILES, SCHEMA_VERSIONS, _admits, schemas_root

    for pin in get_target(cloud).providers:
        assert SCHEMA_FILES[pin.source] == pin.schema_file
        assert (schemas_root() / pin.schema_file).is_file()
        assert _admits(pin.version, SCHEMA_VERSIONS[pin.source]), pin


@pytest.mark.parametrize("module", ["aws-node", "gcp-node", "gcp-node/tpu", "azure-node"])
def test_node_modules_fill_the_user_data_tokens(module: str) -> None:
    from skyplan.assets import modules_dir

    text = (modules_dir() / module / "main.tf").read_text()
    assert f'replace(var.user_data, "{STORAGE_TOKEN}", jsonencode(var.storage))' in text
    assert f'replace(local.user_data, "{RANK_TOKEN}", "\'${{count.index}}\'")' in text
    assert "var.user_data" in text.split("locals {")[1].split("}")[0]  # only the local reads it raw
    assert text.count("var.user_data") == 1
