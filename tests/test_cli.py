"""The real `skyplan` CLI in a subprocess: exit codes, messages, files written, JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def skyplan(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "skyplan", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_compile_ml_pipeline_writes_the_layout(tmp_path):
    out = tmp_path / "ml"
    res = skyplan("compile", str(EXAMPLES / "ml-pipeline.yaml"), "-o", str(out))
    assert res.returncode == 0, res.stderr
    doc = json.loads((out / "plan.json").read_text())
    assert doc["name"] == "ml-pipeline"
    assert {t["name"] for t in doc["tasks"]} == {"preprocess", "train", "evaluate", "publish"}
    clouds = {t["cloud"] for t in doc["tasks"]}
    for cloud in clouds:
        for f in ("terraform.tf", "providers.tf", "main.tf", "variables.tf", "outputs.tf"):
            assert (out / cloud / f).is_file()
        assert (out / "modules" / f"{cloud}-node").is_dir()
    for task in doc["tasks"]:
        assert (out / "cloud-init" / f"{task['name']}.yaml").read_text().startswith("#cloud-config")
    assert "## Placement" in (out / "PLAN.md").read_text()
    # The terminal shows the same table and the total.
    assert "preprocess" in res.stdout and f"${doc['total_cost']:,.2f}" in res.stdout
    assert doc["total_cost"] <= 800 and doc["makespan_hours"] <= 36


def test_compile_json_is_one_document(tmp_path):
    res = skyplan("compile", str(EXAMPLES / "eu-residency.yaml"), "-o", str(tmp_path / "eu"), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    regions = {t["region"] for t in doc["plan"]["tasks"]}
    assert all(r.startswith(("eu-", "europe-")) for r in regions), regions


def test_bad_spec_exits_2_with_file_line_key(tmp_path):
    spec = _write(tmp_path, "bad.yaml", "name: x\ntasks:\n  - name: a\n    hours: 1\n    rn: echo hi\n")
    res = skyplan("compile", str(spec), "-o", str(tmp_path / "o"))
    assert res.returncode == 2
    assert f"{spec}:5: tasks[a].rn" in res.stderr
    assert "did you mean `run`" in res.stderr
    assert "Traceback" not in res.stderr


def test_cycle_is_named(tmp_path):
    spec = _write(tmp_path, "cycle.yaml",
                  "name: x\ntasks:\n  - name: a\n    depends_on: [b]\n  - name: b\n    depends_on: [a]\n")
    res = skyplan("compile", str(spec))
    assert res.returncode == 2
    assert "a → b → a" in res.stderr


def test_budget_infeasible_exits_3_and_names_budget(tmp_path):
    spec = _write(tmp_path, "budget.yaml",
                  "name: x\nbudget: 5\ntasks:\n  - name: a\n    resources: {accelerators: A100:8}\n    hours: 10\n")
    res = skyplan("compile", str(spec), "-o", str(tmp_path / "o"), "--json")
    assert res.returncode == 3
    doc = json.loads(res.stdout)
    assert "budget $5.00" in doc["error"] and "cheapest plan costs $" in doc["error"]


def test_no_offering_in_region_exits_3_and_says_where(tmp_path):
    spec = _write(tmp_path, "eu.yaml", "name: x\nallowed: {regions: ['eu-*']}\ntasks:\n  - name: a\n"
                  "    resources: {accelerators: A100-80GB:8}\n    hours: 1\n")
    res = skyplan("compile", str(spec), "-o", str(tmp_path / "o"))
    assert res.returncode == 3, res.stdout + res.stderr
    assert "A100-80GB:8" in res.stderr and "eu-*" in res.stderr


def test_exclude_zone_moves_the_task_and_diff_shows_it(tmp_path):
    spec = _write(tmp_path, "one.yaml", "name: one\ntasks:\n  - name: train\n"
                  "    resources: {accelerators: A100:8}\n    hours: 10\n")
    first, second = tmp_path / "first", tmp_path / "second"
    assert skyplan("compile", str(spec), "-o", str(first)).returncode == 0
    zone = json.loads((first / "plan.json").read_text())["tasks"][0]["zone"]
    res = skyplan("compile", str(spec), "-o", str(second), "--exclude-zone", zone)
    assert res.returncode == 0, res.stderr
    moved = json.loads((second / "plan.json").read_text())
    assert moved["tasks"][0]["zone"] != zone and moved["excluded_zones"] == [zone]
    md = skyplan("diff", str(first), str(second))
    assert md.returncode == 0 and "train" in md.stdout and f"Newly excluded: {zone}" in md.stdout
    js = json.loads(skyplan("diff", str(first), str(second), "--format", "json").stdout)
    assert js["changes"][0]["fields"]["zone"]["old"] == zone


def test_catalog_show_filters(tmp_path):
    res = skyplan("catalog", "show", "--accelerator", "H100", "--cloud", "gcp", "--json", "--limit", "0")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["total"] > 0
    assert all(o["accelerator"] == "H100" and o["cloud"] == "gcp" for o in doc["offerings"])
    prices = [o["price"] for o in doc["offerings"] if o["price"] is not None]
    assert prices == sorted(prices)
    bad = skyplan("catalog", "show", "--accelerator", "H10")
    assert bad.returncode == 2 and "H100" in bad.stderr


def test_unknown_command_suggests():
    res = skyplan("compil", "x.yaml")
    assert res.returncode != 0 and "did you mean 'compile'" in res.stderr


@pytest.mark.parametrize("example", ["ml-pipeline.yaml", "eu-residency.yaml", "quickstart.yaml"])
def test_examples_compile(tmp_path, example):
    res = skyplan("compile", str(EXAMPLES / example), "-o", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr


def test_compile_refuses_a_directory_whose_stacks_still_hold_resources(tmp_path):
    out = tmp_path / "plan"
    assert skyplan("compile", str(EXAMPLES / "quickstart.yaml"), "-o", str(out)).returncode == 0
    state = {"version": 4, "resources": [{"mode": "managed", "type": "terraform_data", "name": "node",
                                          "instances": [{"attributes": {"id": "x"}}]}]}
    (out / "local" / "terraform.tfstate").write_text(json.dumps(state))
    res = skyplan("compile", str(EXAMPLES / "quickstart.yaml"), "-o", str(out))
    assert res.returncode == 2
    assert "skyplan destroy" in res.stderr and "1 resource" in res.stderr
    assert (out / "local" / "main.tf").is_file()  # nothing was rewritten


def test_unwritable_output_is_a_clear_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    res = skyplan("compile", str(EXAMPLES / "quickstart.yaml"), "-o", str(tmp_path / "afile" / "sub"))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr


def test_apply_refuses_a_cloud_plan_whose_tasks_could_not_report(tmp_path):
    spec = _write(tmp_path, "aws.yaml", "name: nostore\nallowed: {clouds: [aws]}\ntasks:\n  - name: t\n"
                  "    resources: {cpus: 2+}\n    secrets: [HF_TOKEN]\n    run: echo hi\n")
    out = tmp_path / "plan"
    res = skyplan("compile", str(spec), "-o", str(out))
    assert res.returncode == 0 and "apply will refuse" in res.stderr
    doc = json.loads((out / "plan.json").read_text())
    assert any("no `storage:`" in b for b in doc["apply_blockers"])
    assert any("secrets" in b for b in doc["apply_blockers"])
    res = skyplan("apply", str(out), "--auto-approve")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "cannot be applied" in res.stderr and "no `storage:`" in res.stderr
    assert not (out / "aws" / "terraform.tfstate").exists() and not (out / "aws" / ".terraform").exists()
