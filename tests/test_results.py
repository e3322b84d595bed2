"""Result identity (skyplan/results.py): what changes a task's result id, and which results are reused."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from skyplan import results
from skyplan.models import Task
from skyplan.spec import load_spec

SPEC = """\
name: ids
allowed: {clouds: [local]}
tasks:
  - name: prep
    resources: {cpus: 1}
    workdir: ./src
    run: ./go.sh
  - name: train
    depends_on: [prep]
    resources: {cpus: 2}
    envs: {LIMIT: "5000"}
    secrets: [TOKEN]
    file_mounts:
      /data/conf.txt: ./conf.txt
      /data/remote: s3://bucket/prefix/
    run: echo "$LIMIT"
  - name: report
    depends_on: [train]
    run: cat "$SKYPLAN_INPUT_DIR/train/out"
"""

PLAN = {
    "prep": {"cloud": "local", "region": "local", "zone": "local-1", "instance_type": "local-1cpu",
             "accelerator": None, "accelerator_count": 0, "spot": False, "num_nodes": 1},
    "train": {"cloud": "local", "region": "local", "zone": "local-1", "instance_type": "local-2cpu",
              "accelerator": None, "accelerator_count": 0, "spot": False, "num_nodes": 1},
    "report": {"cloud": "local", "region": "local", "zone": "local-1", "instance_type": "local-1cpu",
               "accelerator": None, "accelerator_count": 0, "spot": False, "num_nodes": 1},
}
DEPS = {"prep": [], "train": ["prep"], "report": ["train"]}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "go.sh").write_text("#!/bin/sh\necho go\n")
    os.chmod(tmp_path / "src" / "go.sh", 0o755)
    (tmp_path / "conf.txt").write_text("alpha = 1\n")
    (tmp_path / "spec.yaml").write_text(SPEC)
    return tmp_path


def ids_of(project: Path, text: str = SPEC, plan: dict | None = None) -> dict[str, str | None]:
    spec = load_spec(project / "spec.yaml", text=text)
    plan = plan or PLAN
    defs = {t.name: results.task_definition(t, plan[t.name], project) for t in spec.tasks}
    return results.result_ids(defs, DEPS)


def test_ids_are_stable_and_distinct(project):
    first, second = ids_of(project), ids_of(project)
    assert first == second
    assert len(set(first.values())) == 3
    assert all(isinstance(v, str) and len(v) == 64 for v in first.values())


def test_an_env_change_reruns_the_task_and_its_downstream_only(project):
    before = ids_of(project)
    after = ids_of(project, SPEC.replace('LIMIT: "5000"', 'LIMIT: "100"'))
    assert after["prep"] == before["prep"]
    assert after["train"] != before["train"] and after["report"] != before["report"]
    # Reverting gives the original identities back (what makes a stale result detectable).
    assert ids_of(project) == before


@pytest.mark.parametrize("change", [
    lambda p: (p / "src" / "go.sh").write_text("#!/bin/sh\necho changed\n"),
    lambda p: (p / "src" / "new.txt").write_text("x"),
    lambda p: os.chmod(p / "src" / "go.sh", 0o644),
])
def test_workdir_content_is_part_of_the_identity(project, change):
    before = ids_of(project)
    change(project)
    after = ids_of(project)
    assert after["prep"] != before["prep"]
    assert after["train"] != before["train"] and after["report"] != before["report"]


def test_file_mount_content_is_part_of_the_identity(project):
    before = ids_of(project)
    (project / "conf.txt").write_text("alpha = 2\n")
    after = ids_of(project)
    assert after["prep"] == before["prep"] and after["train"] != before["train"]


def test_a_zone_or_region_failover_keeps_the_identity_but_another_instance_type_does_not(project):
    before = ids_of(project)
    moved = {**PLAN, "train": {**PLAN["train"], "zone": "local-2", "region": "elsewhere"}}
    assert ids_of(project, plan=moved) == before
    bigger = {**PLAN, "train": {**PLAN["train"], "instance_type": "local-4cpu"}}
    assert ids_of(project, plan=bigger)["train"] != before["train"]
    spot = {**PLAN, "train": {**PLAN["train"], "spot": True}}
    assert ids_of(project, plan=spot)["train"] != before["train"]


def test_secret_values_never_reach_the_identity(project, monkeypatch):
    spec = load_spec(project / "spec.yaml", text=SPEC)
    train = spec.task("train")
    monkeypatch.setenv("TOKEN", "hunter2-very-secret")
    doc = results.task_definition(train, PLAN["train"], project)
    assert doc["secrets"] == ["TOKEN"]
    assert "hunter2" not in json.dumps(doc)
    monkeypatch.setenv("TOKEN", "another-value")
    assert results.task_definition(train, PLAN["train"], project) == doc
    # A secret added by name does change it.
    more = dataclasses.replace(train, secrets=("OTHER", "TOKEN"))
    assert results.task_definition(more, PLAN["train"], project) != doc


def test_bucket_sources_count_by_uri(project):
    before = ids_of(project)
    after = ids_of(project, SPEC.replace("s3://bucket/prefix/", "s3://bucket/other/"))
    assert after["train"] != before["train"]


def test_a_task_without_a_definition_and_its_downstream_have_no_id():
    task_defs = {"a": {"run": "x"}, "b": None, "c": {"run": "y"}}
    ids = results.result_ids(task_defs, {"a": [], "b": ["a"], "c": ["b"]})
    assert ids["a"] is not None and ids["b"] is None and ids["c"] is None


def test_a_cycle_is_an_error_not_a_recursion():
    from skyplan.errors import SkyplanError

    with pytest.raises(SkyplanError, match="cycle"):
        results.result_ids({"a": {}, "b": {}}, {"a": ["b"], "b": ["a"]})


def test_reuse_needs_a_matching_stored_id_and_reused_upstreams():
    expected = {"a": "1" * 64, "b": "2" * 64, "c": "3" * 64, "d": "4" * 64}
    deps = {"a": [], "b": ["a"], "c": ["b"], "d": ["a"]}
    assert results.reusable(expected, dict(expected), deps) == {"a", "b", "c", "d"}
    # b's stored result is another one's (a stale result): b and c run, a and d are reused.
    stale = {**expected, "b": "9" * 64}
    assert results.reusable(expected, stale, deps) == {"a", "d"}
    # c's upstream runs again even though its own stored id matches: c runs too.
    missing = {**expected, "b": None}
    assert results.reusable(expected, missing, deps) == {"a", "d"}
    # --rerun b: b and its downstream run; --rerun of everything: nothing reused.
    assert results.reusable(expected, dict(expected), deps, rerun=["b"]) == {"a", "d"}
    assert results.reusable(expected, dict(expected), deps, rerun=list(expected)) == set()
    # No expected id: never reused.
    assert results.reusable({**expected, "a": None}, dict(expected), deps) == set()


def test_stored_id_only_counts_for_a_success_with_a_well_formed_id():
    rid = "a" * 64
    assert results.stored_id({"exit_code": 0, "result_id": rid}) == rid
    assert results.stored_id({"exit_code": 3, "result_id": rid}) is None
    assert results.stored_id({"exit_code": 0, "result_id": None}) is None
    assert results.stored_id({"exit_code": 0, "result_id": "../../etc"}) is None
    assert results.stored_id({"exit_code": 0}) is None
    assert results.stored_id(None) is None


def test_result_id_file_is_written_atomically_and_removed_for_none(tmp_path):
    storage = f"file://{tmp_path}/storage"
    rid = "b" * 64
    results.write_result_id(storage, "train", rid)
    path = tmp_path / "storage" / "train" / results.RESULT_ID_FILE
    assert path.read_text() == rid + "\n"
    assert [p.name for p in path.parent.iterdir()] == [results.RESULT_ID_FILE]  # no temp file left
    results.write_result_id(storage, "train", None)
    assert not path.exists()


def test_the_executor_records_the_result_id_it_was_given(tmp_path):
    """The real executor script copies `<storage>/<task>/result-id` into status.json."""
    import subprocess

    from skyplan.executor import executor_script

    task = Task(name="t", options=load_spec(Path("x.yaml"), text=SPEC).task("report").options, run="echo hi")
    script = tmp_path / "executor.sh"
    script.write_text(executor_script(task, plan_name="p", upstream=[]))
    storage = tmp_path / "storage"
    rid = "c" * 64
    env = {**os.environ, "SKYPLAN_STORAGE": f"file://{storage}", "SKYPLAN_WORK_DIR": str(tmp_path / "work")}
    results.write_result_id(f"file://{storage}", "t", rid)
    subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True, timeout=60)
    status = json.loads((storage / "t" / "status.json").read_text())
    assert status["exit_code"] == 0 and status["result_id"] == rid
    # Without a result-id file (or with garbage in it) the status carries none: never reused.
    (storage / "t" / results.RESULT_ID_FILE).write_text("not-hex\n")
    subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True, timeout=60)
    assert json.loads((storage / "t" / "status.json").read_text())["result_id"] is None


def test_a_status_of_another_result_is_told_apart_from_this_starts():
    rid = "d" * 64
    assert results.is_other_result({"exit_code": 0, "result_id": "e" * 64}, rid)
    assert not results.is_other_result({"exit_code": 0, "result_id": rid}, rid)
    # No id recorded (the executor could not read one): it may be this start's, so it counts.
    assert not results.is_other_result({"exit_code": 0, "result_id": None}, rid)
    assert not results.is_other_result({"exit_code": 1}, rid)


def test_result_id_reaches_s3_storage_where_the_executor_reads_it(monkeypatch):
    """Cloud tasks read their id from the run's bucket (moto stands in for S3)."""
    moto = pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    from skyplan.runstate import read_text

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto.mock_aws():
        boto3.client("s3").create_bucket(Bucket="runs")
        rid = "f" * 64
        results.write_result_id("s3://runs/plan", "train", rid)
        assert read_text("s3://runs/plan/train/result-id") == rid + "\n"
        results.write_result_id("s3://runs/plan", "train", None)
        assert read_text("s3://runs/plan/train/result-id") is None
