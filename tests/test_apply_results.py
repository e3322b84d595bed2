"""End to end on `local` with real Terraform: a rerun is never stale (result identity), --rerun, siblings
of a failed task, and what apply prints about the run directory, reused results and failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from skyplan import apply as apply_mod
from skyplan.errors import ApplyError
from skyplan.runstate import read_events

pytestmark = pytest.mark.slow  # real Terraform, end to end

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart.yaml"


@pytest.fixture(autouse=True)
def local_zone(tmp_path, monkeypatch):
    path = tmp_path / "local.yaml"
    path.write_text(json.dumps({"zones": [{"name": "local-1", "cpus": 2, "memory": 4}]}))
    monkeypatch.setenv("SKYPLAN_LOCAL_CONFIG", str(path))
    monkeypatch.setenv("SKYPLAN_LOCAL_SLOTS_DIR", str(tmp_path / "slots"))


def last_run(out: Path) -> list[dict]:
    evs = list(read_events(out))
    starts = [i for i, e in enumerate(evs) if e["event"] == "run_started"]
    return evs[starts[-1]:]


def started(out: Path) -> set[str]:
    return {e["task"] for e in last_run(out) if e["event"] == "task_started"}


def reused(out: Path) -> set[str]:
    return {e["task"] for e in last_run(out) if e["event"] == "task_reused"}


def report(out: Path) -> str:
    return (out / ".skyplan-storage" / "quickstart" / "report" / "outputs" / "report.txt").read_text()


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}


def test_a_reverted_spec_reruns_what_changed_instead_of_returning_a_stale_result(tmp_path):
    """The issue's reproduction: apply, change LIMIT, restore it, apply; report.txt each time."""
    spec = tmp_path / "quickstart.yaml"
    original = QUICKSTART.read_text()
    spec.write_text(original)
    out = tmp_path / "out"
    all_tasks = {"generate", "sum", "count-primes", "report"}

    assert apply_mod.apply(spec, out_dir=out).ok
    assert "primes among the first 5000 numbers: 669" in report(out)
    assert started(out) == all_tasks and reused(out) == set()

    spec.write_text(original.replace('LIMIT: "5000"', 'LIMIT: "100"'))
    assert apply_mod.apply(spec, out_dir=out).ok
    assert "primes among the first 5000 numbers: 25" in report(out)  # the example's text, LIMIT's count
    assert started(out) == {"count-primes", "report"} and reused(out) == {"generate", "sum"}

    spec.write_text(original)
    outcome = apply_mod.apply(spec, out_dir=out)
    assert outcome.ok
    assert "primes among the first 5000 numbers: 669" in report(out)
    assert started(out) == {"count-primes", "report"} and reused(out) == {"generate", "sum"}

    # Unchanged now: nothing runs, every result is reused and says which result it is.
    again = apply_mod.apply(spec, out_dir=out)
    assert again.ok and "nothing to do" in again.message
    assert started(out) == set() and reused(out) == all_tasks
    status = json.loads((out / ".skyplan-storage" / "quickstart" / "report" / "status.json").read_text())
    ids = {e["task"]: e["result_id"] for e in last_run(out) if e["event"] == "task_reused"}
    assert ids["report"] == status["result_id"] and len(set(ids.values())) == 4
    assert {s.task: s.state for s in apply_mod.status(out)} == dict.fromkeys(all_tasks, "succeeded")


def test_a_result_is_reused_only_while_it_is_in_storage_and_rerun_forces_it(tmp_path):
    out = tmp_path / "out"
    assert apply_mod.apply(QUICKSTART, out_dir=out).ok
    storage = out / ".skyplan-storage" / "quickstart"

    # The identity in storage NOW counts, not what an earlier run recorded: sum's result is gone.
    (storage / "sum" / "status.json").unlink()
    assert apply_mod.apply(QUICKSTART, out_dir=out).ok
    assert started(out) == {"sum", "report"} and reused(out) == {"generate", "count-primes"}

    # A status.json holding another result's id (e.g. written by an older run) is not reused.
    doc = json.loads((storage / "count-primes" / "status.json").read_text())
    (storage / "count-primes" / "status.json").write_text(json.dumps({**doc, "result_id": "0" * 64}))
    assert apply_mod.apply(QUICKSTART, out_dir=out).ok
    assert started(out) == {"count-primes", "report"}

    assert apply_mod.apply(QUICKSTART, out_dir=out, rerun=["sum"]).ok
    assert started(out) == {"sum", "report"} and reused(out) == {"generate", "count-primes"}
    assert apply_mod.apply(QUICKSTART, out_dir=out, rerun=True).ok
    assert started(out) == {"generate", "sum", "count-primes", "report"} and reused(out) == set()
    assert "669" in report(out)


