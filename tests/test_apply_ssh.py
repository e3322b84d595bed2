"""End-to-end apply on the `ssh` target against a real sshd on 127.0.0.1: a DAG, pinned host keys, failover."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import sshd
from test_apply_local import assert_fmt_clean, assert_no_state, compile_dir, events
from tools import require

from skyplan import apply as apply_mod
from skyplan.errors import ApplyError
from skyplan.terraform import find_terraform

pytestmark = pytest.mark.slow  # every test here runs real Terraform against a real sshd


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require(sshd.missing_reason())
    srv = sshd.start_sshd(tmp_path_factory.mktemp("sshd"))
    yield srv
    srv.stop()


@pytest.fixture
def ssh_env(server, monkeypatch, tmp_path):
    monkeypatch.setenv("SKYPLAN_SSH_KNOWN_HOSTS", str(server.known_hosts))
    monkeypatch.setenv("SKYPLAN_POOLS_FILE", str(tmp_path / "no-pools.yaml"))
    monkeypatch.setenv("SKYPLAN_SSH_CONNECT_TIMEOUT", "3s")
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # only the run's own agent may serve keys
    return server


def _spec(path: Path, server: sshd.Sshd, pools: list[tuple[str, float, list[dict]]], name: str = "remote") -> Path:
    """A two-task DAG (make → use) restricted to the ssh target, with the given (pool, $/h, hosts)."""
    lines = [f"name: {name}", "allowed: {clouds: [ssh]}", "pools:"]
    for pool, cost, hosts in pools:
        lines += [f"  - name: {pool}", f"    user: {server.user}", f"    key: {server.client_key}",
                  f"    hourly_cost: {cost}", "    hosts:"]
        lines += [f"      - {json.dumps(h)}" for h in hosts]
    lines += [
        "tasks:",
        "  - name: make",
        "    resources: {cpus: 1}",
        "    run: |",
        "      echo \"made on $(hostname)\" > \"$SKYPLAN_OUTPUT_DIR/made.txt\"",
        "  - name: use",
        "    depends_on: [make]",
        "    resources: {cpus: 1}",
        "    run: |",
        "      tr a-z A-Z < \"$SKYPLAN_INPUT_DIR/make/made.txt\" > \"$SKYPLAN_OUTPUT_DIR/used.txt\"",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _box(server: sshd.Sshd) -> dict:
    return {"name": "box", "address": "127.0.0.1", "port": server.port, "cpus": 2, "memory": 2}


def _check_outputs(out: Path, plan: str = "remote") -> None:
    storage = out / ".skyplan-storage" / plan
    assert (storage / "make" / "outputs" / "made.txt").read_text().startswith("made on ")
    assert (storage / "use" / "outputs" / "used.txt").read_text().startswith("MADE ON ")
    for task in ("make", "use"):
        assert json.loads((storage / task / "status.json").read_text())["exit_code"] == 0


def _no_key_material(out: Path, server: sshd.Sshd) -> None:
    """The private key's content is in no file of the run: not the stack, the plan file, the state."""
    secret = "".join(server.client_key.read_text().splitlines()[1:-1])[:40]
    for path in out.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes().decode("utf-8", "replace").replace("\n", ""), path


@pytest.mark.slow
def test_two_task_dag_runs_on_a_pool_host(tmp_path, ssh_env):
    spec = _spec(tmp_path / "remote.yaml", ssh_env, [("lab", 0.5, [_box(ssh_env)])])
    out = compile_dir(spec, tmp_path / "out")
    assert_fmt_clean(out, "ssh")
    outcome = apply_mod.apply(out)
    assert outcome.ok
    _check_outputs(out)
    assert {e["zone"] for e in events(out, "task_succeeded")} == {"box"}
    assert_no_state(out)
    _no_key_material(out, ssh_env)
    # The run's directory on the host is gone after the teardown.
    from skyplan.targets.ssh import run_id

    assert not (Path.home() / ".skyplan" / "runs" / run_id(out, "remote")).exists()


@pytest.mark.slow
def test_unreachable_host_fails_over_to_the_live_one(tmp_path, ssh_env):
    dead = sshd.closed_port()
    ssh_env.add_known_host(dead)  # known but down: the failure is reachability, not trust
    # The dead host's pool is cheaper, so the optimizer picks it first.
    dead_host = {"name": "dead", "address": "127.0.0.1", "port": dead, "cpus": 2, "memory": 2}
    spec = _spec(tmp_path / "remote.yaml", ssh_env, [("cheap", 0.1, [dead_host]), ("lab", 0.9, [_box(ssh_env)])])
    out = compile_dir(spec, tmp_path / "out")
    assert {t["zone"] for t in json.loads((out / "plan.json").read_text())["tasks"]} == {"dead"}

    t0 = time.monotonic()
    outcome = apply_mod.apply(out, max_attempts=3)
    print(f"ssh failover apply wall time: {time.monotonic() - t0:.2f} s")
    assert outcome.ok
    _check_outputs(out)
    classified = events(out, "failure_classified")
    assert [(e["task"], e["scope"], e["code"], e["zone"]) for e in classified] == [
        ("make", "zone", "HostUnreachable", "dead")]
    assert [e["token"] for e in events(out, "zone_excluded")] == ["ssh:dead"]
    assert {e["zone"] for e in events(out, "task_succeeded")} == {"box"}
    assert_no_state(out)


