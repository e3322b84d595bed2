"""The `ssh` target: tasks run on the user's own machines (pools of hosts), through `terraform_data` + `remote-exec`.

Pools come from the spec's `pools:` and from `~/.config/skyplan/pools.yaml` (or
`$SKYPLAN_POOLS_FILE`), read with `skyplan.spec.load_pools`; a pool of the spec wins over a file
pool of the same name. Each host is a zone, `Location("ssh", <pool>, <host>)`, offered in every
whole CPU size up to its CPU count (`ssh-<n>cpu`, priced at that share of the pool's hourly
cost) with a vcpus quota per host, so tasks share a host only as far as its CPUs go.

Credentials: no key ever passes through Terraform. Stacks connect with `agent = true`; for the
length of an apply or destroy skyplan runs a private ssh-agent (socket in a fresh 0700
directory), adds the hosts' key files to it and removes it afterwards. So neither the generated
stack, nor the saved plan file, nor the state holds key material (a `private_key = file(…)`
would put the key's content in the plan file). The stack holds key *paths* only in `hosts.json`.

Host keys are pinned, never trusted on first use: apply looks every host up in known_hosts
(`$SKYPLAN_SSH_KNOWN_HOSTS`, default `~/.ssh/known_hosts`) and passes the key as the connection's
`host_key`; scp runs with `StrictHostKeyChecking=yes` against a known_hosts file holding just
those keys. A host with no known key fails its task's plan (classified zone-scope: that host is
unusable for this run); a host presenting a different key stops the run (scope none).

Secrets (`secrets:` names of a task): their values are read from skyplan apply's environment by
the push step, copied to a 0600 file in the task's directory on the host, sourced and deleted by
`node.sh` just before the executor starts; they never pass through Terraform.

Data: the run's storage is a directory on this machine (`file://DIR/.skyplan-storage/<plan>`).
Before a task starts, its upstream tasks' outputs are pushed to `~/.skyplan/runs/<run_id>/storage/`
on the host (the executor's SKYPLAN_STORAGE there); after it ran, its status and outputs are
pulled back, so the next task, local, ssh or elsewhere, finds them in the run's storage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from skyplan.atomicfile import write_text
from skyplan.errors import RenderError, SkyplanError
from skyplan.models import FailureScope, Location, Offering, Pool, Quota, Spec
from skyplan.targets.base import Failure, StackContext, Target
from skyplan.targets.templating import render_templates

HOSTS_FILE = "hosts.json"
PINNED_FILE = ".skyplan/ssh_known_hosts"  # the pools' host keys only, for scp/ssh of this run

# (pattern, scope, code); first match wins. Texts: Terraform's ssh communicator and provisioner
# errors, OpenSSH client errors (scp in sync.sh), and our own node.sh / precondition messages.
_RULES: tuple[tuple[re.Pattern[str], FailureScope, str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), scope, code)
    for p, scope, code in (
        (r"host key mismatch|key mismatch|Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED",
         FailureScope.NONE, "HostKeyMismatch"),
        (r"skyplan-ssh: host \S+ \(.*\) has no key in known_hosts", FailureScope.ZONE, "HostKeyUnknown"),
        (r"skyplan-ssh: host \S+ has no free slot", FailureScope.ZONE, "NoFreeSlot"),
        (r"unable to authenticate|Permission denied \(publickey", FailureScope.ZONE, "AuthFailed"),
        (r"connection refused|no route to host|network is unreachable|i/o timeout|no such host|"
         r"connection timed out|Connection reset by peer|Connection closed|lost connection|"
         r"timeout - last error|Could not resolve hostname", FailureScope.ZONE, "HostUnreachable"),
    )
)


def pools_file() -> Path:
    env = os.environ.get("SKYPLAN_POOLS_FILE")
    return Path(env).expanduser() if env else Path("~/.config/skyplan/pools.yaml").expanduser()


def known_hosts_file() -> Path:
    env = os.environ.get("SKYPLAN_SSH_KNOWN_HOSTS")
    return Path(env).expanduser() if env else Path("~/.ssh/known_hosts").expanduser()


def _known_host_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def lookup_host_key(address: str, port: int, known_hosts: Path | None = None) -> str | None:
    """The host's public key ("ssh-ed25519 AAAA…") from known_hosts, preferring ed25519."""
    path = known_hosts or known_hosts_file()
    if not path.exists() or not shutil.which("ssh-keygen"):
        return None
    proc = subprocess.run(["ssh-keygen", "-F", _known_host_name(address, port), "-f", str(path)],
                          capture_output=True, text=True)
    keys = []
    for line in proc.stdout.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split()
        if len(parts) >= 3:
            keys.append(f"{parts[1]} {parts[2]}")
    keys.sort(key=lambda k: not k.startswith("ssh-ed25519"))
    return keys[0] if keys else None


