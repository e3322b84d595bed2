"""Tests for the executor script and its cloud-init wrapper: lint, schema, and real local runs."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from tools import require_tool

from skyplan.errors import RenderError
from skyplan.executor import (
    EXECUTOR_PATH,
    USER_DATA_LIMITS,
    check_user_data,
    cloud_init,
    executor_script,
    task_slug,
)
from skyplan.models import ResourceOption, Task

NASTY = "echo \"it's ${HOME} %{x} $(id -u)\" `true` \\\\ \ncat <<'EOF'\n$$ EOF\nEOF\n"


def make_task(name: str = "train", **kw) -> Task:
    return Task(name=name, options=(ResourceOption(),), **kw)


def write_script(tmp_path: Path, task: Task, upstream=(), plan: str = "demo") -> Path:
    path = tmp_path / f"{task_slug(task.name)}.sh"
    path.write_text(executor_script(task, plan_name=plan, upstream=list(upstream)))
    return path


def run_executor(script: Path, storage: Path, work: Path, extra_env=None, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKYPLAN_", "SKYPILOT_"))}
    env.update(SKYPLAN_STORAGE=f"file://{storage}", SKYPLAN_WORK_DIR=str(work), SKYPLAN_SHUTDOWN="0")
    env.update(extra_env or {})
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=timeout)


def publish(storage: Path, slug: str, files: dict[str, str], exit_code: int = 0) -> None:
    """Pretend an upstream task ran: its outputs and status.json in storage."""
    out = storage / slug / "outputs"
    out.mkdir(parents=True)
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    (storage / slug / "status.json").write_text(json.dumps({"task": slug, "exit_code": exit_code}))


def status(storage: Path, task: str) -> dict:
    return json.loads((storage / task_slug(task) / "status.json").read_text())


def decoded_executor(user_data: str) -> str:
    doc = yaml.safe_load(user_data)
    (entry,) = [f for f in doc["write_files"] if f["path"] == EXECUTOR_PATH]
    assert entry["encoding"] == "gz+b64"
    return gzip.decompress(base64.b64decode(entry["content"])).decode("utf-8")


SAMPLE_TASKS = [
    make_task("minimal"),
    make_task(
        "full",
        setup="pip install -r requirements.txt",
        run="python train.py --epochs $EPOCHS",
        envs=(("EPOCHS", "10"), ("MSG", 'it\'s "quoted"\n${x}')),
        secrets=("HF_TOKEN",),
        num_nodes=2,
    ),
    make_task('Nasty Name\'s "task"\n$(rm -rf /)', setup=NASTY, run=NASTY, envs=(("V", NASTY),)),
    make_task("setup-only", setup="true"),
]


# --- lint and schema -------------------------------------------------------------------------


@pytest.mark.parametrize("task", SAMPLE_TASKS, ids=lambda t: task_slug(t.name))
def test_shellcheck_passes(tmp_path, task):
    require_tool("shellcheck")
    script = write_script(tmp_path, task, upstream=["prep", "Fetch Data"])
    result = subprocess.run(["shellcheck", "--shell=bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def _schema_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True
    )


@pytest.mark.parametrize("storage", [None, "gs://bucket/runs/demo"])
@pytest.mark.parametrize("task", SAMPLE_TASKS[:3], ids=lambda t: task_slug(t.name))
def test_cloud_init_schema_valid(tmp_path, task, storage):
    require_tool("cloud-init")
    script = executor_script(task, plan_name="demo", upstream=["prep"])
    path = tmp_path / "user-data.yaml"
    path.write_text(cloud_init(script, task_name=task.name, plan_name="demo", storage=storage, node_rank=1))
    result = _schema_check(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cloud_init_schema_check_rejects_invalid(tmp_path):
    """Negative control: the schema check used above does reject a broken document."""
    require_tool("cloud-init")
    path = tmp_path / "bad.yaml"
    path.write_text("#cloud-config\nwrite_files:\n- path: /x\n  encoding: rot13\n  content: x\n")
    assert _schema_check(path).returncode != 0


def test_cloud_init_decodes_to_exact_script_and_runs_it():
    task = SAMPLE_TASKS[2]
    script = executor_script(task, plan_name="demo", upstream=[])
    text = cloud_init(script, task_name=task.name, plan_name="demo", storage="s3://b/p", node_rank=0)
    assert text.startswith("#cloud-config\n")
    assert text.isascii()  # user text only inside base64: HCL and NFC normalisation cannot touch it
    doc = yaml.safe_load(text)
    assert decoded_executor(text) == script
    files = {f["path"]: f for f in doc["write_files"]}
    assert files[EXECUTOR_PATH]["permissions"] == "0755"
    assert files["/etc/skyplan/storage"]["content"] == "s3://b/p"
    assert files["/etc/skyplan/node-rank"]["content"] == "0\n"
    install, run = doc["runcmd"]
    assert run == ["env", "SKYPLAN_SHUTDOWN=1", EXECUTOR_PATH]
    assert install[:2] == ["sh", "-c"] and "command -v rclone" in install[2] and "install -y" in install[2]
    assert doc["power_state"]["mode"] == "poweroff"


def test_rendering_is_deterministic():
    task = SAMPLE_TASKS[1]
    a = executor_script(task, plan_name="demo", upstream=["b", "a"])
    b = executor_script(task, plan_name="demo", upstream=["a", "b"])
    assert a == b
    assert cloud_init(a, task_name="full", plan_name="demo") == cloud_init(
        b, task_name="full", plan_name="demo"
    )


@pytest.mark.parametrize(
    "storage", ["https://acct.blob.core.windows.net/c/p?sv=2024&sig=abc", "s3://key:secret@bucket/p"]
)
def test_cloud_init_refuses_credentials_in_storage(storage):
    with pytest.raises(RenderError, match="credentials"):
        cloud_init("#!/bin/bash\n", task_name="t", plan_name="p", storage=storage)


# --- render-time validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"envs": (("BAD-NAME", "x"),)}, "not a valid environment variable name"),
        ({"envs": (("SKYPLAN_OUTPUT_DIR", "x"),)}, "reserved"),
        ({"envs": (("SKYPILOT_NODE_RANK", "3"),)}, "reserved"),
        ({"secrets": ("1TOKEN",)}, "not a valid environment variable name"),
        ({"envs": (("TOKEN", "x"),), "secrets": ("TOKEN",)}, "both an env and a secret"),
        ({"run": "echo a\x00b"}, "NUL"),
        ({"envs": (("V", "\ud800"),)}, "not valid Unicode"),
    ],
)
def test_render_refuses_what_bash_cannot_hold(kw, match):
    with pytest.raises(RenderError, match=match):
        executor_script(make_task("t", **kw), plan_name="p", upstream=[])


# --- size limits -----------------------------------------------------------------------------


def test_user_data_limits_are_documented_values():
    assert USER_DATA_LIMITS == {"aws": 16384, "azure": 65535, "gcp": 262144}


def test_size_check_raises_on_aws_but_not_gcp():
    # Random-looking text does not compress, so the user data grows with the script.
    big = base64.b64encode(os.urandom(30_000)).decode()
    task = make_task("huge", run=f"echo {big}")
    text = cloud_init(executor_script(task, plan_name="p", upstream=[]), task_name="huge", plan_name="p")
    size = len(text.encode())
    assert USER_DATA_LIMITS["aws"] < size < USER_DATA_LIMITS["gcp"]
    with pytest.raises(RenderError) as err:
        check_user_data("aws", text, task_name="huge")
    msg = str(err.value)
    for part in ("'huge'", "aws", f"{size:,}", "16,384", "workdir"):
        assert part in msg
    check_user_data("gcp", text, task_name="huge")
    check_user_data("local", text, task_name="huge")  # no limit for local/ssh


@pytest.mark.parametrize("num_nodes, share", [(1, 3 / 5), (2, 3 / 4)])
def test_typical_task_fits_aws_with_room(num_nodes, share):
    import dataclasses

    task = dataclasses.replace(SAMPLE_TASKS[1], num_nodes=num_nodes)
    text = cloud_init(
        executor_script(task, plan_name="demo", upstream=["prep"]),
        task_name="full",
        plan_name="demo",
        storage="s3://bucket/skyplan/demo",
    )
    check_user_data("aws", text, task_name="full")
    # rclone's remotes and checks cost ~1 KB, the multi-node rendezvous and peer watch ~1.5 KB; a
    # typical task still leaves user text 40% of the limit (25% for a multi-node one).
    assert len(text) < USER_DATA_LIMITS["aws"] * share


# --- real local runs -------------------------------------------------------------------------


def test_run_sees_upstream_inputs_and_publishes_outputs(tmp_path):
    storage, work = tmp_path / "storage", tmp_path / "work"
    publish(storage, "prep", {"data.txt": "rows\n", "sub/more.txt": "x"})
    task = make_task(
        "train",
        run='cat "$SKYPLAN_INPUT_DIR/prep/data.txt" > "$SKYPLAN_OUTPUT_DIR/model.txt"\n'
        'cp "$SKYPLAN_INPUT_DIR/prep/sub/more.txt" "$SKYPLAN_OUTPUT_DIR/"\n'
        'echo "rank=$SKYPLAN_NODE_RANK/$SKYPILOT_NUM_NODES epochs=$EPOCHS"\n',
        envs=(("EPOCHS", "3"),),
    )
    result = run_executor(write_script(tmp_path, task, upstream=["prep"]), storage, work)
    assert result.returncode == 0, result.stderr
    assert (storage / "train" / "outputs" / "model.txt").read_text() == "rows\n"
    assert (storage / "train" / "outputs" / "more.txt").read_text() == "x"
    st = status(storage, "train")
    assert st["task"] == "train" and st["exit_code"] == 0 and st["stage"] == "run"
    assert st["started"] <= st["finished"] and st["host"]
    assert "rank=0/1 epochs=3" in (work / "task.log").read_text()
    assert "rank=0/1 epochs=3" in result.stdout + result.stderr  # the console sees it too
    assert "rank=0/1 epochs=3" in (storage / "train" / "log-tail.txt").read_text()


def test_failing_run_gives_its_exit_code(tmp_path):
    storage, work = tmp_path / "storage", tmp_path / "work"
    task = make_task("boom", run="echo partial > $SKYPLAN_OUTPUT_DIR/p\nexit 7\n")
    result = run_executor(write_script(tmp_path, task), storage, work)
    assert result.returncode == 7
    assert status(storage, "boom")["exit_code"] == 7
    assert status(storage, "boom")["stage"] == "run"
    # outputs of a failed run are still published, for debugging
    assert (storage / "boom" / "outputs" / "p").exists()


def test_failing_setup_skips_run(tmp_path):
    storage, work = tmp_path / "storage", tmp_path / "work"
    marker = tmp_path / "ran"
    task = make_task("s", setup="false\n", run=f"touch {marker}")
    result = run_executor(write_script(tmp_path, task), storage, work)
    assert result.returncode == 1
    assert status(storage, "s")["stage"] == "setup"
    assert not marker.exists()


def test_setup_runs_before_run_in_work_dir(tmp_path):
    storage, work = tmp_path / "storage", tmp_path / "work"
    task = make_task(
        "order",
        setup="pwd > setup_pwd\necho one > order",
        run="echo two >> order\ncp order $SKYPLAN_OUTPUT_DIR/",
    )
    assert run_executor(write_script(tmp_path, task), storage, work).returncode == 0
    assert (storage / "order" / "outputs" / "order").read_text() == "one\ntwo\n"
    assert (work / "setup_pwd").read_text().strip() == str(work)


def test_missing_secret_fails_clearly_and_values_never_written(tmp_path):
    storage, work = tmp_path / "storage", tmp_path / "work"
    task = make_task("sec", run='test -n "$API_KEY" && test -n "$HF_TOKEN"', secrets=("API_KEY", "HF_TOKEN"))
    script = write_script(tmp_path, task)
    result = run_executor(script, storage, work, {"API_KEY": "x"})
    assert result.returncode == 78
    assert status(storage, "sec")["stage"] == "config"
    assert "HF_TOKEN" in (work / "task.log").read_text() and "API_KEY" not in (work / "task.log").read_text()

    secret = "s3cr3t-value-1234"
    result = run_executor(script, storage, tmp_path / "work2", {"API_KEY": secret, "HF_TOKEN": secret})
    assert result.returncode == 0
    for root in (storage, tmp_path / "work2"):
        for f in root.rglob("*"):
            if f.is_file():
                assert secret not in f.read_text(errors="replace"), f
    assert secret not in script.read_text() and secret not in result.stdout + result.stderr


def test_failed_or_missing_upstream_stops_before_setup(tmp_path):
    storage, work = tmp_path / "storage", tmp_path / "work"
    marker = tmp_path / "ran"
    publish(storage, "prep", {"a": "1"}, exit_code=3)
    task = make_task("down", setup=f"touch {marker}", run="true")
    result = run_executor(write_script(tmp_path, task, upstream=["prep"]), storage, work)
    assert result.returncode == 66 and status(storage, "down")["stage"] == "inputs"
    result = run_executor(write_script(tmp_path, task, upstream=["never-ran"]), storage, tmp_path / "w2")
    assert result.returncode == 66
    assert not marker.exists()


def test_outputs_replace_those_of_an_earlier_attempt(tmp_path):
    storage = tmp_path / "storage"
    (storage / "t" / "outputs").mkdir(parents=True)
    (storage / "t" / "outputs" / "stale.txt").write_text("old")
    task = make_task("t", run="echo new > $SKYPLAN_OUTPUT_DIR/fresh.txt")
    assert run_executor(write_script(tmp_path, task), storage, tmp_path / "work").returncode == 0
    assert sorted(p.name for p in (storage / "t" / "outputs").iterdir()) == ["fresh.txt"]


@pytest.mark.parametrize(
    ("storage_uri", "needle"),
    [("", "no staging area"), ("file:///x?sig=abc", "credentials"), ("ftp://host/x", "unsupported")],
)
def test_bad_storage_is_a_config_error(tmp_path, storage_uri, needle):
    script = write_script(tmp_path, make_task("t", run="true"))
    result = run_executor(script, tmp_path, tmp_path / "work", {"SKYPLAN_STORAGE": storage_uri})
    assert result.returncode == 78
    assert needle in result.stderr
    assert "sig=abc" not in result.stderr  # the credential-looking URI is not echoed back
    assert '"stage": "config"' in (tmp_path / "work" / "status.json").read_text()


def start_node(script: Path, storage: Path, work: Path, rank: int, extra_env=None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKYPLAN_", "SKYPILOT_"))}
    env.update(SKYPLAN_STORAGE=f"file://{storage}", SKYPLAN_WORK_DIR=str(work), SKYPLAN_SHUTDOWN="0",
               SKYPLAN_NODE_RANK=str(rank), SKYPLAN_NODE_IP="127.0.0.1", **(extra_env or {}))
    return subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_other_nodes_report_beside_node_zero_and_do_not_publish(tmp_path):
    storage = tmp_path / "storage"
    task = make_task("mn", run="echo $SKYPLAN_NODE_RANK > $SKYPLAN_OUTPUT_DIR/rank", num_nodes=2)
    script = write_script(tmp_path, task)
    nodes = [start_node(script, storage, tmp_path / f"w{r}", r) for r in (1, 0)]
    assert [p.wait(60) for p in nodes] == [0, 0]
    assert json.loads((storage / "mn" / "nodes" / "1" / "status.json").read_text())["node_rank"] == 1
    st = status(storage, "mn")
    assert st["node_rank"] == 0 and st["num_nodes"] == 2
    assert (storage / "mn" / "outputs" / "rank").read_text() == "0\n"  # only node 0 publishes


def test_nodes_meet_through_storage_and_every_rank_reaches_every_other(tmp_path):
    storage, mesh = tmp_path / "storage", tmp_path / "mesh"
    mesh.mkdir()
    program = Path(__file__).parent / "fixtures" / "node_mesh.py"
    with socket.socket() as probe:  # a free port range: the OS picks the base
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    task = make_task("mesh", run=f"python3 {program}", num_nodes=3,
                     envs=(("MESH_DIR", str(mesh)), ("MESH_PORT_BASE", str(base))))
    script = write_script(tmp_path, task)
    nodes = [start_node(script, storage, tmp_path / f"w{r}", r, {"SKYPLAN_NUM_GPUS_PER_NODE": "8"})
             for r in (2, 0, 1)]  # started out of order: rank order comes from the rendezvous
    assert [p.wait(120) for p in nodes] == [0, 0, 0], [p.stderr.read() for p in nodes]
    seen = [json.loads((mesh / f"rank-{r}.json").read_text()) for r in range(3)]
    assert [s["heard"] for s in seen] == [[1, 2], [0, 2], [0, 1]]
    assert all(s["ips"] == ["127.0.0.1"] * 3 and s["gpus"] == "8" for s in seen)
    assert len({s["task_id"] for s in seen}) == 1 and seen[0]["task_id"].startswith("skyplan-demo_mesh")
    assert sorted(p.name for p in (storage / "mesh" / "rendezvous").iterdir()) == ["0", "1", "2"]


def test_a_node_whose_peers_never_come_fails_at_inputs(tmp_path):
    storage = tmp_path / "storage"
    script = write_script(tmp_path, make_task("mn", run="touch $SKYPLAN_OUTPUT_DIR/ran", num_nodes=2))
    node = start_node(script, storage, tmp_path / "w0", 0, {"SKYPLAN_RENDEZVOUS_TIMEOUT": "3"})
    assert node.wait(60) == 66
    assert "only 1 of 2 nodes published an address" in node.stderr.read()
    st = status(storage, "mn")
    assert st["stage"] == "inputs" and not (tmp_path / "w0" / "outputs" / "ran").exists()


def test_shutdown_only_when_asked(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "shutdown-calls"
    for tool in ("shutdown", "sudo"):
        (fake_bin / tool).write_text(f'#!/bin/sh\necho "$0 $*" >> {calls}\n')
        (fake_bin / tool).chmod(0o755)
    script = write_script(tmp_path, make_task("t", run="exit 4"))
    path = f"{fake_bin}:{os.environ['PATH']}"
    result = run_executor(script, tmp_path / "s", tmp_path / "w", {"PATH": path, "SKYPLAN_SHUTDOWN": "0"})
    assert result.returncode == 4 and not calls.exists()
    result = run_executor(script, tmp_path / "s", tmp_path / "w", {"PATH": path, "SKYPLAN_SHUTDOWN": "1"})
    assert result.returncode == 4  # the task's code survives the power-off request
    assert "shutdown -h now" in calls.read_text()


def _start_long_task(tmp_path, *, new_session: bool):
    storage, work = tmp_path / "storage", tmp_path / "work"
    pidfile = tmp_path / "child.pid"
    task = make_task("long", run=f"sleep 300 &\necho $! > {pidfile}\nwait\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYPLAN_")}
    env.update(SKYPLAN_STORAGE=f"file://{storage}", SKYPLAN_WORK_DIR=str(work), SKYPLAN_SHUTDOWN="0")
    proc = subprocess.Popen(
        ["bash", str(write_script(tmp_path, task))],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=new_session,
    )
    deadline = time.time() + 20
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.time() < deadline:
        time.sleep(0.05)
    return proc, int(pidfile.read_text()), storage


def _gone(pid: int) -> bool:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_sigterm_to_group_leader_executor_records_status(tmp_path):
    """local/ssh start the executor with setsid and TERM its process group."""
    proc, child, storage = _start_long_task(tmp_path, new_session=True)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=20) == 143
    assert status(storage, "long")["exit_code"] == 143
    assert _gone(child)


def test_sigkill_of_the_group_leaves_nothing_behind(tmp_path):
    """local/ssh escalate to KILL on the group: every stage process must be in that group."""
    proc, child, _ = _start_long_task(tmp_path, new_session=True)
    assert os.getpgid(child) == proc.pid
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=20)
    assert _gone(child)


def test_sigterm_to_executor_alone_stops_the_task_and_its_children(tmp_path):
    """Started by cloud-init or by hand (not a group leader): it forwards TERM to the stage."""
    proc, child, storage = _start_long_task(tmp_path, new_session=False)
    assert os.getpgid(child) != os.getpgid(0)  # the stage does not share our (the caller's) group
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143
    st = status(storage, "long")
    assert st["exit_code"] == 143 and st["stage"] == "run"
    assert _gone(child)


def test_relative_work_dir_and_task_without_run(tmp_path):
    storage = tmp_path / "storage"
    task = make_task("prep", setup='echo made > "$SKYPLAN_OUTPUT_DIR/f"')
    script = write_script(tmp_path, task)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYPLAN_")}
    env.update(SKYPLAN_STORAGE=f"file://{storage}/", SKYPLAN_WORK_DIR="rel/work", SKYPLAN_SHUTDOWN="0")
    result = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "rel" / "work" / "setup.sh").exists()
    assert (storage / "prep" / "outputs" / "f").read_text() == "made\n"
    assert status(storage, "prep")["exit_code"] == 0


def test_user_envs_may_reuse_the_executors_variable_names(tmp_path):
    storage = tmp_path / "storage"
    names = ("HOME", "LOG", "PIDFILE", "STORAGE", "TASK_NAME", "USER_ENV", "WORK")
    task = make_task(
        "t",
        run="for n in "
        + " ".join(names)
        + '; do printf "%s=%s\\n" "$n" "${!n}"; done > "$SKYPLAN_OUTPUT_DIR/env"',
        envs=tuple((n, f"user-{n}") for n in names),
    )
    result = run_executor(write_script(tmp_path, task), storage, tmp_path / "work")
    assert result.returncode == 0, result.stderr
    assert (storage / "t" / "outputs" / "env").read_text() == "".join(f"{n}=user-{n}\n" for n in names)


def test_cloud_inits_own_write_files_module_writes_the_exact_script(tmp_path):
    """Run cloud-init's real write_files module on our user data (paths moved into tmp_path)."""
    if shutil.which("cloud-init") is None or os.geteuid() != 0:
        pytest.skip("needs cloud-init and root (it logs to /var/log); CI runs it in a container")
    task = SAMPLE_TASKS[2]
    script = executor_script(task, plan_name="demo", upstream=[])
    root = tmp_path / "root"
    text = cloud_init(script, task_name=task.name, plan_name="demo", storage="file:///srv/x", node_rank=3)
    text = text.replace("/var/lib/skyplan/", f"{root}/").replace("/etc/skyplan/", f"{root}/")
    (tmp_path / "user-data").write_text(text)
    cmd = [
        "cloud-init",
        "--file",
        str(tmp_path / "user-data"),
        "single",
        "--name",
        "write_files",
        "--frequency",
        "always",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (root / "executor.sh").read_bytes() == script.encode()
    assert (root / "executor.sh").stat().st_mode & 0o777 == 0o755
    assert (root / "storage").read_text() == "file:///srv/x"
    assert (root / "node-rank").read_text() == "3\n"


def test_a_daemon_left_by_run_does_not_keep_the_executor_alive(tmp_path):
    storage, work = tmp_path / "storage", tmp_path / "work"
    task = make_task("d", run="sleep 120 &\necho started\n")
    started = time.time()
    try:
        result = run_executor(write_script(tmp_path, task), storage, work, timeout=60)
        assert result.returncode == 0
        assert time.time() - started < 30
        assert status(storage, "d")["exit_code"] == 0
        assert "started" in result.stdout  # the console copy of the stage output
    finally:
        stage_session = int((work / ".skyplan" / "stage.pid").read_text())
        os.killpg(stage_session, signal.SIGKILL)


def test_cloud_init_layout_that_cloud_targets_patch_is_stable():
    """skyplan/targets/cloud.py substitutes the storage line and inserts a node-rank entry after it."""
    text = cloud_init("#!/bin/bash\n", task_name="t", plan_name="p", storage="SKYPLAN_STORAGE_TOKEN")
    assert (
        text.count("- path: /etc/skyplan/storage\n  permissions: '0644'\n  content: SKYPLAN_STORAGE_TOKEN\n")
        == 1
    )


def test_a_command_that_catches_sigterm_still_fails_the_task(tmp_path):
    storage, work = tmp_path / "storage", tmp_path / "work"
    ready = tmp_path / "ready"
    task = make_task("graceful", run=f"trap 'exit 0' TERM\nsleep 300 &\ntouch {ready}\nwait\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYPLAN_")}
    env.update(SKYPLAN_STORAGE=f"file://{storage}", SKYPLAN_WORK_DIR=str(work), SKYPLAN_SHUTDOWN="0")
    proc = subprocess.Popen(
        ["bash", str(write_script(tmp_path, task))],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 20
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=20) == 143
    assert status(storage, "graceful")["exit_code"] == 143


def test_a_failing_node_stops_node_zero_and_fails_the_task_with_its_code(tmp_path):
    storage = tmp_path / "storage"
    run = 'if [ "$SKYPILOT_NODE_RANK" = 1 ]; then exit 7; fi; sleep 120; touch "$SKYPLAN_OUTPUT_DIR/late"'
    script = write_script(tmp_path, make_task("mn", run=run, num_nodes=2))
    start = time.time()
    nodes = [start_node(script, storage, tmp_path / f"w{r}", r) for r in (0, 1)]
    assert [p.wait(90) for p in nodes] == [7, 7]
    assert time.time() - start < 60  # node 0's sleep was cut short, not waited out
    st = status(storage, "mn")
    assert st["exit_code"] == 7 and st["stage"] == "run"
    assert "node 1 failed with exit code 7" in nodes[0].stderr.read()
    assert not (tmp_path / "w0" / "outputs" / "late").exists()
