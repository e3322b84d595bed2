"""Every shipped example, compiled through the whole pipeline, yields valid, deterministic files:
`terraform fmt` clean, schema-valid against the real provider schemas, cloud-init-valid, and the
same on a second compile."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from schema_check import check_stack
from tools import require_tool, terraform_command

from skyplan.pipeline import compile_plan

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.fixture(scope="module", params=[p.name for p in EXAMPLES])
def compiled(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(Path(request.param).stem)
    result = compile_plan(REPO / "examples" / request.param, out)
    return result, out


def test_stacks_are_fmt_clean(compiled):
    result, out = compiled
    proc = subprocess.run([*terraform_command(), "fmt", "-check", "-recursive", "-diff", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_stacks_are_schema_valid(compiled):
    result, out = compiled
    targets = {tp.candidate.location.cloud for tp in result.placement.tasks}
    for target in targets:
        assert (out / target / "terraform.tf").is_file()
        assert check_stack(out / target) == [], target


def test_cloud_init_files_are_valid(compiled):
    result, out = compiled
    files = sorted((out / "cloud-init").glob("*.yaml")) if (out / "cloud-init").is_dir() else []
    cloud_tasks = [tp for tp in result.placement.tasks if tp.candidate.location.cloud in ("aws", "gcp", "azure")]
    assert len(files) >= len(cloud_tasks)
    if not files:
        return
    require_tool("cloud-init")
    for path in files:
        proc = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{path.name}: {proc.stdout}{proc.stderr}"


def test_second_compile_is_byte_identical(compiled, tmp_path):
    result, out = compiled
    again = tmp_path / "again"
    compile_plan(Path(result.spec.source_file), again)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out)
        if rel.name in ("plan.json", "PLAN.md"):  # carry the solver's wall time
            continue
        if rel.as_posix() == ".skyplan/source.json":  # the spec's path relative to DIR: DIRs differ here
            continue
        assert (again / rel).read_bytes() == path.read_bytes(), rel


def test_plan_respects_the_spec(compiled):
    result, _ = compiled
    spec, placement = result.spec, result.placement
    if spec.budget is not None:
        assert placement.total_cost <= spec.budget + 1e-6
    if spec.deadline_hours is not None:
        assert placement.makespan_hours <= spec.deadline_hours + 1e-6
    allowed = spec.allowed.clouds
    for tp in placement.tasks:
        if allowed:
            assert tp.candidate.location.cloud in allowed

