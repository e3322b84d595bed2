"""SkyPilot task-YAML features skyplan reads (issue 12), each proved on a real compile, and the
launch-time ones on a real local apply."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from skyplan import apply as apply_mod
from skyplan.errors import SkyplanError
from skyplan.pipeline import compile_plan


@pytest.fixture
def local_zones(tmp_path, monkeypatch):
    """One local zone of 2 CPUs, its slots under tmp_path."""
    path = tmp_path / "local.yaml"
    path.write_text(json.dumps({"zones": [{"name": "local-1", "cpus": 2, "memory": 4}]}))
    monkeypatch.setenv("SKYPLAN_LOCAL_CONFIG", str(path))
    monkeypatch.setenv("SKYPLAN_LOCAL_SLOTS_DIR", str(tmp_path / "slots"))
    return path


def compiled(tmp_path: Path, text: str, name: str = "task.yaml") -> tuple[Path, dict]:
    """Compile SkyPilot-shaped `text`; the plan directory and its plan.json."""
    spec = tmp_path / name
    spec.write_text(text)
    out = tmp_path / "plan"
    compile_plan(spec, out)
    return out, json.loads((out / "plan.json").read_text())


NULL_ENV = """\
name: hf
resources: {infra: local, cpus: 1+}
envs:
  HF_TOKEN:
  EPOCHS: 3
