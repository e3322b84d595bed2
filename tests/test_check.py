"""`skyplan compile SPEC --check DIR`: exit 0 on a current plan, 1 with the reason on each kind of
change, 2 on bad input; and it never writes to DIR."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILTIN_CATALOG = REPO / "skyplan" / "data" / "catalog"


def skyplan(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "skyplan", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def tree(directory: Path) -> dict[str, tuple[str, int, int]]:
    """Every path under `directory` (files, folders, links) with its content hash, mode and mtime."""
    out = {}
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if path.is_symlink():
            out[rel] = ("link:" + os.readlink(path), 0, 0)
        elif path.is_file():
            st = path.stat()
            out[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mode, st.st_mtime_ns)
        else:
            st = path.stat()
            out[rel] = ("dir", st.st_mode, st.st_mtime_ns)
    return out


@pytest.fixture()
def plan(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A spec (copied, so it can be edited), a catalog directory and a DIR compiled from both."""
    spec = tmp_path / "ml-pipeline.yaml"
    shutil.copy(REPO / "examples" / "ml-pipeline.yaml", spec)
    catalog = tmp_path / "cat"
    shutil.copytree(BUILTIN_CATALOG, catalog)
    out = tmp_path / "plan"
    res = skyplan("compile", str(spec), "-o", str(out), "--catalog", str(catalog))
    assert res.returncode == 0, res.stderr
    return spec, catalog, out


def check(spec: Path, out: Path, *extra: str) -> tuple[int, dict]:
    """Run the check with --json; the tree of DIR must be untouched by it."""
    before = tree(out) if out.exists() else None
    res = skyplan("compile", str(spec), "--check", str(out), "--json", *extra)
    assert (tree(out) if out.exists() else None) == before, "--check modified DIR"
    assert res.returncode in (0, 1), res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["exit_code"] == res.returncode and doc["current"] == (res.returncode == 0)
    return res.returncode, doc


def codes(doc: dict) -> list[str]:
    return [r["code"] for r in doc["reasons"]]


def test_a_fresh_plan_is_current(plan):
    spec, catalog, out = plan
    code, doc = check(spec, out, "--catalog", str(catalog))
    assert code == 0 and doc["reasons"] == [] and doc["files"] == {"differ": [], "missing": [], "extra": []}
    assert doc["compared"] == len((out / "MANIFEST.sha256").read_text().splitlines()) + 1
    # The terminal form, and -o naming DIR with a bare --check.
    res = skyplan("compile", str(spec), "-o", str(out), "--check", "--catalog", str(catalog))
    assert res.returncode == 0 and "current" in res.stdout


def test_run_state_does_not_count(plan):
    spec, catalog, out = plan
    (out / "events.jsonl").write_text('{"event": "x"}\n')
    (out / "aws" / "terraform.tfstate").write_text("{}")
    (out / "aws" / ".terraform").mkdir()
    (out / "README.md").write_text("beside the plan\n")
    assert check(spec, out, "--catalog", str(catalog))[0] == 0


def test_spec_edit(plan):
    spec, catalog, out = plan
    spec.write_text(spec.read_text().replace("hours: 2\n", "hours: 3\n", 1))
    code, doc = check(spec, out, "--catalog", str(catalog))
    assert code == 1 and codes(doc) == ["spec_changed"]
    assert "plan.json" in doc["files"]["differ"] and "PLAN.md" in doc["files"]["differ"]


def test_catalog_change(plan):
    spec, catalog, out = plan
    csv = catalog / "azure.csv"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines + [lines[-1].replace(lines[-1].split(",")[1], "Standard_Extra_v9", 1)]))
    code, doc = check(spec, out, "--catalog", str(catalog))
    assert code == 1 and codes(doc) == ["catalog_changed"]
    # The same DIR against the builtin catalog: also a catalog change (another source and hash).
    code, doc = check(spec, out)
    assert code == 1 and "catalog_changed" in codes(doc)


def test_exclusion_change(plan):
    spec, catalog, out = plan
    zone = next(t["zone"] for t in json.loads((out / "plan.json").read_text())["tasks"] if t["zone"])
    code, doc = check(spec, out, "--catalog", str(catalog), "--exclude-zone", zone)
    assert code == 1 and codes(doc) == ["exclusions_changed"]
    assert doc["reasons"][0]["new"] == [zone] and zone in doc["reasons"][0]["message"]


def test_objective_change(plan):
    spec, catalog, out = plan
    code, doc = check(spec, out, "--catalog", str(catalog), "--objective", "time")
    assert code == 1 and codes(doc) == ["objective_changed"]


def test_hand_edited_generated_file(plan):
    spec, catalog, out = plan
    main_tf = out / "aws" / "main.tf"
    main_tf.write_text(main_tf.read_text().replace("count", "count ", 1))
    code, doc = check(spec, out, "--catalog", str(catalog))
    assert code == 1 and codes(doc) == ["files_edited"]
    assert doc["files"] == {"differ": ["aws/main.tf"], "missing": [], "extra": []}


def test_template_change_simulated_by_a_rendered_file(plan):
    """A template that renders differently shows as its rendered files differing, inputs equal."""
    spec, catalog, out = plan
    for init in (out / "cloud-init").iterdir():
        init.write_bytes(init.read_bytes() + b"# rendered by another template\n")
    code, doc = check(spec, out, "--catalog", str(catalog))
    assert code == 1 and codes(doc) == ["files_edited"]
    assert doc["files"]["differ"] == sorted(f"cloud-init/{p.name}" for p in (out / "cloud-init").iterdir())


def test_deleted_and_extra_generated_files(plan):
    spec, catalog, out = plan
    (out / "cloud-init" / "train.yaml").unlink()
    (out / "azure" / "stray.tf").write_text('resource "terraform_data" "x" {}\n')
    code, doc = check(spec, out, "--catalog", str(catalog))
    assert code == 1
    assert doc["files"] == {"differ": [], "missing": ["cloud-init/train.yaml"], "extra": ["azure/stray.tf"]}
    res = skyplan("compile", str(spec), "--check", str(out), "--catalog", str(catalog))
    assert res.returncode == 1
    assert "stale plan" in res.stdout and "missing: cloud-init/train.yaml" in res.stdout
    assert "extra: azure/stray.tf" in res.stdout


def test_deleted_plan_and_missing_directory(plan, tmp_path):
    spec, catalog, out = plan
    (out / "plan.json").unlink()
    code, doc = check(spec, out, "--catalog", str(catalog))
    assert code == 1 and codes(doc) == ["no_plan"] and "plan.json" in doc["files"]["missing"]
    code, doc = check(spec, tmp_path / "never", "--catalog", str(catalog))
    assert code == 1 and codes(doc) == ["no_plan"] and not (tmp_path / "never").exists()


def test_bad_input_exits_2(plan, tmp_path):
    spec, catalog, out = plan
    res = skyplan("compile", str(tmp_path / "nope.yaml"), "--check", str(out))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res = skyplan("compile", str(spec), "--check", str(out), "-o", str(tmp_path / "other"))
    assert res.returncode == 2 and "two directories" in res.stderr
    res = skyplan("compile", str(spec), "--check", str(out), "--force", "--json")
    assert res.returncode == 2 and json.loads(res.stdout)["exit_code"] == 2