def run_id(run_dir: Path, plan_name: str) -> str:
    """This run's directory name on the hosts: the plan's slug plus a hash of the output directory."""
    from skyplan.hcl import cloud_name

    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:8]
    return f"{cloud_name(plan_name)}-{digest}"


def _read_hosts(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = Path(run_dir) / "ssh" / HOSTS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _ssh_base(host: Mapping[str, Any], known_hosts: Path, timeout: int = 10) -> list[str]:
    # OpenSSH reads the key file itself (or the user's agent serves it); nothing is copied.
    key = ["-i", str(Path(host["key_path"]).expanduser()), "-o", "IdentitiesOnly=yes"] if host.get("key_path") else []
    return ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o",
            f"UserKnownHostsFile={known_hosts}", "-o", f"ConnectTimeout={timeout}", *key, "-p", str(host["port"]),
            f"{host['user']}@{host['address']}"]


def _pin_host_keys(run_dir: Path) -> dict[str, str]:
    """Look every pool host up in known_hosts; write the run's pinned file; return host → key."""
    keys, lines = {}, set()
    for name, h in _read_hosts(run_dir).items():
        key = lookup_host_key(h["address"], int(h["port"]))
        if key:
            keys[name] = key
            lines.add(f"{_known_host_name(h['address'], int(h['port']))} {key}")
    pinned = Path(run_dir) / PINNED_FILE
    pinned.parent.mkdir(parents=True, exist_ok=True)
    write_text(pinned, "".join(f"{line}\n" for line in sorted(lines)))
    return keys


