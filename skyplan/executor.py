"""The per-task executor script (bash) and the cloud-init user data that runs it on a VM.

Runtime contract of the script (the same bytes run on cloud VMs from cloud-init, on `local` from
Terraform `local-exec`, on `ssh` from `remote-exec`):

Environment it reads (all optional):
    SKYPLAN_STORAGE     base URI of this run's staging area: `file:///abs/path`, `s3://bucket/p`,
                        `gs://bucket/p`, `https://<account>.blob.core.windows.net/<container>/p`.
                        Falls back to the file `/etc/skyplan/storage` (cloud-init writes it);
                        neither ⇒ exit 78, stage "config". A URI with a query string or
                        `user:password@` is refused (no credentials in URIs).
    SKYPLAN_WORK_DIR    default `/var/lib/skyplan/<task-slug>` (made absolute). Layout: setup.sh,
                        run.sh, task.log, status.json, log-tail.txt, inputs/, outputs/, and the
                        executor's scratch files in .skyplan/.
    SKYPLAN_SHUTDOWN    `1` ⇒ `shutdown -h now` when done (cloud-init passes 1, so AWS's
                        `instance_initiated_shutdown_behavior = terminate` ends billing). The
                        script's own default is `0`, so running it by hand never powers off
                        a workstation: local/ssh may leave it unset.
    SKYPLAN_NODE_RANK   default: file `/etc/skyplan/node-rank`, else 0.
    SKYPLAN_NUM_NODES   default: file `/etc/skyplan/num-nodes`, else the task's `num_nodes`.
    Secrets: every name in the task's `secrets` must be set in the environment (on clouds the
    stack must deliver them from the cloud's secret manager); otherwise exit 78, stage "config",
    naming the missing ones. Values are never written or logged.

Steps:
    1. Make `$WORK/inputs` and `$WORK/outputs`. Read the task's result id (64 hex digits) from
       `$SKYPLAN_STORAGE/<task>/result-id`, which `skyplan apply` writes before the task starts
       (see `skyplan.results`); none there ⇒ `"result_id": null` in status.json.
    2. For each upstream task (by slug, see `task_slug`): require
       `$SKYPLAN_STORAGE/<up>/status.json` with exit code 0, then copy
       `$SKYPLAN_STORAGE/<up>/outputs/` to `$WORK/inputs/<up>/` (rclone, see below).
       Failure ⇒ exit 66, stage "inputs".
       Then, if the task has a `workdir`: replace `$WORK/workdir` with a copy of
       `$SKYPLAN_STORAGE/<task>/workdir/` (`skyplan.staging.stage_task` uploads it before the task
       starts). Then each `file_mounts` entry, in `Task.file_mounts` order (the spec sorts it by
       remote path, so a directory comes before a path inside it): the remote path (`~` or a
       relative path ⇒ under `$HOME`, the executing user's; parents created) receives either a
       local source, staged by `stage_task` at `$SKYPLAN_STORAGE/<task>/mounts/<i>/` (`i` = its
       index in `Task.file_mounts`) as the object `file` (a single file, which stays a single file
       at the remote path) or under `dir/` (a directory, merged into the remote path), or a bucket
       URI (s3://, gs://, Azure blob https://), copied directly with the same tools and identity as
       the staging area: a prefix becomes a directory, and a URI with nothing under it is copied as
       a single object. Failure ⇒ exit 66, stage "inputs".
    3. Write `setup` to `$WORK/setup.sh` and `run` to `$WORK/run.sh`, byte for byte, and run each
       with `bash FILE` in `$WORK/workdir` if the task has a workdir, else in `$WORK` (as
       SkyPilot does: no `-e`; the exit code is the script's),
       stdin /dev/null, with the task's envs (passed through `env NAME=value`, so any name works
       and none touches the executor's own variables) plus SKYPLAN_TASK (the task's name),
       SKYPLAN_INPUT_DIR (`$WORK/inputs`), SKYPLAN_OUTPUT_DIR (`$WORK/outputs`),
       SKYPLAN_NODE_RANK, SKYPLAN_NUM_NODES, SKYPLAN_NODE_IPS, SKYPLAN_NUM_GPUS_PER_NODE,
       SKYPLAN_TASK_ID and the same values under SkyPilot's names (SKYPILOT_NODE_RANK, …):
       NODE_IPS holds one address a line, rank 0 first, no trailing newline; NUM_GPUS_PER_NODE
       is SKYPLAN_NUM_GPUS_PER_NODE (or /etc/skyplan/num-gpus) if set, else what `nvidia-smi -L`
       lists, else 0; TASK_ID is `skyplan-<plan>_<task>_<first 12 hex of the result id>`, the same
       on every node and attempt. Before setup, a multi-node task meets at a rendezvous: each
       node writes its address (SKYPLAN_NODE_IP, else the first of `hostname -I`) to
       `$SKYPLAN_STORAGE/<task>/rendezvous/<rank>` and waits until all ranks are there
       (SKYPLAN_RENDEZVOUS_TIMEOUT seconds, default 900; then exit 66, stage "inputs"). `skyplan
       apply` clears that prefix and `nodes/` before every start of the task. Output goes to
       `$WORK/task.log` and is copied to stdout. A
       failing setup skips run. Signals: when the executor leads its own process group (local
       and ssh start it with setsid and stop it by signalling the group, TERM then KILL), the
       stages stay in that group, so nothing escapes a KILL; otherwise (cloud-init, by hand)
       each stage gets a session of its own. SIGTERM/INT/HUP to the executor is forwarded to the
       stage, and the task is recorded as failed with 128+n (143 for TERM) even if the
       command caught the signal and exited 0. A daemon the command leaves behind does not
       hold the executor up (on VMs the power-off ends it; local/ssh stop the group).
    4. Node 0 mirrors `$WORK/outputs/` to `$SKYPLAN_STORAGE/<task>/outputs/` (stale objects of
       an earlier attempt are deleted). Failure ⇒ exit 74, stage "outputs".
    5. Write `status.json` — {"task", "exit_code", "stage", "started", "finished", "host",
       "node_rank", "num_nodes", "result_id"} — and `log-tail.txt` (last 200 lines) to
       `$SKYPLAN_STORAGE/<task>/` (node 0) or `$SKYPLAN_STORAGE/<task>/nodes/<rank>/` (others).
    6. Power off if SKYPLAN_SHUTDOWN=1, and exit with the task's exit code.

`stage` is one of config, inputs, setup, run, outputs: it tells an executor failure (66, 74, 78)
from a user command that happened to exit with the same number. Objects are written in the order
outputs → log-tail.txt → status.json, so a status.json means the outputs are complete.

Data mover: rclone, for every scheme and on every target (VMs, local, ssh run the same code).
One tool rather than each cloud's CLI (aws, gcloud/gsutil, azcopy): three CLIs would mean three
install paths, three auth models and three sets of checksum/retry flags. rclone is one binary
packaged by Debian and Ubuntu; it speaks s3, gcs, azureblob and local paths, and is configured
from the environment alone (RCLONE_CONFIG_<REMOTE>_<OPTION>, `--config /dev/null`), so no
credential is ever written. Every transfer runs with `--checksum` (hash comparison; rclone also
checks each copied object's hash against the store's), `--retries 5 --low-level-retries 10`, and
the outputs upload is followed by `rclone check --one-way`. Objects over the upload cutoff go up in
parts (rclone's defaults). Credentials: s3 `env_auth` (the SDK chain: instance profile, web
identity, a local login's AWS_*), gcs the machine's Application Default Credentials (no key file),
azureblob `env_auth` where rclone has it, else `use_msi` (the VM's managed identity). Emulators and
S3-compatible servers are reached by the standard settings: AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL
(provider Other, path style), STORAGE_EMULATOR_HOST (gcs endpoint, anonymous) and
AZURE_STORAGE_CONNECTION_STRING (its account, key and BlobEndpoint, read at run time).

Tools the machine needs: bash, coreutils and rclone; a missing one is reported by name.
`cloud_init` installs rclone from the distribution's archive where the image lacks it (apt verifies
the archive's signature, so no hash is pinned by hand; the official .deb would need a pinned
SHA-256 updated with every release). Azure managed identity needs rclone >= 1.55 (`use_msi`);
Ubuntu 22.04's archive has 1.53, Debian 12 and Ubuntu 24.04 have 1.60.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import re
import shlex
from collections.abc import Sequence

import jinja2
import yaml

from skyplan.assets import templates_dir
from skyplan.endstep import CEILING_UNIT, END_MACHINE_PATH, ceiling_units
from skyplan.errors import RenderError
from skyplan.hcl import cloud_name
from skyplan.models import Task

# Largest user data each cloud accepts, in bytes of the decoded (pre-base64) text:
# - aws: "User data is limited to 16 KB, in raw form, before it is base64-encoded."
#   https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html
# - azure: customData "The maximum length of the binary array is 65535 bytes."
#   https://learn.microsoft.com/en-us/rest/api/compute/virtual-machines/create-or-update (OSProfile)
# - gcp: a metadata value (user-data) "must be less than or equal to 262144 bytes (256 KiB)".
#   https://cloud.google.com/compute/docs/reference/rest/v1/instances (metadata.items.value)
USER_DATA_LIMITS: dict[str, int] = {"aws": 16384, "azure": 65535, "gcp": 262144}

EXECUTOR_PATH = "/var/lib/skyplan/executor.sh"
STORAGE_FILE = "/etc/skyplan/storage"
NODE_RANK_FILE = "/etc/skyplan/node-rank"

_INSTALL_RCLONE = (
    "command -v rclone >/dev/null || { apt-get update -qq && "
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rclone; }"
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Names the executor sets for the user's commands. SKYPILOT_* is otherwise left to the user:
# real SkyPilot files carry envs such as SKYPILOT_DOCKER_USERNAME.
_RESERVED_PREFIX = "SKYPLAN_"
_RESERVED_NAMES = frozenset({"SKYPILOT_NODE_RANK", "SKYPILOT_NUM_NODES", "SKYPILOT_NODE_IPS",
                             "SKYPILOT_NUM_GPUS_PER_NODE", "SKYPILOT_TASK_ID"})
# file_mounts sources the executor copies itself, with the machine's identity (the staging area's
# schemes); every other `scheme://` is refused, and a path without one is a local path to stage.
_BUCKET_SOURCE = re.compile(r"(s3://|gs://|https://[a-z0-9]+\.blob\.core\.windows\.net/)[^/]")


def task_slug(name: str) -> str:
    """The storage key and work-dir name of a task: `cloud_name(name)` (stable, unique, safe)."""
    return cloud_name(name)


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("executor.sh.j2")


def _shell_word(task: Task, what: str, value: str) -> str:
    """Quote `value` as one bash word whose value is exactly `value` (POSIX single quotes)."""
    if "\x00" in value:
        raise RenderError(f"task {task.name!r}: {what} contains a NUL byte, which bash cannot hold")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RenderError(f"task {task.name!r}: {what} is not valid Unicode text ({exc.reason})") from None
    # shlex.quote wraps in '…' and writes ' as '"'"'; inside single quotes bash takes every
    # byte literally (newlines, $, `, \, heredoc markers). Tested in tests/test_escaping.py.
    return shlex.quote(value)


def _check_name(task: Task, kind: str, name: str) -> None:
    if not _ENV_NAME.match(name):
        raise RenderError(
            f"task {task.name!r}: {kind} name {name!r} is not a valid environment variable name "
            "(letters, digits and _, not starting with a digit)"
        )
    if name.startswith(_RESERVED_PREFIX) or name in _RESERVED_NAMES:
        raise RenderError(
            f"task {task.name!r}: {kind} name {name!r} is reserved: the executor sets SKYPLAN_* "
            "and SkyPilot's " + ", ".join(sorted(_RESERVED_NAMES)) + " itself"
        )


def is_bucket_source(task: Task, source: str) -> bool:
    """Whether a `file_mounts` source is a bucket URI (True) or a local path to stage (False).

    `file://PATH` counts as the local path PATH.

    Raises:
        RenderError: another `scheme://` (http, r2, cos, …), or a URI carrying credentials.
    """
    if _BUCKET_SOURCE.match(source):
        if "?" in source or "@" in source.partition("://")[2].partition("/")[0] or "\n" in source:
            raise RenderError(
                f"task {task.name!r}: file_mounts source {source!r} must not carry credentials (query "
                "string or user@) or line breaks; the machine's identity grants access to the bucket"
            )
        return True
    if "://" in source and not source.startswith("file://"):
        raise RenderError(
            f"task {task.name!r}: file_mounts source {source!r} is not supported yet: give a local path, "
            "s3://, gs:// or https://<account>.blob.core.windows.net/<container>/…"
        )
    return False


def _mounts(task: Task) -> list[tuple[str, str, str]]:
    """(kind, source word, remote path word) per file mount, for the template."""
    mounts = []
    for i, (remote, source) in enumerate(task.file_mounts):
        if not remote:
            raise RenderError(f"task {task.name!r}: a file_mounts remote path is empty")
        dst_q = _shell_word(task, f"file_mounts path {remote!r}", remote)
        if is_bucket_source(task, source):
            mounts.append(("bucket", _shell_word(task, f"file_mounts source {source!r}", source), dst_q))
        else:
            mounts.append(("staged", f'"$STORAGE/$TASK_SLUG/mounts/{i}"', dst_q))
    return mounts


def executor_script(task: Task, *, plan_name: str, upstream: Sequence[str]) -> str:
    """Render the bash executor for `task` (contract in this module's docstring).

    Args:
        task: the task; its `setup`, `run`, `envs`, `file_mounts` paths and URIs reach bash byte
            for byte. Its `workdir` and local mount sources are only flags here: the executor
            reads what `skyplan.staging.stage_task` uploaded.
        plan_name: the spec's name (appears only as a slug, in a comment).
        upstream: names of the tasks whose outputs this task reads (order does not matter).

    Returns:
        The script text. Deterministic: same input ⇒ same bytes.

    Raises:
        RenderError: an env or secret name bash cannot export or that is reserved, a name in
            both `envs` and `secrets`, text holding a NUL byte or a lone surrogate, or a
            `file_mounts` source `is_bucket_source` refuses.
    """
    for name, _ in task.envs:
        _check_name(task, "env", name)
    for name in task.secrets:
        _check_name(task, "secret", name)
    both = sorted({n for n, _ in task.envs} & set(task.secrets))
    if both:
        raise RenderError(f"task {task.name!r}: {', '.join(both)} is both an env and a secret")
    # `NAME=value` as one word: the executor hands these to `env`, never to its own shell.
    envs = [_shell_word(task, f"env {n}", f"{n}={v}") for n, v in sorted(dict(task.envs).items())]
    text = _template().render(
        task_slug=task_slug(task.name),
        plan_slug=cloud_name(plan_name),
        task_name_q=_shell_word(task, "the task name", task.name),
        task_name_json_q=shlex.quote(json.dumps(task.name, ensure_ascii=True)),
        num_nodes=int(task.num_nodes),
        envs=envs,
        secrets=sorted(set(task.secrets)),
        upstream=sorted({task_slug(u) for u in upstream}),
        setup_q=None if task.setup is None else _shell_word(task, "setup", task.setup),
        run_q=None if task.run is None else _shell_word(task, "run", task.run),
        workdir=task.workdir is not None,
        mounts=_mounts(task),
    )
    return text


def _gzip_b64(data: bytes) -> str:
    # mtime=0 and no file name in the header: the same script always gives the same bytes.
    return base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0)).decode("ascii")


def _check_storage_uri(storage: str, task_name: str) -> None:
    if "?" in storage or re.match(r"[a-z0-9+.-]+://[^/]*@", storage):
        raise RenderError(
            f"task {task_name!r}: storage URI must not carry credentials (query string or user@); "
            "the VM's identity grants access to the bucket"
        )
    if "\n" in storage or "\r" in storage:
        raise RenderError(f"task {task_name!r}: storage URI {storage!r} contains a line break")


def cloud_init(
    script: str,
    *,
    task_name: str,
    plan_name: str,
    storage: str | None = None,
    node_rank: int | None = None,
    ceiling_s: int | None = None,
    end_machine: str | None = None,
) -> str:
    """Wrap an executor script in a `#cloud-config` document that writes and runs it at boot.

    The script goes to `/var/lib/skyplan/executor.sh` (mode 0755) through `write_files` with
    `encoding: gz+b64`, and `runcmd` runs it with SKYPLAN_SHUTDOWN=1 (stdout and stderr reach
    cloud-init's output log and the serial console). `power_state` powers the VM off after
    cloud-init's final stage even if the executor never got to it. The document is pure ASCII
    (user text only inside base64), so HCL escaping and Terraform's Unicode normalisation cannot
    change it.

    Args:
        script: the executor script, from `executor_script`.
        task_name, plan_name: appear only as slugs, in a comment.
        storage: if given, written to `/etc/skyplan/storage` for the executor to read.
        node_rank: if given, written to `/etc/skyplan/node-rank` (multi-node tasks).
        ceiling_s: if given, a systemd timer ends the VM this many seconds after boot
            (`skyplan.endstep`), armed before the executor starts.
        end_machine: if given, the cloud's end script (`skyplan.endstep.END_MACHINE`), written
            to `END_MACHINE_PATH`; the executor and the ceiling timer run it before powering off.

    Raises:
        RenderError: `storage` carries credentials or a line break.
    """
    files: list[dict[str, object]] = []
    if storage is not None:
        _check_storage_uri(storage, task_name)
        files.append({"path": STORAGE_FILE, "permissions": "0644", "content": storage})
    if node_rank is not None:
        files.append({"path": NODE_RANK_FILE, "permissions": "0644", "content": f"{int(node_rank)}\n"})
    files.append(
        {
            "path": EXECUTOR_PATH,
            "permissions": "0755",
            "encoding": "gz+b64",
            "content": _gzip_b64(script.encode("utf-8")),
        }
    )
    # The one data mover (see the module docstring), from the image's archive where it is missing.
    runcmd: list[list[str]] = [["sh", "-c", _INSTALL_RCLONE]]
    if end_machine is not None:
        files.append({"path": END_MACHINE_PATH, "permissions": "0755", "content": end_machine})
    if ceiling_s is not None:
        for unit, text in ceiling_units(ceiling_s, end_machine=end_machine is not None).items():
            files.append({"path": f"/etc/systemd/system/{unit}", "permissions": "0644", "content": text})
        runcmd += [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", f"{CEILING_UNIT}.timer"]]
    doc = {
        "write_files": files,
        # A list runs without a shell; `env` sets the variable for the executor alone.
        "runcmd": [*runcmd, ["env", "SKYPLAN_SHUTDOWN=1", EXECUTOR_PATH]],
        # Backstop: if the executor dies before its own shutdown, the VM still stops billing.
        "power_state": {
            "mode": "poweroff",
            "condition": True,
            "timeout": 120,
            "message": "skyplan task finished",
        },
    }
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=False, width=1 << 30, default_flow_style=False)
    header = f"#cloud-config\n# skyplan task {task_slug(task_name)} of plan {cloud_name(plan_name)}\n"
    return header + body


def check_user_data(cloud: str, text: str, *, task_name: str) -> None:
    """Raise RenderError if `text` is over `cloud`'s user-data limit; other targets have none.

    The message names the task, the cloud, the size and the limit, and says what to do.
    """
    limit = USER_DATA_LIMITS.get(cloud)
    if limit is None:
        return
    size = len(text.encode("utf-8"))
    if size > limit:
        raise RenderError(
            f"task {task_name!r}: its cloud-init user data is {size:,} bytes, over {cloud}'s limit of "
            f"{limit:,} bytes (before base64). Move large setup/run scripts into files (the task's "
            "workdir or an input staged in storage) and keep setup/run to short commands that call them."
        )