run: printf '%s' "$HF_TOKEN" | sha256sum | cut -d' ' -f1 > "$SKYPLAN_OUTPUT_DIR/h.txt"
"""


def test_a_null_env_is_recorded_as_required_at_launch(tmp_path, local_zones):
    out, plan = compiled(tmp_path, NULL_ENV)
    (task,) = plan["tasks"]
    assert task["required_at_launch"] == ["HF_TOKEN"]


@pytest.mark.slow
def test_apply_refuses_before_creating_anything_while_a_launch_value_is_unset(tmp_path, local_zones, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    out, _ = compiled(tmp_path, NULL_ENV)
    with pytest.raises(SkyplanError, match=r"task hf needs HF_TOKEN at launch .*export it where skyplan apply runs"):
        apply_mod.apply(out, max_attempts=1)
    assert not (out / "local" / "terraform.tfstate").exists()


@pytest.mark.slow
def test_a_null_env_gets_its_value_from_applys_environment_and_never_reaches_the_plan(tmp_path, local_zones,
                                                                                     monkeypatch):
    value = "hf_t0ken-never-written"
    monkeypatch.setenv("HF_TOKEN", value)
    out, _ = compiled(tmp_path, NULL_ENV)
    assert apply_mod.apply(out, max_attempts=1).ok
    got = (out / ".skyplan-storage" / "hf" / "hf" / "outputs" / "h.txt").read_text().strip()
    assert got == hashlib.sha256(value.encode()).hexdigest()
    for path in out.rglob("*"):
        if path.is_file():
            assert value.encode() not in path.read_bytes(), path


def solved(tmp_path: Path, text: str):
    """Solve SkyPilot-shaped `text` without writing a plan (the spec and placement)."""
    from skyplan.pipeline import solve_spec

    spec = tmp_path / "task.yaml"
    spec.write_text(text)
    return solve_spec(spec)


@pytest.mark.parametrize(("block", "said"), [
    ("  autostop: {idle_minutes: 10, down: true}\n", "autostop is accepted and has no effect"),
    ("  autostop: 10\n", "autostop is accepted and has no effect"),
    ("  labels: {team: ml}\n", "labels are accepted but not yet set"),
    ("  job_recovery: {strategy: FAILOVER, max_restarts_on_errors: 3}\n", "job_recovery is accepted: skyplan recovers by failover"),
    ("  spot_recovery: failover\n", "spot_recovery is accepted"),
])
def test_accepted_keys_compile_and_say_what_skyplan_does(tmp_path, block, said):
    result = solved(tmp_path, "resources:\n  cpus: 2\n" + block + "run: echo hi\n")
    assert any(said in w for w in result.spec.warnings), result.spec.warnings


def test_accepted_keys_are_still_checked(tmp_path):
    with pytest.raises(SkyplanError, match=r"resources.job_recovery: expected a recovery strategy"):
        solved(tmp_path, "resources:\n  job_recovery: retry-forever\nrun: x\n")
    with pytest.raises(SkyplanError, match=r"resources.autostop.idle: unknown key"):
        solved(tmp_path, "resources:\n  autostop: {idle: 3}\nrun: x\n")


def test_skypilot_accelerator_spellings(tmp_path):
    result = solved(tmp_path, "resources: {accelerators: {A100-40GB: 1, H100-80GB: 1}}\nrun: x\n")
    (task,) = result.spec.tasks
    assert sorted(o.accelerator.name for o in task.options) == ["A100", "H100"]


def test_a_fractional_accelerator_gets_a_whole_one_and_says_so(tmp_path):
    result = solved(tmp_path, "resources: {accelerators: T4:0.5}\nrun: x\n")
    assert result.plan_doc["tasks"][0]["accelerator_count"] == 1
    assert any("T4:0.5 is a share of one T4" in w for w in result.spec.warnings)


def test_alternatives_on_clouds_skyplan_does_not_target_are_dropped_with_a_warning(tmp_path):
    result = solved(tmp_path, "resources:\n  accelerators: A100:8\n  any_of:\n    - infra: lambda\n"
                              "    - infra: gcp\n    - infra: kubernetes/my-ctx\nrun: x\n")
    assert result.plan_doc["tasks"][0]["cloud"] == "gcp"
    assert any("alternatives on lambda, kubernetes dropped: skyplan does not target them" in w
               for w in result.spec.warnings), result.spec.warnings


def test_a_task_left_with_no_targeted_cloud_is_refused_naming_them(tmp_path):
    with pytest.raises(SkyplanError, match=r"resources.any_of: unsupported cloud `runpod`, `nebius`: skyplan does not "
                                           r"target them; skyplan targets are aws, gcp, azure, local, ssh"):
        solved(tmp_path, "resources:\n  any_of:\n    - infra: runpod\n    - cloud: nebius\nrun: x\n")
    with pytest.raises(SkyplanError, match=r"resources.infra: unsupported cloud `k8s`: skyplan does not target it"):
        solved(tmp_path, "resources: {infra: k8s}\nrun: x\n")
    # A typo is still a typo, not an untargeted cloud.
    with pytest.raises(SkyplanError, match=r"unsupported cloud `gpc`; did you mean `gcp`\?"):
        solved(tmp_path, "resources: {cloud: gpc}\nrun: x\n")


def test_config_for_untargeted_clouds_is_accepted_and_said_to_do_nothing(tmp_path):
    result = solved(tmp_path, "config:\n  kubernetes:\n    pod_config: {spec: {}}\n"
                              "  azure: {remote_identity: SERVICE_ACCOUNT}\nrun: x\n")
    assert any("config.kubernetes has no effect: skyplan does not target kubernetes" in w for w in result.spec.warnings)
    assert any("remote_identity SERVICE_ACCOUNT is what skyplan does anyway" in w for w in result.spec.warnings)


@pytest.mark.parametrize(("config", "refusal"), [
    ("  azure: {remote_identity: LOCAL_CREDENTIALS}\n",
     r"config.azure.remote_identity: config.azure.remote_identity LOCAL_CREDENTIALS cannot be honoured: skyplan never copies"),
    ("  gcp: {managed_instance_group: {run_duration: 3600}}\n",
     r"config.gcp.managed_instance_group: config.gcp.managed_instance_group cannot be honoured"),
    ("  docker: {run_options: [--ipc=host]}\n", r"config.docker: config.docker cannot be honoured yet"),
    ("  jobs: {controller: {}}\n", r"config.jobs: config.jobs cannot be honoured"),
])
def test_config_that_would_change_the_plan_is_refused_by_name(tmp_path, config, refusal):
    with pytest.raises(SkyplanError, match=refusal):
        solved(tmp_path, "config:\n" + config + "run: x\n")


def test_network_tier_best_is_accepted_with_what_the_machines_get(tmp_path):
    result = solved(tmp_path, "resources: {cpus: 2, network_tier: best}\nrun: x\n")
    assert any("network_tier best is accepted, but machines get their cloud's standard network" in w
               for w in result.spec.warnings)
    with pytest.raises(SkyplanError, match=r"resources.network_tier: expected standard or best"):
        solved(tmp_path, "resources: {network_tier: fastest}\nrun: x\n")


@pytest.mark.parametrize(("infra", "tier", "disk", "rendered"), [
    ("aws", "best", {"type": "io2", "iops": 20000}, ['disk_type          = "io2"', "disk_iops          = 20000"]),
    ("aws", "high", {"type": "gp3", "iops": 7000},
     ['disk_type          = "gp3"', "disk_iops          = 7000", "disk_throughput    = 437"]),
    ("aws", "low", {"type": "standard", "iops": None}, ['disk_type          = "standard"']),
    ("gcp", "ultra", {"type": "pd-extreme", "iops": 20000},
     ['disk_type             = "pd-extreme"', "disk_iops             = 20000"]),
    ("gcp", "medium", {"type": "pd-balanced", "iops": None}, ['disk_type             = "pd-balanced"']),
    ("azure", "best", {"type": "Premium_LRS", "iops": None}, ['disk_type            = "Premium_LRS"']),
    ("azure", "low", {"type": "Standard_LRS", "iops": None}, ['disk_type            = "Standard_LRS"']),
])
def test_disk_tier_is_each_clouds_disk_type_in_plan_and_stack(tmp_path, infra, tier, disk, rendered):
    from schema_check import check_stack

    # n2-standard-64 has pd-extreme on gcp (smaller n2s, n1, a2, g2 do not).
    shape = "instance_type: n2-standard-64" if infra == "gcp" else "cpus: 4"
    out, plan = compiled(tmp_path, f"resources: {{infra: {infra}, {shape}, disk_tier: {tier}, disk_size: 300}}\n"
                                   "run: x\n")
    (task,) = plan["tasks"]
    assert task["disk"] == {"tier": tier, "size_gb": 300, **disk}, task
    main = (out / infra / "main.tf").read_text()
    lines = {" ".join(line.split()) for line in main.splitlines()}  # fmt's alignment aside
    for line in rendered:
        assert " ".join(line.split()) in lines, (line, main)
    assert check_stack(out / infra) == []


def test_gcp_series_without_pd_extreme_get_pd_ssd_for_ultra():
    from skyplan.targets.disks import disk_for

    assert disk_for("gcp", "a2-highgpu-1g", "ultra").type == "pd-ssd"
    assert disk_for("gcp", "n2-standard-32", "best").type == "pd-ssd"
    assert disk_for("gcp", "n2-standard-64", "best").type == "pd-extreme"
    assert disk_for("gcp", "a3-highgpu-8g", "low").type == "pd-balanced"
    assert disk_for("gcp", "a3-highgpu-8g", "ultra").type == "hyperdisk-balanced"
    assert disk_for("gcp", "n4-standard-8", "low").type == "hyperdisk-balanced"
    assert disk_for("aws", "m6i.large", None) is None


def test_an_ultra_disk_is_never_placed_on_azure(tmp_path):
    with pytest.raises(SkyplanError):
        solved(tmp_path, "resources: {infra: azure, cpus: 4, disk_tier: ultra}\nrun: x\n")
    result = solved(tmp_path, "resources:\n  cpus: 4\n  disk_tier: ultra\n  any_of: [{infra: azure}, {infra: aws}]\n"
                              "run: x\n")
    assert result.plan_doc["tasks"][0]["cloud"] == "aws"
    with pytest.raises(SkyplanError, match=r"resources.disk_tier: expected a disk tier \(low, medium, high, ultra, best\)"):
        solved(tmp_path, "resources: {disk_tier: fast}\nrun: x\n")


@pytest.mark.parametrize("infra", ["aws", "gcp", "azure"])
def test_a_docker_image_is_recorded_never_used_as_the_machine_image_and_blocks_apply(tmp_path, infra):
    out, plan = compiled(tmp_path, f"resources: {{infra: {infra}, cpus: 4, image_id: 'docker:nvcr.io/nvidia/pytorch:25.02-py3'}}\n"
                                   "run: x\n")
    (task,) = plan["tasks"]
    assert task["container"] == "nvcr.io/nvidia/pytorch:25.02-py3"
    assert any("runs in container nvcr.io/nvidia/pytorch:25.02-py3" in b and "does not run tasks in containers yet" in b
               for b in plan["apply_blockers"]), plan["apply_blockers"]
    stack = "\n".join(p.read_text() for p in (out / infra).glob("*.tf"))
    assert "docker:" not in stack and "nvcr.io" not in stack
    assert "apply will refuse: task task runs in container" in (out / "PLAN.md").read_text()


def test_a_git_workdir_is_recorded_and_apply_refuses_until_it_is_fetched(tmp_path):
    out, plan = compiled(tmp_path, "resources: {infra: aws, cpus: 4}\n"
                                   "workdir:\n  url: https://github.com/NovaSky-AI/SkyRL.git\n  ref: skyrl_train-v0.4.0\n"
                                   "run: ls\n")
    (task,) = plan["tasks"]
    assert task["workdir_git"] == {"url": "https://github.com/NovaSky-AI/SkyRL.git", "ref": "skyrl_train-v0.4.0"}
    assert any("workdir is the git repository https://github.com/NovaSky-AI/SkyRL.git at skyrl_train-v0.4.0" in b
               for b in plan["apply_blockers"])
    with pytest.raises(SkyplanError, match=r"workdir: a git workdir needs `url`"):
        solved(tmp_path, "workdir: {ref: main}\nrun: x\n")


def test_a_copy_storage_mount_with_a_source_is_a_plain_mount(tmp_path):
    result = solved(tmp_path, "file_mounts:\n  /data:\n    source: s3://bucket/data\n    mode: COPY\n"
                              "  /code:\n    name: my-code-bucket\n    source: ./src\n    mode: COPY\nrun: x\n")
    (task,) = result.spec.tasks
    assert task.file_mounts == (("/code", "./src"), ("/data", "s3://bucket/data"))
    assert task.storage_mounts == ()
    assert any("bucket name of a COPY mount is not created" in w for w in result.spec.warnings)


def test_a_mounted_bucket_is_recorded_and_apply_refuses_until_buckets_are_mounted(tmp_path):
    out, plan = compiled(tmp_path, "resources: {infra: gcp, cpus: 4}\nfile_mounts:\n  /ckpt:\n    name: my-ckpts\n"
                                   "    store: gcs\n  /data:\n    source: gs://ds\nrun: x\n")
    (task,) = plan["tasks"]
    assert task["storage_mounts"] == {"/ckpt": "mode MOUNT, bucket my-ckpts, store gcs",
                                      "/data": "mode MOUNT, source gs://ds"}
    assert any("mounts a bucket at /ckpt (mode MOUNT, bucket my-ckpts, store gcs): skyplan records it but does not "
               "mount buckets yet" in b for b in plan["apply_blockers"]), plan["apply_blockers"]


SKYPILOT_PIPELINE = """\
name: sky-pipeline
---
name: prep
resources:
  infra: local
  cpus: 1+
  disk_tier: best
  autostop: 10
  job_recovery: {max_restarts_on_errors: 1}