@pytest.mark.slow
def test_host_presenting_another_key_stops_the_run(tmp_path, ssh_env, monkeypatch):
    wrong = tmp_path / "known_hosts"
    other = tmp_path / "other"
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {other}")
    pub = (other.with_suffix(".pub")).read_text().split()
    wrong.write_text(f"[127.0.0.1]:{ssh_env.port} {pub[0]} {pub[1]}\n")
    monkeypatch.setenv("SKYPLAN_SSH_KNOWN_HOSTS", str(wrong))
    spec = _spec(tmp_path / "remote.yaml", ssh_env, [("lab", 0.5, [_box(ssh_env)])])
    out = compile_dir(spec, tmp_path / "out")
    with pytest.raises(ApplyError) as info:
        apply_mod.apply(out, max_attempts=3)
    assert info.value.exit_code == 1
    assert events(out, "zone_excluded") == []
    assert "mismatch" in info.value.message.lower()
    assert find_terraform().state_resources(out / "ssh") == []


@pytest.mark.slow
def test_secrets_reach_the_task_without_landing_in_any_file(tmp_path, ssh_env, monkeypatch):
    import hashlib

    value = "s3cr3t 'quoted' \"dq\" $HOME\nsecond line"
    monkeypatch.setenv("API_TOKEN", value)
    spec = tmp_path / "secret.yaml"
    spec.write_text(
        "name: secret\nallowed: {clouds: [ssh]}\npools:\n"
        f"  - name: lab\n    user: {ssh_env.user}\n    key: {ssh_env.client_key}\n    hosts:\n"
        f"      - {json.dumps(_box(ssh_env))}\n"
        "tasks:\n  - name: use-token\n    resources: {cpus: 1}\n    secrets: [API_TOKEN]\n"
        "    run: printf '%s' \"$API_TOKEN\" | sha256sum | cut -d' ' -f1 > \"$SKYPLAN_OUTPUT_DIR/h.txt\"\n"
    )
    out = compile_dir(spec, tmp_path / "out")
    assert apply_mod.apply(out).ok
    got = (out / ".skyplan-storage" / "secret" / "use-token" / "outputs" / "h.txt").read_text().strip()
    assert got == hashlib.sha256(value.encode()).hexdigest()
    for path in out.rglob("*"):
        if path.is_file():
            assert b"s3cr3t" not in path.read_bytes(), path
    assert_no_state(out)


@pytest.mark.slow
def test_workdir_reaches_a_pool_host(tmp_path, ssh_env):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "prog.sh").write_text('echo "ran $(basename "$PWD")"\n')
    spec = project / "spec.yaml"
    lines = [
        "name: wdssh", "allowed: {clouds: [ssh]}", "pools:", "  - name: lab",
        f"    user: {ssh_env.user}", f"    key: {ssh_env.client_key}", "    hosts:",
        f"      - {json.dumps(_box(ssh_env))}",
        "tasks:", "  - name: job", "    workdir: ./src", "    resources: {cpus: 1}",
        '    run: bash prog.sh > "$SKYPLAN_OUTPUT_DIR/out.txt"',
    ]
    spec.write_text("\n".join(lines) + "\n")
    out = compile_dir(spec, tmp_path / "out")
    assert apply_mod.apply(out).ok
    assert (out / ".skyplan-storage" / "wdssh" / "job" / "outputs" / "out.txt").read_text() == "ran workdir\n"
    assert_no_state(out)


@pytest.mark.slow
def test_a_host_lacking_flock_is_refused_before_anything_is_created(tmp_path, ssh_env, tmp_path_factory,
                                                                   monkeypatch):
    """A missing program on a pool host is an environment error named before apply creates anything,
    never a "no free slot" capacity failure that fails the host over."""
    from test_preflight import path_without

    from skyplan.errors import SkyplanError

    bare = sshd.start_sshd(tmp_path_factory.mktemp("sshd-noflock"),
                           extra_config=f"SetEnv PATH={path_without(tmp_path, 'flock')}\n")
    try:
        known = tmp_path / "known_hosts"
        known.write_text(ssh_env.known_hosts.read_text() + bare.known_hosts.read_text())
        monkeypatch.setenv("SKYPLAN_SSH_KNOWN_HOSTS", str(known))
        spec = _spec(tmp_path / "remote.yaml", bare, [("lab", 0.5, [{**_box(bare), "name": "bare"}])])
        out = compile_dir(spec, tmp_path / "out")
        with pytest.raises(SkyplanError) as info:
            apply_mod.apply(out)
        assert info.value.exit_code == 2
        assert f"ssh host bare ({bare.user}@127.0.0.1) lacks flock (util-linux)" in info.value.message
        assert not (out / "ssh" / "terraform.tfstate").exists()
        assert events(out, "task_started") == [] and events(out, "zone_excluded") == []
    finally:
        bare.stop()
