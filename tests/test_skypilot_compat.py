"""SkyPilot task-YAML features skyplan reads (issue 12), each proved on a real compile, and the
launch-time ones on a real local apply."""

from __future__ import annotations

import hashlib
import json
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