class SshTarget(Target):
    """The user's machines over SSH; on whenever pools are configured."""

    name: ClassVar[str] = "ssh"
    # Offered whenever pools are configured (it has no offerings otherwise): "our machines first".
    enabled_by_default: ClassVar[bool] = True
    apply_waits_for_tasks: ClassVar[bool] = True

    # -- what the optimizer sees -------------------------------------------------------------

    def pools(self, spec: Spec) -> tuple[Pool, ...]:
        """The spec's pools, then the pools file's (a spec pool hides a file pool of the same name)."""
        pools = list(spec.pools)
        path = pools_file()
        if path.exists():
            from skyplan.spec import load_pools

            names = {p.name for p in pools}
            pools += [p for p in load_pools(path) if p.name not in names]
        return tuple(pools)

    def offerings(self, spec: Spec) -> list[Offering]:
        out = []
        for pool in self.pools(spec):
            for host in pool.hosts:
                loc = Location("ssh", pool.name, host.name)
                cpus = max(1, int(host.cpus))
                for n in range(1, cpus + 1):
                    share = n / cpus
                    out.append(Offering(loc, f"ssh-{n}cpu", None, 0, float(n), round(host.memory_gib * share, 2),
                                        round(pool.hourly_cost * share, 6), None))
                if host.accelerator:
                    out.append(Offering(loc, f"ssh-{cpus}cpu", host.accelerator, host.accelerator_count,
                                        float(cpus), host.memory_gib, pool.hourly_cost, None))
        return out

    def capacity(self, spec: Spec) -> tuple[Quota, ...]:
        quotas = []
        for pool in self.pools(spec):
            for host in pool.hosts:
                match = (("cloud", "ssh"), ("zone", host.name))
                quotas.append(Quota(f"ssh-{host.name}-vcpus", "vcpus", float(max(1, int(host.cpus))), match))
                if host.accelerator:
                    quotas.append(Quota(f"ssh-{host.name}-accelerators", "accelerators",
                                        float(host.accelerator_count), match))
        return tuple(quotas)

    def storage_uri(self, base: str | None, plan_name: str) -> str:
        # Data reaches the hosts through this machine, so the run's storage is a local directory.
        if base and base.startswith("file://"):
            return super().storage_uri(base, plan_name)
        return f"file://.skyplan-storage/{plan_name}"

    # -- the stack -------------------------------------------------------------------------------

    def render_stack(self, ctx: StackContext) -> dict[str, str]:
        from skyplan.hcl import cloud_name, hcl_identifier

        hosts = {h.name: (p, h) for p in self.pools(ctx.spec) for h in p.hosts}
        files: dict[str, str] = {}
        tasks = []
        used: dict[str, dict[str, Any]] = {}
        for st in ctx.tasks:
            tp = st.placement
            off = tp.candidate.offering
            if off.location.zone not in hosts:
                raise RenderError(f"task {tp.task!r} is placed on ssh host {off.location.zone!r}, which no pool has")
            if tp.candidate.num_nodes != 1:
                raise RenderError(f"task {tp.task!r}: num_nodes {tp.candidate.num_nodes} on an ssh pool host "
                                  "is not supported (a host is one machine)")
            pool, host = hosts[off.location.zone or ""]
            slug = cloud_name(tp.task)
            files[f"executors/{slug}.sh"] = st.executor
            m = re.fullmatch(r"ssh-(\d+)cpu", off.instance_type)
            tasks.append({
                "name": tp.task, "module": hcl_identifier(tp.task), "slug": slug, "host": host.name,
                "address": host.address, "port": int(host.port), "user": host.user,
                "executor_sha256": hashlib.sha256(st.executor.encode()).hexdigest(),
                "upstream": sorted(cloud_name(u) for u in st.depends_on),
                "secrets": sorted(ctx.spec.task(tp.task).secrets),
                "cpus": int(m.group(1)) if m else 1, "host_cpus": max(1, int(host.cpus)),
            })
        # Every pool host, not only the used ones: after a failover the run may move to any of them
        # and its ssh-agent and pinned known_hosts must already cover it.
        for pool, host in hosts.values():
            used[host.name] = {"pool": pool.name, "address": host.address, "port": int(host.port),
                               "user": host.user, "key_path": host.key_path}
        files[HOSTS_FILE] = json.dumps(used, sort_keys=True, indent=2) + "\n"
        files.update(render_templates(self.name, plan_name=ctx.plan_name, plan_slug=cloud_name(ctx.plan_name),
                                      storage=ctx.storage, terraform_version=ctx.terraform_version, tasks=tasks))
        return files

    def classify_failure(self, message: str) -> Failure | None:
        for pattern, scope, code in _RULES:
            m = pattern.search(message)
            if m:
                line = next((ln for ln in message.splitlines() if m.group(0) in ln), m.group(0))
                return Failure(scope, code, line.strip())
        return None

    # -- apply-time hooks ----------------------------------------------------------------------------

    def stack_variables(self, run_dir: Path, plan: Mapping[str, Any]) -> dict[str, Any]:
        keys = _pin_host_keys(run_dir)
        return {"host_keys": keys, "run_id": run_id(run_dir, str(plan["name"])),
                "connect_timeout": os.environ.get("SKYPLAN_SSH_CONNECT_TIMEOUT", "60s")}

    @contextlib.contextmanager
    def session(self, run_dir: Path, plan: Mapping[str, Any]) -> Iterator[dict[str, str]]:
        """A private ssh-agent holding the pools' keys, and a known_hosts file of pinned keys."""
        hosts = _read_hosts(run_dir)
        _pin_host_keys(run_dir)
        env = {"SKYPLAN_SSH_KNOWN_HOSTS_RUN": str(Path(run_dir) / PINNED_FILE)}
        keys = sorted({str(Path(h["key_path"]).expanduser()) for h in hosts.values() if h.get("key_path")})
        if not keys:
            yield env  # the user's own agent (SSH_AUTH_SOCK) serves every host
            return
        with _private_agent(keys) as sock:
            env["SSH_AUTH_SOCK"] = sock
            yield env

    def local_tools(self) -> tuple[str, ...]:
        """sync.sh copies data with scp; host keys are looked up with ssh-keygen."""
        return ("bash", "ssh", "scp", "ssh-keygen", "mktemp", "cp", "mv", "rm")

    def check_machines(self, run_dir: Path, plan: Mapping[str, Any], tasks: list[str]) -> list[str]:
        """Ask each host that would run one of `tasks` which of node.sh's and the executor's
        programs it lacks (one ssh round trip per host, with the run's pinned host keys)."""
        from skyplan.preflight import EXECUTOR_TOOLS, describe_missing

        names = sorted({t["zone"] for t in plan["tasks"] if t["name"] in tasks and t["cloud"] == "ssh"})
        hosts = _read_hosts(run_dir)
        pinned = Path(run_dir) / PINNED_FILE
        tools = " ".join(dict.fromkeys((*EXECUTOR_TOOLS, "flock")))
        # POSIX sh: the login shell of the host runs it, and bash is one of the things checked.
        probe = (f'for t in {tools}; do command -v "$t" >/dev/null 2>&1 || echo "missing $t"; done; '
                 "echo skyplan-checked")
        found = []
        for name in names:
            h = hosts.get(name)
            if h is None or not pinned.exists():
                continue
            try:
                proc = subprocess.run([*_ssh_base(h, pinned, timeout=10), probe], capture_output=True,
                                      text=True, timeout=60, stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired):
                continue
            lines = proc.stdout.splitlines()
            if proc.returncode != 0 or "skyplan-checked" not in lines:
                continue  # unreachable or unknown key: the task's provisioning classifies that
            missing = [ln.split(" ", 1)[1] for ln in lines if ln.startswith("missing ")]
            if missing:
                found.append(describe_missing(f"ssh host {name} ({h['user']}@{h['address']})", missing))
        return found

    def reap(self, run_dir: Path) -> list[int]:
        """Stop leftovers of this run on every host a task of it was started on (over ssh)."""
        from skyplan.assets import modules_dir
        from skyplan.runstate import read_events

        started = {e.get("zone") for e in read_events(Path(run_dir))
                   if e.get("event") == "task_started" and e.get("cloud") == "ssh"}
        hosts = {n: h for n, h in _read_hosts(run_dir).items() if n in started}
        if not hosts:
            return []
        pinned = Path(run_dir) / PINNED_FILE
        script = (modules_dir() / "ssh-node" / "reap.sh").read_text()
        try:
            plan_name = json.loads((Path(run_dir) / "plan.json").read_text())["name"]
        except (OSError, ValueError, KeyError):
            return []
        stopped = []
        for h in hosts.values():
            if not pinned.exists():
                break
            proc = subprocess.run([*_ssh_base(h, pinned, timeout=5), "bash", "-s", "--", run_id(run_dir, plan_name)],
                                  input=script, capture_output=True, text=True, timeout=60)
            if proc.returncode == 0 and proc.stdout.strip().isdigit():
                stopped.append(int(proc.stdout.strip()))
        return [n for n in stopped if n]


@contextlib.contextmanager
def _private_agent(keys: list[str]) -> Iterator[str]:
    if not shutil.which("ssh-agent") or not shutil.which("ssh-add"):
        raise SkyplanError("the ssh target needs OpenSSH's ssh-agent and ssh-add on PATH")
    tmp = tempfile.mkdtemp(prefix="skyplan-agent-")  # 0700: only this user reaches the socket
    sock = os.path.join(tmp, "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if agent.poll() is not None or time.monotonic() > deadline:
                raise SkyplanError("could not start ssh-agent for the ssh target")
            time.sleep(0.02)
        env = {**os.environ, "SSH_AUTH_SOCK": sock, "SSH_ASKPASS_REQUIRE": "never"}
        for key in keys:
            proc = subprocess.run(["ssh-add", "-q", key], env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SkyplanError(f"ssh-add {key} failed: {proc.stderr.strip()} (a key with a passphrase must "
                                   "already be in your own ssh-agent; leave `key` out of the pool then)")
        yield sock
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=5)
        except subprocess.TimeoutExpired:
            agent.kill()
        shutil.rmtree(tmp, ignore_errors=True)
