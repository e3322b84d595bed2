"""A throwaway OpenSSH server on 127.0.0.1 for the ssh target's tests: own host key, own client key, free port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def missing_reason() -> str | None:
    """Why a test sshd cannot run here (None when it can)."""
    for tool in ("ssh", "scp", "ssh-keygen", "ssh-agent", "ssh-add"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install openssh-client)"
    if not os.path.exists(SSHD):
        return f"{SSHD} is missing (apt-get install openssh-server; CI installs it)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A loopback port nothing listens on (bound and released: refused right away)."""
    return free_port()


@dataclass
class Sshd:
    port: int
    user: str
    client_key: Path  # private key whose public half is authorized
    known_hosts: Path  # holds this server's host key for [127.0.0.1]:port
    host_public_key: str  # "ssh-ed25519 AAAA…"
    process: subprocess.Popen
    log: Path

    def add_known_host(self, port: int) -> None:
        """Record this server's key for another port too (an unreachable host that is still 'known')."""
        with self.known_hosts.open("a") as f:
            f.write(f"[127.0.0.1]:{port} {self.host_public_key}\n")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "skyplan-test", "-f", str(path)], check=True)


def start_sshd(workdir: Path, timeout: float = 15.0, extra_config: str = "") -> Sshd:
    """Start `sshd -D -e -f CONFIG` listening on 127.0.0.1 only; return once it accepts connections.

    `extra_config`: sshd_config lines added at the end (e.g. `SetEnv PATH=…` for a host lacking a tool)."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    host_key, client_key = workdir / "host_ed25519", workdir / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = workdir / "authorized_keys"
    shutil.copy(f"{client_key}.pub", authorized)
    os.chmod(authorized, 0o600)
    port = free_port()
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {host_key}\n"
        f"PidFile {workdir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
        # The key files live under a temporary directory that sshd's ownership checks would reject.
        "StrictModes no\n"
        "UsePAM no\n"
        "PrintMotd no\n"
        "Subsystem sftp internal-sftp\n"
        + extra_config
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
    log = workdir / "sshd.log"
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log.open("w"), stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    public = Path(f"{host_key}.pub").read_text().split()
    host_public_key = f"{public[0]} {public[1]}"
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_public_key}\n")
    server = Sshd(port, user, client_key, known_hosts, host_public_key, process, log)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {log.read_text()}")
        probe = subprocess.run(
            ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
             "-o", "ConnectTimeout=2", "-i", str(client_key), "-o", "IdentitiesOnly=yes", "-p", str(port),
             f"{user}@127.0.0.1", "true"],
            capture_output=True, text=True,
        )
        if probe.returncode == 0:
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"sshd on port {port} does not accept logins: {probe.stderr}\n{log.read_text()}")
        time.sleep(0.1)
