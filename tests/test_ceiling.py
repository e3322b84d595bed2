"""Every cloud VM ends unbilled when its task ends, and at a cloud-side ceiling nobody has to watch:
the ceiling equals apply's watchdog, cloud-init arms it before the executor, GCP stacks carry it as
max_run_duration, and the Azure/GCP end scripts make the right REST call with the VM's own token."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_render import SCENARIOS, rendered

from skyplan import apply
from skyplan.ceiling import ceiling_seconds
from skyplan.endstep import CEILING_UNIT, END_MACHINE, END_MACHINE_PATH
from skyplan.executor import EXECUTOR_PATH, task_slug


def test_ceiling_is_the_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKYPLAN_TASK_TIMEOUT_S", raising=False)
    for hours in (0.0, 0.01, 0.5, 1.0, 2.25, 36.0):
        s = ceiling_seconds(hours)
        assert s % 60 == 0 and 0 <= s - apply._watchdog_seconds(hours) < 60, hours
    assert ceiling_seconds(2.0) == 7 * 3600


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_cloud_init_arms_the_ceiling_before_the_executor(scenario: str) -> None:
    spec, placement = SCENARIOS[scenario]()
    files = rendered(scenario)
    for tp in placement.tasks:
        cloud = tp.candidate.offering.cloud
        doc = yaml.safe_load(files[f"cloud-init/{task_slug(tp.task)}.yaml"])
        written = {f["path"]: f["content"] for f in doc["write_files"]}
        timer = written[f"/etc/systemd/system/{CEILING_UNIT}.timer"]
        assert f"OnBootSec={ceiling_seconds(tp.candidate.hours)}s\n" in timer
        service = written[f"/etc/systemd/system/{CEILING_UNIT}.service"]
        assert service.endswith("ExecStart=/bin/systemctl poweroff\n")
        # AWS terminates on power-off; Azure and GCP must release the VM first.
        assert (END_MACHINE_PATH in written) == (cloud in ("azure", "gcp")), (tp.task, cloud)
        assert (f"ExecStart=-{END_MACHINE_PATH}\n" in service) == (cloud in ("azure", "gcp"))
        if cloud in END_MACHINE:
            assert written[END_MACHINE_PATH] == END_MACHINE[cloud]
        runcmd = doc["runcmd"]
        assert runcmd.index(["systemctl", "enable", "--now", f"{CEILING_UNIT}.timer"]) < len(runcmd) - 1
        assert runcmd[-1][-1] == EXECUTOR_PATH


def test_gcp_stack_carries_max_run_duration() -> None:
    spec, placement = SCENARIOS["gcp_gpus"]()
    main = rendered("gcp_gpus")["gcp/main.tf"].decode()
    for tp in placement.tasks:
        assert f"max_run_seconds       = {ceiling_seconds(tp.candidate.hours)}\n" in main


def _fake_curl(tmp_path: Path, token_body: str) -> tuple[Path, Path]:
    """A `curl` on PATH that answers the metadata server's questions and records every call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "curl").write_text(
        "#!/bin/bash\n"
        f'printf "%s\\n" "$*" >> {calls}\n'
        'url="${!#}"\n'
        'case "$url" in\n'
        f"  *oauth2/token*|*service-accounts/default/token) printf '%s' '{token_body}' ;;\n"
        "  *compute/resourceId*) printf '/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-0' ;;\n"
        "  */instance/name) printf 'plan-task-0' ;;\n"
        "  */instance/zone) printf 'projects/123/zones/europe-west4-a' ;;\n"
        "  */project/project-id) printf 'proj-x' ;;\n"
        "  *) [[ \"$*\" == *'Authorization: Bearer tok123'* ]] || exit 22 ;;\n"
        "esac\n"
    )
    (bin_dir / "curl").chmod(0o755)
    return bin_dir, calls


@pytest.mark.parametrize("cloud", sorted(END_MACHINE))
def test_end_script_releases_the_vm_with_its_own_token(cloud: str, tmp_path: Path) -> None:
    script = tmp_path / "end-machine"
    script.write_text(END_MACHINE[cloud])
    script.chmod(0o755)
    bin_dir, calls = _fake_curl(tmp_path, '{"access_token": "tok123", "expires_in": "3599"}')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    last = calls.read_text().splitlines()[-1]
    assert "Authorization: Bearer tok123" in last
    if cloud == "azure":
        assert last.startswith("-sf -X POST")
        assert last.endswith("https://management.azure.com/subscriptions/s1/resourceGroups/rg/providers/"
                             "Microsoft.Compute/virtualMachines/vm-0/deallocate?api-version=2024-07-01")
    else:
        assert last.startswith("-sf -X DELETE")
        assert last.endswith("https://compute.googleapis.com/compute/v1/projects/proj-x/zones/europe-west4-a/"
                             "instances/plan-task-0")


@pytest.mark.parametrize("cloud", sorted(END_MACHINE))
def test_end_scripts_are_shellcheck_clean(cloud: str, tmp_path: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed")
    script = tmp_path / "end-machine"
    script.write_text(END_MACHINE[cloud])
    proc = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_plan_md_states_the_ceiling_the_vm_gets(tmp_path: Path) -> None:
    from skyplan import fmt
    from skyplan.pipeline import compile_plan

    repo = Path(__file__).resolve().parent.parent
    result = compile_plan(repo / "examples" / "ml-pipeline.yaml", tmp_path)
    md = (tmp_path / "PLAN.md").read_text()
    assert "## Cloud-side ceiling" in md
    for tp in result.placement.tasks:
        cloud = tp.candidate.offering.cloud
        doc = yaml.safe_load((tmp_path / "cloud-init" / f"{task_slug(tp.task)}.yaml").read_text())
        timer = next(f["content"] for f in doc["write_files"] if f["path"].endswith(f"{CEILING_UNIT}.timer"))
        seconds = int(timer.split("OnBootSec=")[1].split("s\n")[0])
        assert f"| {tp.task} | {cloud} | {fmt.duration(seconds / 3600.0)} |" in md