@pytest.mark.parametrize("polled", [False, True], ids=["apply-waits", "polled-like-a-cloud"])
def test_a_sibling_that_succeeded_beside_a_failed_task_is_recorded_and_not_run_again(tmp_path, polled,
                                                                                      monkeypatch):
    # `a-broken` sorts before `b-fine`: the failure is handled first, and must not hide b's success.
    # Polled: the cloud path, where the loop reads status.json from storage (and the result id in it).
    from skyplan.targets.local import LocalTarget

    monkeypatch.setattr(LocalTarget, "apply_waits_for_tasks", not polled)
    spec = tmp_path / "pair.yaml"
    text = """\
name: pair
allowed: {clouds: [local]}
tasks:
  - name: a-broken
    resources: {cpus: 1}
    run: |
      echo "something went wrong: boom"
      exit EXIT
  - name: b-fine
    resources: {cpus: 1}
    run: echo fine > "$SKYPLAN_OUTPUT_DIR/fine.txt"
"""
    spec.write_text(text.replace("EXIT", "3"))
    out = tmp_path / "out"
    with pytest.raises(ApplyError):
        apply_mod.apply(spec, out_dir=out)
    assert started(out) == {"a-broken", "b-fine"}
    assert {s.task: s.state for s in apply_mod.status(out)} == {"a-broken": "failed", "b-fine": "succeeded"}
    assert [e["task"] for e in last_run(out) if e["event"] == "task_succeeded"] == ["b-fine"]

    spec.write_text(text.replace("EXIT", "0"))
    assert apply_mod.apply(spec, out_dir=out).ok
    assert started(out) == {"a-broken"} and reused(out) == {"b-fine"}


def test_cli_says_where_the_run_and_outputs_are_what_was_reused_and_shows_a_failure_once(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "skyplan.cli", "apply", str(QUICKSTART), "-o", str(out)]
    first = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert f"run directory: {out.resolve()}" in first.stdout
    assert f"report        {out.resolve()}/.skyplan-storage/quickstart/report/outputs/" in first.stdout

    again = subprocess.run([*cmd, "--rerun", "sum"], env=cli_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    rid = next(e["result_id"] for e in last_run(out) if e["event"] == "task_reused" and e["task"] == "generate")
    assert f"reused: generate (result {rid[:12]})" in again.stdout
    assert "reused: count-primes" in again.stdout and "reused: sum" not in again.stdout

    bad_task = subprocess.run([*cmd, "--rerun", "nope"], env=cli_env(), capture_output=True, text=True, timeout=60)
    assert bad_task.returncode == 2 and "no task 'nope'" in bad_task.stderr
    no_flag = subprocess.run([*cmd, "sum"], env=cli_env(), capture_output=True, text=True, timeout=60)
    assert no_flag.returncode == 2 and "only taken with --rerun" in no_flag.stderr

    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\nallowed: {clouds: [local]}\ntasks:\n"
                    "  - {name: t, resources: {cpus: 1}, run: 'echo UNIQUE-FAILURE-LINE; exit 3'}\n")
    failed = subprocess.run([sys.executable, "-m", "skyplan.cli", "apply", str(spec), "-o", str(tmp_path / "b")],
                            env=cli_env(), capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1
    # Streamed once as the task ran; not again in the failure line or the final error.
    assert (failed.stdout + failed.stderr).count("UNIQUE-FAILURE-LINE") == 1, failed.stdout + failed.stderr
    assert "its output is above" in failed.stdout and "task.log" in failed.stdout
    assert "error: task 't' failed (exit code 3)" in failed.stderr


def test_destroy_json_prints_one_document(tmp_path):
    out = tmp_path / "out"
    assert apply_mod.apply(QUICKSTART, out_dir=out).ok
    gone = subprocess.run([sys.executable, "-m", "skyplan.cli", "destroy", str(out), "--json"], env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert gone.returncode == 0, gone.stderr
    doc = json.loads(gone.stdout)  # the whole output is one JSON document
    assert doc["destroyed"] == [] and doc["directory"] == str(out)