workdir: .
envs:
  GREETING: hello
  HF_TOKEN:
run: |
  cat data.txt > "$SKYPLAN_OUTPUT_DIR/prep.txt"
  echo "$GREETING ${#HF_TOKEN}" >> "$SKYPLAN_OUTPUT_DIR/prep.txt"
---
name: train
resources:
  ordered:
    - infra: local
      cpus: 1+
    - infra: aws
      accelerators: A10g
run: cat "$SKYPLAN_INPUT_DIR"/prep/prep.txt > "$SKYPLAN_OUTPUT_DIR/train.txt"
"""


@pytest.mark.slow
def test_a_skypilot_pipeline_runs_end_to_end_on_local(tmp_path, local_zones, monkeypatch):
    # A SkyPilot pipeline YAML as `sky jobs launch` takes it: `---` documents chained, a workdir
    # relative to the file, a null env given at launch, keys skyplan accepts without acting on,
    # and `ordered` whose first (local) alternative wins over a later cloud one.
    monkeypatch.setenv("HF_TOKEN", "12345")
    (tmp_path / "data.txt").write_text("from the workdir\n")
    out, plan = compiled(tmp_path, SKYPILOT_PIPELINE)
    assert {t["name"]: t["cloud"] for t in plan["tasks"]} == {"prep": "local", "train": "local"}
    assert plan["apply_blockers"] == []
    assert apply_mod.apply(out, max_attempts=1).ok
    storage = out / ".skyplan-storage" / "sky-pipeline"
    assert (storage / "train" / "outputs" / "train.txt").read_text() == "from the workdir\nhello 5\n"


@pytest.mark.slow
def test_a_skypilot_num_nodes_2_task_runs_every_node_on_local(tmp_path, local_zones):
    marks = tmp_path / "marks"
    marks.mkdir()
    out, plan = compiled(tmp_path, "name: multi\nnum_nodes: 2\nresources: {infra: local, cpus: 1}\n"
                                   f"run: echo \"$SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES\" > {marks}/rank-$SKYPILOT_NODE_RANK\n")
    (task,) = plan["tasks"]
    assert task["num_nodes"] == 2 and task["cloud"] == "local"
    assert apply_mod.apply(out, max_attempts=1).ok
    assert sorted(p.read_text() for p in marks.iterdir()) == ["0 of 2\n", "1 of 2\n"]


# The causes bench/skypilot_corpus.py counts as out of scope, each refused by name on one line
# that says what skyplan does instead (the corpus run relies on these messages).
OUT_OF_SCOPE_CASES = {
    "service": ("service:\n  readiness_probe: /\nresources: {cpus: 2+}\nrun: python -m http.server\n",
                r"service: .*long-running; skyplan plans batch jobs"),
    "pool": ("pool:\n  workers: 2\nresources: {cpus: 2+}\nrun: echo hi\n",
             r"pool: .*worker pools are not modelled; see skyplan `pools:`"),
    "api_server_access": ("api_server_access: true\nresources: {cpus: 2+}\nrun: echo hi\n",
                          r"api_server_access: .*there is no API server"),
    "untargeted cloud": ("resources: {infra: runpod, accelerators: A100:1}\nrun: echo hi\n",
                         r"unsupported cloud `runpod`: skyplan does not target it; "
                         r"skyplan targets are aws, gcp, azure, local, ssh"),
}


@pytest.mark.parametrize("case", sorted(OUT_OF_SCOPE_CASES))
def test_out_of_scope_keys_are_refused_by_name_saying_what_skyplan_does(tmp_path, case):
    import re

    text, pattern = OUT_OF_SCOPE_CASES[case]
    with pytest.raises(SkyplanError) as err:
        compiled(tmp_path, text)
    message = str(err.value)
    assert "\n" not in message
    assert re.search(pattern, message), message


LAUNCH_FLAGS = """\
name: launch
resources: {infra: local, cpus: 1+}
envs:
  MODEL:
  EPOCHS: 3
