"""Issue 9 item 3: compile never deletes or overwrites a file skyplan did not write.

Every case runs the real `skyplan compile` (a subprocess, as a user would) or the real pipeline
on real files, and checks the files on disk afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from skyplan import outdir
from skyplan.errors import SkyplanError
from skyplan.outdir import (
    MANIFEST_FILE,
    FilesInTheWay,
    files_in_the_way,
    is_run_state,
    read_manifest,
    write_output,
)

REPO = Path(__file__).resolve().parent.parent
ML = REPO / "examples" / "ml-pipeline.yaml"  # aws + azure stacks, cloud-init, modules


def skyplan(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "skyplan", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    """ml-pipeline compiled once; each test works on a copy."""
    out = tmp_path_factory.mktemp("ml") / "plan"
    res = skyplan("compile", str(ML), "-o", str(out))
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture
def plan(compiled, tmp_path) -> Path:
    out = tmp_path / "plan"
    shutil.copytree(compiled, out)
    return out


def test_manifest_lists_every_generated_file_and_checks_with_sha256sum(plan):
    manifest = read_manifest(plan)
    generated = {rel for rel in tree(plan) if not rel.startswith(".skyplan/") and rel != MANIFEST_FILE}
    assert set(manifest) == generated
    assert {"plan.json", "PLAN.md", "aws/main.tf", "azure/main.tf"} <= generated
    assert any(rel.startswith("cloud-init/") for rel in generated) and any(rel.startswith("modules/") for rel in generated)
    for rel, hashes in manifest.items():
        assert hashes == {hashlib.sha256((plan / rel).read_bytes()).hexdigest()}, rel
    lines = (plan / MANIFEST_FILE).read_text().splitlines()
    assert lines == sorted(lines, key=lambda line: line[66:])
    if shutil.which("sha256sum"):
        check = subprocess.run(["sha256sum", "--strict", "-c", MANIFEST_FILE], cwd=plan, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("folder", ["aws", "azure", "gcp", "modules", "modules/aws-node", "cloud-init"])
def test_a_foreign_file_in_a_generated_folder_is_refused_and_kept(plan, folder):
    # gcp/ is not used by this plan, but compile owns it: a foreign .tf there would join a stack.
    (plan / folder).mkdir(parents=True, exist_ok=True)
    (plan / folder / "notes.txt").write_text("mine\n")
    before = tree(plan)
    res = skyplan("compile", str(ML), "-o", str(plan), "--objective", "time")
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{folder}/notes.txt" in res.stderr and "--force" in res.stderr
    assert "Traceback" not in res.stderr
    assert tree(plan) == before  # nothing written, nothing removed


def test_a_hand_edited_generated_file_is_refused(plan):
    (plan / "PLAN.md").write_text((plan / "PLAN.md").read_text() + "\nReviewed by me.\n")
    with (plan / "aws" / "main.tf").open("a") as f:
        f.write("# my tweak\n")
    before = tree(plan)
    res = skyplan("compile", str(ML), "-o", str(plan), "--json")
    assert res.returncode == 2
    doc = json.loads(res.stdout)
    assert doc["exit_code"] == 2
    assert doc["reasons"] == ["PLAN.md: changed since skyplan wrote it", "aws/main.tf: changed since skyplan wrote it"]
    assert tree(plan) == before


def test_force_replaces_what_was_in_the_way_and_keeps_the_rest(plan):
    (plan / "aws" / "notes.txt").write_text("mine\n")
    (plan / "cloud-init" / "extra.yaml").write_text("#cloud-config\n")
    (plan / "PLAN.md").write_text("my own summary\n")
    (plan / "README.md").write_text("about this plan\n")  # beside the plan: never touched
    res = skyplan("compile", str(ML), "-o", str(plan), "--force")
    assert res.returncode == 0, res.stderr
    assert "--force: replaced or removed aws/notes.txt" in res.stderr
    assert not (plan / "aws" / "notes.txt").exists() and not (plan / "cloud-init" / "extra.yaml").exists()
    assert (plan / "PLAN.md").read_text().startswith("# Plan: ml-pipeline")
    assert (plan / "README.md").read_text() == "about this plan\n"
    # The directory is skyplan's again: a plain recompile goes through.
    assert skyplan("compile", str(ML), "-o", str(plan)).returncode == 0


def test_a_file_beside_the_plan_does_not_block_a_recompile(plan):
    (plan / "README.md").write_text("about this plan\n")
    (plan / ".gitignore").write_text("*.tfstate\n")
    res = skyplan("compile", str(ML), "-o", str(plan), "--objective", "time")
    assert res.returncode == 0, res.stderr
    assert (plan / "README.md").read_text() == "about this plan\n" and (plan / ".gitignore").exists()


def test_first_compile_into_a_foreign_directory_is_refused_and_leaves_nothing(tmp_path):
    target = tmp_path / "project"
    (target / "src").mkdir(parents=True)
    (target / "src" / "main.py").write_text("print('hi')\n")
    (target / "notes.txt").write_text("mine\n")
    before = tree(target)
    res = skyplan("compile", str(ML), "-o", str(target))
    assert res.returncode == 2
    assert "notes.txt" in res.stderr and "src/main.py" in res.stderr and "not a skyplan plan directory" in res.stderr
    assert tree(target) == before and sorted(p.name for p in target.iterdir()) == ["notes.txt", "src"]  # no .skyplan/
    res = skyplan("compile", str(ML), "-o", str(target), "--force")
    assert res.returncode == 0, res.stderr
    # --force compiles into it; files outside skyplan's own folders and paths stay.
    assert (target / "notes.txt").read_text() == "mine\n" and (target / "src" / "main.py").exists()
    assert (target / "plan.json").exists() and (target / MANIFEST_FILE).exists()


def test_an_empty_directory_is_fine(tmp_path):
    (tmp_path / "empty").mkdir()
    assert skyplan("compile", str(ML), "-o", str(tmp_path / "empty")).returncode == 0


def test_stale_generated_files_go_when_a_target_is_no_longer_used(plan):
    assert (plan / "azure" / "main.tf").exists() and (plan / "modules" / "azure-node").is_dir()
    # Terraform state of the old stack (empty: no resources) is run state and stays.
    (plan / "azure" / "terraform.tfstate").write_text('{"version": 4, "resources": []}\n')
    res = skyplan("compile", str(ML), "-o", str(plan), "--exclude-zone", "azure")
    assert res.returncode == 0, res.stderr
    assert "removed" in res.stdout
    assert sorted(p.name for p in (plan / "azure").iterdir()) == ["terraform.tfstate"]
    assert not (plan / "modules" / "azure-node").exists()
    manifest = read_manifest(plan)
    assert not any(rel.startswith(("azure/", "modules/azure-node/")) for rel in manifest)
    assert all((plan / rel).is_file() for rel in manifest)
    doc = json.loads((plan / "plan.json").read_text())
    assert "azure" not in {t["cloud"] for t in doc["tasks"]}
    # Only files the plan still generates are in the manifest, and a task that went away takes its
    # cloud-init with it: every cloud-init file belongs to a task of the new plan.
    inits = {p.stem for p in (plan / "cloud-init").iterdir()}
    assert inits <= {t["name"] for t in doc["tasks"]}


RUN_STATE = {
    "events.jsonl": b'{"event": "run_started"}\n',
    ".skyplan/lock": b"",
    ".skyplan/work/train/node-0/task.log": b"log\n",
    ".skyplan-storage/ml-pipeline/train/status.json": b"{}\n",
    "aws/terraform.tfstate": b'{"version": 4, "resources": []}\n',
    "aws/terraform.tfstate.backup": b"{}\n",
    "aws/.terraform.tfstate.lock.info": b"{}\n",
    "aws/errored.tfstate": b"{}\n",
    "aws/.terraform.lock.hcl": b"# lock\n",
    "aws/.terraform/providers/registry/x": b"bin",
    "aws/skyplan.tfvars.json": b"{}\n",
    "aws/skyplan.tfplan": b"plan",
    "aws/crash.log": b"panic\n",
    "azure/.main.tf.k3j2.tmp": b"half-written\n",
}


def test_run_state_never_blocks_a_recompile_and_is_never_removed(plan):
    for rel, data in RUN_STATE.items():
        (plan / rel).parent.mkdir(parents=True, exist_ok=True)
        (plan / rel).write_bytes(data)
    res = skyplan("compile", str(ML), "-o", str(plan), "--objective", "time")
    assert res.returncode == 0, res.stderr
    for rel, data in RUN_STATE.items():
        assert (plan / rel).read_bytes() == data, rel
    assert not any(is_run_state(rel) for rel in read_manifest(plan))


def test_live_state_is_still_refused(plan):
    (plan / "aws" / "terraform.tfstate").write_text(json.dumps(
        {"version": 4, "resources": [{"type": "aws_instance", "instances": [{"attributes": {}}]}]}))
    res = skyplan("compile", str(ML), "-o", str(plan), "--force")
    assert res.returncode == 2 and "skyplan destroy" in res.stderr


def test_a_compile_killed_half_way_leaves_files_recognisable(plan, monkeypatch):
    """The manifest is written as the union of old and new first: whatever subset of the new files
    a killed compile wrote, the next compile owns them all."""
    from skyplan.pipeline import CompileOptions, compile_plan

    real = outdir._write_file
    calls = {"n": 0}

    def dies_after_some_writes(path, data):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(outdir, "_write_file", dies_after_some_writes)
    with pytest.raises(KeyboardInterrupt):
        compile_plan(ML, plan, CompileOptions(objective=_time()))
    monkeypatch.setattr(outdir, "_write_file", real)
    manifest = read_manifest(plan)
    assert any(len(hashes) == 2 for hashes in manifest.values())  # mid-way: old and new hashes
    # A different compile still owns every file: old ones, new ones, half-replaced folders.
    result = compile_plan(ML, plan)
    assert result.taken_over == ()
    assert all(len(h) == 1 for h in read_manifest(plan).values())


def _time():
    from skyplan.models import Objective

    return Objective.TIME


def test_malformed_manifest_is_an_error_naming_the_line(plan):
    (plan / MANIFEST_FILE).write_text((plan / MANIFEST_FILE).read_text() + "garbage\n")
    with pytest.raises(SkyplanError, match=rf"{MANIFEST_FILE}:\d+: not a '<sha256>  <path>' line"):
        read_manifest(plan)
    res = skyplan("compile", str(ML), "-o", str(plan))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert skyplan("compile", str(ML), "-o", str(plan), "--force").returncode == 0


def test_write_output_without_check_keeps_foreign_files(tmp_path):
    """The apply loop's failover recompile (under its lock) writes around foreign files."""
    write_output({"aws/main.tf": b"a\n", "aws/old.tf": b"old\n", "plan.json": b"{}\n"}, tmp_path)
    (tmp_path / "aws" / "notes.txt").write_text("mine\n")
    with pytest.raises(FilesInTheWay):
        write_output({"aws/main.tf": b"b\n", "plan.json": b"{}\n"}, tmp_path)
    written = write_output({"aws/main.tf": b"b\n", "plan.json": b"{}\n"}, tmp_path, check=False)
    assert written.removed == ("aws/old.tf",) and written.taken_over == ()
    assert (tmp_path / "aws" / "notes.txt").read_text() == "mine\n"
    assert (tmp_path / "aws" / "main.tf").read_bytes() == b"b\n"
    assert files_in_the_way({"aws/main.tf": b"b\n"}, tmp_path, read_manifest(tmp_path)) == [
        ("aws/notes.txt", "not written by skyplan")]


