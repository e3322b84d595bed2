"""The compile pipeline's wiring: recompiling a DIR for failover, apply blockers, source tracking."""

from __future__ import annotations

import json
from pathlib import Path

from skyplan.pipeline import SOURCE_FILE, compile_plan, recompile, spec_origin

REPO = Path(__file__).resolve().parent.parent


def test_recompile_of_a_dir_keeps_unaffected_tasks_in_place(tmp_path):
    out = tmp_path / "plan"
    first = compile_plan(REPO / "examples" / "ml-pipeline.yaml", out)
    before = {t["name"]: t for t in first.plan_doc["tasks"]}
    failed = before["preprocess"]
    # No hint object (a new process, as after `skyplan apply DIR` resumes): rebuilt from plan.json.
    again = recompile(out, exclusions=[failed["zone"]])
    after = {t["name"]: t for t in again.plan_doc["tasks"]}
    assert after["preprocess"]["zone"] != failed["zone"]
    assert again.plan_doc["excluded_zones"] == [failed["zone"]]
    for name in ("train", "evaluate", "publish"):
        keys = ("cloud", "region", "zone", "instance_type", "spot")
        assert [after[name][k] for k in keys] == [before[name][k] for k in keys], name


def test_spec_origin_is_recorded_relative_to_the_dir(tmp_path):
    spec = tmp_path / "project" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text((REPO / "examples" / "quickstart.yaml").read_text())
    out = tmp_path / "plans" / "qs"
    compile_plan(spec, out)
    source = json.loads((out / SOURCE_FILE).read_text())
    assert source == {"spec_dir": "../../project", "spec_name": "spec.yaml"}
    assert spec_origin(out) == spec.resolve()