secrets:
  WANDB_API_KEY:
run: |
  printf '%s|%s|%s' "$MODEL" "$EPOCHS" "$WANDB_API_KEY" | sha256sum | cut -d' ' -f1 > "$SKYPLAN_OUTPUT_DIR/h.txt"
"""


def _skyplan_cli(*args: str, env: dict) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skyplan", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.slow
def test_apply_takes_envs_and_secrets_like_sky_launch(tmp_path, local_zones):
    """`skyplan apply task.yaml --env K=V --secret K` as `sky launch` takes them: a value on the flag,
    or the name alone for a value from the environment; neither value lands in DIR."""
    import os

    spec = tmp_path / "launch.yaml"
    spec.write_text(LAUNCH_FLAGS)
    out = tmp_path / "plan"
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL", "WANDB_API_KEY")}
    env["WANDB_API_KEY"] = "wandb-s3cret-from-env"
    res = _skyplan_cli("apply", str(spec), "-o", str(out), "--auto-approve", "--env", "MODEL=llama-3-8b",
                       "--secret", "WANDB_API_KEY", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    got = (out / ".skyplan-storage" / "launch" / "launch" / "outputs" / "h.txt").read_text().strip()
    assert got == hashlib.sha256(b"llama-3-8b|3|wandb-s3cret-from-env").hexdigest()
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"wandb-s3cret" not in data and b"llama-3-8b" not in data, path


@pytest.mark.parametrize("flags, message", [
    (["--env", "EPOCHS=5"], "--env EPOCHS: no task of this plan takes EPOCHS at launch (it takes MODEL, "
                            "WANDB_API_KEY)"),
    (["--env", "MODEL=x", "--secret", "WANDB_API_KEY"], "--secret WANDB_API_KEY: WANDB_API_KEY is not set"),
    (["--env", "1BAD=x"], "--env 1BAD: expected NAME or NAME=VALUE"),
    ([], "task launch needs MODEL, WANDB_API_KEY at launch"),
])
def test_launch_flags_are_refused_before_anything_is_created(tmp_path, local_zones, flags, message):
    import os

    spec = tmp_path / "launch.yaml"
    spec.write_text(LAUNCH_FLAGS)
    out = tmp_path / "plan"
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL", "WANDB_API_KEY")}
    res = _skyplan_cli("apply", str(spec), "-o", str(out), "--auto-approve", *flags, env=env)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr, res.stderr
    assert not (out / "local" / "terraform.tfstate").exists()
