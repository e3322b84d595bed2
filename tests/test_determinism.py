"""Issue 9 item 6: committed files are byte-identical on recompile.

Two separate processes compile the same inputs with different hash seeds, time zones and
working directories; every file under DIR (plan.json, PLAN.md, MANIFEST.sha256, the stacks,
cloud-init, modules and `.skyplan/`) must be byte for byte the same. Wall-clock figures go to the
terminal and `--json` output only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def compile_in(cwd: Path, spec: Path, *extra: str, seed: str, tz: str) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONHASHSEED=seed, TZ=tz)
    res = subprocess.run([sys.executable, "-m", "skyplan", "compile", str(spec), "-o", "plan", "--json", *extra],
                         cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    return res


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_example_is_listed():
    assert {p.name for p in EXAMPLES} >= {"quickstart.yaml", "ml-pipeline.yaml"}


@pytest.mark.parametrize("extra", [(), ("--pareto", "--explain")], ids=["plain", "pareto-explain"])
@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_two_processes_write_identical_files(tmp_path, spec, extra):
    a, b = tmp_path / "a", tmp_path / "b"  # same depth: `.skyplan/source.json` holds a relative path
    out_a = compile_in(a, spec, *extra, seed="1", tz="UTC")
    out_b = compile_in(b, spec, *extra, seed="4242", tz="Pacific/Chatham")
    files_a, files_b = files(a / "plan"), files(b / "plan")
    assert sorted(files_a) == sorted(files_b)
    assert {"plan.json", "PLAN.md", "MANIFEST.sha256", ".skyplan/spec.yaml"} <= set(files_a)
    differ = [rel for rel in files_a if files_a[rel] != files_b[rel]]
    assert differ == []
    # The solver's wall time is reported, but only outside DIR.
    for res in (out_a, out_b):
        doc = json.loads(res.stdout)
        assert doc["timings_s"]["solver"] >= 0
        assert set(doc["plan"]["solver"]) >= {"status", "objective", "gap"}
    plan = json.loads(files_a["plan.json"])
    assert "wall_s" not in plan["solver"] and plan["solver"]["status"] in ("OPTIMAL", "FEASIBLE")
    assert b"wall" not in files_a["plan.json"]
    md = files_a["PLAN.md"].decode()
    assert " s," not in md and " s\n" not in md  # no seconds figure in the summary


def test_recompiling_an_unchanged_plan_touches_nothing(tmp_path):
    spec = REPO / "examples" / "ml-pipeline.yaml"
    compile_in(tmp_path, spec, seed="1", tz="UTC")
    out = tmp_path / "plan"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file() and p.name != "lock"}
    compile_in(tmp_path, spec, seed="2", tz="Asia/Kolkata")
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file() and p.name != "lock"}
    assert after == before


def test_a_catalog_directory_is_recorded_relative_to_the_plan(tmp_path):
    """`--catalog DIR` in two checkouts at different absolute paths: the same plan files."""
    builtin = REPO / "skyplan" / "data" / "catalog"
    spec = REPO / "examples" / "eu-residency.yaml"
    outs = []
    for name, seed in (("first", "3"), ("second-checkout", "5")):
        root = tmp_path / name
        shutil.copytree(builtin, root / "cat")
        compile_in(root, spec, "--catalog", str(root / "cat"), seed=seed, tz="UTC")
        outs.append(files(root / "plan"))
    assert outs[0] == outs[1]
    plan = json.loads(outs[0]["plan.json"])
    assert plan["catalog"]["source"] == "../cat"
