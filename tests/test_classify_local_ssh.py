"""Failure texts of the local and ssh targets (as Terraform reports them) map to the right failover scope."""

from __future__ import annotations

import fcntl
import os
import subprocess

import pytest

from skyplan.assets import modules_dir
from skyplan.models import FailureScope
from skyplan.targets.local import LocalTarget
from skyplan.targets.ssh import SshTarget

LOCAL_CASES = [
    # inject_failure: capacity, as the apply's diagnostic carries it
    ("local-exec provisioner error\nError running command 'bash \"$SKYPLAN_MODULE_DIR/run.sh\"': exit status 75. "
     "Output: skyplan-local: zone local-2 has no free slot (capacity): inject_failure is set in the local config\n",
     FailureScope.ZONE, "LocalNoFreeSlot"),
    ("skyplan-local: zone local-1 has no free slot (capacity): 4 CPU slots needed, 1 free (taken by other runs)",
     FailureScope.ZONE, "LocalNoFreeSlot"),
    # not a provisioning failure of this target
    ("local-exec provisioner error\nError running command 'bash x': exit status 127. Output: bash: x: command not found",
     None, None),
    ("timeout - last error: dial tcp 127.0.0.1:1: connect: connection refused", None, None),
]

SSH_CASES = [
    ("remote-exec provisioner error\ntimeout - last error: dial tcp 127.0.0.1:40517: connect: connection refused",
     FailureScope.ZONE, "HostUnreachable"),
    ("remote-exec provisioner error\ntimeout - last error: dial tcp 10.255.255.1:22: i/o timeout",
     FailureScope.ZONE, "HostUnreachable"),
    ("remote-exec provisioner error\ntimeout - last error: dial tcp: lookup gpu7.lab.invalid: no such host",
     FailureScope.ZONE, "HostUnreachable"),
    ("remote-exec provisioner error\ntimeout - last error: dial tcp 192.0.2.10:22: connect: no route to host",
     FailureScope.ZONE, "HostUnreachable"),
    ("local-exec provisioner error\nError running command 'bash \"$SKYPLAN_MODULE_DIR/sync.sh\" pull': exit status 255. "
     "Output: scp: Connection closed", FailureScope.ZONE, "HostUnreachable"),
    ("remote-exec provisioner error\ntimeout - last error: SSH authentication failed (root@10.0.0.5:22): ssh: "
     "handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain",
     FailureScope.ZONE, "AuthFailed"),
    # a changed host key is never failed over silently: stop and tell the user
    ("remote-exec provisioner error\ntimeout - last error: SSH authentication failed (root@127.0.0.1:47107): ssh: "
     "handshake failed: knownhosts: key mismatch", FailureScope.NONE, "HostKeyMismatch"),
    ("local-exec provisioner error\nOutput: Host key verification failed.\r\nscp: Connection closed",
     FailureScope.NONE, "HostKeyMismatch"),
    ("Resource precondition failed\nskyplan-ssh: host gpu1 (10.0.0.5:22) has no key in known_hosts; verify its "
     "fingerprint and add it (ssh-keyscan -p 22 10.0.0.5 >> ~/.ssh/known_hosts).", FailureScope.ZONE, "HostKeyUnknown"),
    ("remote-exec provisioner error\nProcess exited with status 75\nskyplan-ssh: host box has no free slot (capacity): "
     "2 CPU slots needed, 0 free", FailureScope.ZONE, "NoFreeSlot"),
    # the task's own failure is not the ssh target's business
    ("remote-exec provisioner error\nProcess exited with status 3", None, None),
]


@pytest.mark.parametrize(("text", "scope", "code"), LOCAL_CASES)
def test_local_texts(text, scope, code):
    failure = LocalTarget(zones=()).classify_failure(text)
    assert (failure.scope if failure else None, failure.code if failure else None) == (scope, code)


@pytest.mark.parametrize(("text", "scope", "code"), SSH_CASES)
def test_ssh_texts(text, scope, code):
    failure = SshTarget().classify_failure(text)
    assert (failure.scope if failure else None, failure.code if failure else None) == (scope, code)
    if failure:
        assert failure.message and "\n" not in failure.message


def test_a_zone_whose_slots_another_run_holds_refuses_with_the_classified_text(tmp_path):
    """The real "no free slot": another run holds the zone's slot locks; run.sh refuses (exit 75)."""
    executor = tmp_path / "executor.sh"
    executor.write_text("echo ran\n")
    slots = tmp_path / "slots" / "local-3"
    slots.mkdir(parents=True)
    held = []
    for i in range(2):  # the zone has 2 CPU slots, another run holds both
        fd = os.open(slots / f"cpu-{i}.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(fd)
    env = {**os.environ, "SKYPLAN_LOCAL_SLOTS_DIR": str(tmp_path / "slots"), "SKYPLAN_ZONE": "local-3",
           "SKYPLAN_TASK_CPUS": "1", "SKYPLAN_ZONE_CPUS": "2", "SKYPLAN_WORK_DIR": str(tmp_path / "work"),
           "SKYPLAN_EXECUTOR": str(executor), "SKYPLAN_TASK": "t", "SKYPLAN_NODE_RANK": "0"}
    try:
        proc = subprocess.run(["bash", str(modules_dir() / "local-node" / "run.sh")], env=env,
                              capture_output=True, text=True, timeout=30)
    finally:
        for fd in held:
            os.close(fd)
    assert proc.returncode == 75
    failure = LocalTarget(zones=()).classify_failure(proc.stderr)
    assert failure is not None and failure.scope is FailureScope.ZONE
    assert "zone local-3 has no free slot (capacity)" in failure.message
    # With the slots free again the same node runs.
    ok = subprocess.run(["bash", str(modules_dir() / "local-node" / "run.sh")], env=env, capture_output=True,
                        text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "work" / "exit_code").read_text().strip() == "0"
    assert "ran" in ok.stdout