def test_a_symlink_in_a_generated_folder_is_in_the_way_and_never_written_through(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    out = tmp_path / "out"
    write_output({"aws/main.tf": b"a\n"}, out)
    (out / "aws" / "link.tf").symlink_to(outside)
    os.unlink(out / "aws" / "main.tf")
    (out / "aws" / "main.tf").symlink_to(outside)
    with pytest.raises(FilesInTheWay) as refused:
        write_output({"aws/main.tf": b"b\n"}, out)
    assert refused.value.paths == ("aws/link.tf", "aws/main.tf")
    write_output({"aws/main.tf": b"b\n"}, out, force=True)
    assert outside.read_text() == "precious\n"
    assert not (out / "aws" / "main.tf").is_symlink() and (out / "aws" / "main.tf").read_bytes() == b"b\n"
    assert not (out / "aws" / "link.tf").exists()


@pytest.mark.slow
def test_what_a_real_apply_leaves_never_blocks_a_recompile_and_apply_takes_force(tmp_path, monkeypatch):
    """Run the quickstart with real Terraform, then recompile a changed spec into the same DIR:
    everything apply and Terraform wrote there is run state. A foreign file in the stack then stops
    `apply SPEC` before anything runs, unless --force."""
    monkeypatch.setenv("SKYPLAN_LOCAL_CONFIG", str(tmp_path / "local.yaml"))
    monkeypatch.setenv("SKYPLAN_LOCAL_SLOTS_DIR", str(tmp_path / "slots"))
    (tmp_path / "local.yaml").write_text(json.dumps({"zones": [{"name": "local-1", "cpus": 2, "memory": 4}]}))
    spec = tmp_path / "quickstart.yaml"
    original = (REPO / "examples" / "quickstart.yaml").read_text()
    spec.write_text(original)
    out = tmp_path / "plan"
    res = skyplan("apply", str(spec), "-o", str(out), "--auto-approve")
    assert res.returncode == 0, res.stdout + res.stderr
    run_state = {rel: data for rel, data in tree(out).items() if rel not in read_manifest(out) and rel != MANIFEST_FILE}
    assert "events.jsonl" in run_state and "local/terraform.tfstate" in run_state
    assert all(is_run_state(rel) for rel in run_state), [rel for rel in run_state if not is_run_state(rel)]

    spec.write_text(original.replace('LIMIT: "5000"', 'LIMIT: "100"'))
    res = skyplan("compile", str(spec), "-o", str(out))
    assert res.returncode == 0, res.stderr
    for rel, data in run_state.items():
        if not rel.startswith(".skyplan/"):  # compile rewrites its own spec copy there
            assert (out / rel).read_bytes() == data, rel

    spec.write_text(original.replace('LIMIT: "5000"', 'LIMIT: "200"'))
    (out / "local" / "notes.txt").write_text("mine\n")
    events_before = (out / "events.jsonl").read_bytes()
    res = skyplan("apply", str(spec), "-o", str(out), "--auto-approve")
    assert res.returncode == 2 and "local/notes.txt" in res.stderr, res.stdout + res.stderr
    assert (out / "events.jsonl").read_bytes() == events_before  # refused before anything ran
    res = skyplan("apply", str(spec), "-o", str(out), "--auto-approve", "--force")
    assert res.returncode == 0, res.stdout + res.stderr
    assert not (out / "local" / "notes.txt").exists()
    assert 'LIMIT: "200"' in (out / ".skyplan" / "spec.yaml").read_text()
