"""Cross-cloud storage access: short-lived federated credentials, set up by the task's stack.

A task on cloud T whose plan stages data on cloud S != T reaches the storage through S's trust in
T's own workload identity (see README "Cross-cloud storage access"): T's metadata service signs a
short-lived token for the machine's identity, S's STS exchanges it for short-lived credentials,
and S's grant is limited to the plan's prefix. T's stack creates the trust on S (so it holds S's
provider too) in `storage_access.tf`, rendered from `templates/access/<T>_<S>.tf.j2`.

On the machine, cloud-init writes `/etc/skyplan/access.env` (its content is known only when
Terraform runs, so the user data carries ACCESS_TOKEN, which the root stack replaces) and
`/etc/skyplan/access.sh` (`templates/access/refresh.sh`), which fetches the token, writes the
credential files the SDKs and CLIs read, and wraps the executor; a systemd timer refreshes the
token while the task runs.
"""

from __future__ import annotations

import base64
import gzip
from dataclasses import dataclass

from skyplan.targets.cloud import StorageRef

ACCESS_TOKEN = "SKYPLAN_ACCESS_ENV_TOKEN"
ACCESS_ENV = "/etc/skyplan/access.env"
ACCESS_SCRIPT = "/etc/skyplan/access.sh"
TOKEN_FILE = "/run/skyplan/access/token"
GOOGLE_CREDENTIALS = "/run/skyplan/access/google-credentials.json"
# Audiences of the tokens the machines ask their metadata service for.
AWS_AUDIENCE = "sts.amazonaws.com"
# Entra ID tokens for ARM: every managed identity can get one with no app registration; issuer
# https://sts.windows.net/<tenant>/ (v1 tokens), sub = the identity's principal (object) id.
AZURE_TOKEN_RESOURCE = "https://management.azure.com/"
AZURE_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"

# (task cloud, storage cloud) → how the trust is made; the README table says the same.
MECHANISMS: dict[tuple[str, str], str] = {
    ("gcp", "aws"): "IAM role trusting accounts.google.com (AssumeRoleWithWebIdentity), conditions on the "
                    "service account's unique id",
    ("azure", "aws"): "IAM OIDC provider for https://sts.windows.net/<tenant>/ and a role whose conditions name "
                      "the managed identities' principal ids",
    ("aws", "gcp"): "Workload Identity Federation pool with an aws provider, attribute condition on the "
                    "machines' IAM role",
    ("azure", "gcp"): "Workload Identity Federation pool with an OIDC provider for the tenant, attribute "
                      "condition on the managed identities' principal ids",
    ("gcp", "azure"): "federated identity credential (issuer accounts.google.com, subject = the service "
                      "account's unique id) on a user-assigned identity",
}
# Pairs the pinned providers cannot set up, with the reason (apply refuses them by name).
UNSUPPORTED: dict[tuple[str, str], str] = {
    ("aws", "azure"): "Entra ID federates only with an OIDC issuer, and an EC2 machine gets an OIDC token only "
                      "through IAM outbound identity federation (sts:GetWebIdentityToken), which the pinned aws "
                      "provider 6.25 cannot enable (it has no aws_iam_outbound_web_identity_federation)",
}


@dataclass(frozen=True)
class Access:
    """The cross-cloud access of one stack: task cloud → storage cloud."""

    task_cloud: str
    storage: StorageRef

    @property
    def template(self) -> str:
        """File name of its Terraform template in templates/access/."""
        return f"{self.task_cloud}_{self.storage.cloud}.tf.j2"


def cross_cloud_access(task_cloud: str, storage: StorageRef | None) -> Access | None:
    """The Access a stack on `task_cloud` needs for `storage`, or None (same cloud, no storage,
    or a pair in UNSUPPORTED, which apply refuses)."""
    if storage is None or storage.cloud == task_cloud or (task_cloud, storage.cloud) not in MECHANISMS:
        return None
    return Access(task_cloud, storage)


def object_prefix(storage: StorageRef) -> str:
    """The prefix every object of the plan's storage starts with: `prefix/`, or "" for a whole bucket."""
    return f"{storage.prefix}/" if storage.prefix else ""


def gcs_condition(storage: StorageRef) -> str:
    """CEL of a bucket IAM condition admitting the plan's objects and listings under its prefix only
    ("IAM Conditions for Cloud Storage": resource.name and the objectListPrefix attribute)."""
    prefix = object_prefix(storage)
    return (f'resource.name.startsWith("projects/_/buckets/{storage.bucket}/objects/{prefix}") || '
            f'api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("{prefix}")')


_BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"


def blob_condition(storage: StorageRef) -> str | None:
    """ABAC condition (version 2.0) limiting "Storage Blob Data Contributor" on the container to the
    plan's prefix ("Azure role assignment conditions for Blob Storage", example "path" and
    "prefix" conditions); None when the plan uses the whole container."""
    prefix = object_prefix(storage)
    if not prefix:
        return None
    data_actions = " AND ".join(
        f"!(ActionMatches{{'{_BLOBS}/{a}'}})" for a in ("write", "add/action", "delete", "move/action"))
    return (
        f"((!(ActionMatches{{'{_BLOBS}/read'}} AND NOT SubOperationMatches{{'Blob.List'}}) AND {data_actions})"
        f" OR (@Resource[{_BLOBS}:path] StringStartsWith '{prefix}'))"
        f" AND ((!(ActionMatches{{'{_BLOBS}/read'}} AND SubOperationMatches{{'Blob.List'}}))"
        f" OR (@Request[{_BLOBS}:prefix] StringStartsWith '{prefix}'))"
    )


def _refresh_script() -> str:
    from skyplan.assets import templates_dir

    return (templates_dir() / "access" / "refresh.sh").read_text(encoding="utf-8")


_TIMER_UNITS = {
    "skyplan-access.service": "[Unit]\nDescription=skyplan: refresh the cross-cloud storage token\n\n"
                              f"[Service]\nType=oneshot\nExecStart={ACCESS_SCRIPT}\n",
    "skyplan-access.timer": "[Unit]\nDescription=skyplan: refresh the cross-cloud storage token\n\n"
                            "[Timer]\nOnActiveSec=10min\nOnUnitActiveSec=10min\n\n[Install]\nWantedBy=timers.target\n",
}


def with_access(user_data: str) -> str:
    """The cloud-config `user_data` (executor.cloud_init's shape) with access.env (ACCESS_TOKEN),
    access.sh, its refresh timer, and the executor run through access.sh.

    Raises:
        ValueError: the cloud-config has no storage entry or executor command to extend.
    """
    import json

    anchor = "  content: SKYPLAN_STORAGE_TOKEN\n"
    run = "- - env\n  - SKYPLAN_SHUTDOWN=1\n"
    if user_data.count(anchor) != 1 or user_data.count(run) != 1:
        raise ValueError("the executor's cloud-config has an unexpected shape")
    script = base64.b64encode(gzip.compress(_refresh_script().encode(), mtime=0)).decode()
    files = [f"- path: {ACCESS_ENV}\n  permissions: '0600'\n  content: {ACCESS_TOKEN}\n",
             f"- path: {ACCESS_SCRIPT}\n  permissions: '0755'\n  encoding: gz+b64\n  content: {script}\n"]
    files += [f"- path: /etc/systemd/system/{unit}\n  permissions: '0644'\n  content: {json.dumps(text)}\n"
              for unit, text in _TIMER_UNITS.items()]
    commands = ("- - systemctl\n  - daemon-reload\n- - systemctl\n  - enable\n  - --now\n  - skyplan-access.timer\n"
                f"- - {ACCESS_SCRIPT}\n  - env\n  - SKYPLAN_SHUTDOWN=1\n")
    return user_data.replace(anchor, anchor + "".join(files)).replace(run, commands)


# The last resource of each pair's grant: the machines are created after it (the executor reads
# its inputs as soon as a machine boots).
GRANTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("gcp", "aws"): ("aws_iam_role_policy.storage_access",),
    ("azure", "aws"): ("aws_iam_role_policy.storage_access",),
    ("aws", "gcp"): ("google_storage_bucket_iam_member.storage_access",),
    ("azure", "gcp"): ("google_storage_bucket_iam_member.storage_access",),
    ("gcp", "azure"): ("azurerm_federated_identity_credential.storage_access", "azurerm_role_assignment.storage_access"),
}


def render_access(access: Access, values: dict) -> str:
    """`storage_access.tf` of the stack: its template rendered with the stack's template values."""
    import hashlib

    import jinja2

    from skyplan.assets import templates_dir
    from skyplan.hcl import cloud_name, jinja_filters

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "access")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, autoescape=False)
    env.filters.update(jinja_filters())
    plan_name = values["plan_name"]
    digest = hashlib.sha256(plan_name.encode()).hexdigest()[:8]
    own = dict(
        storage=access.storage,
        aws_audience=AWS_AUDIENCE,
        azure_resource=AZURE_TOKEN_RESOURCE,
        azure_exchange=AZURE_EXCHANGE_AUDIENCE,
        token_file=TOKEN_FILE,
        google_credentials=GOOGLE_CREDENTIALS,
        session_name=f"skyplan-{cloud_name(plan_name, max_len=40)}",
        access_name_prefix=f"skyplan-{cloud_name(plan_name, max_len=24)}-",
        pool_id=f"skyplan-{digest}",
        gcs_condition=gcs_condition(access.storage),
        blob_condition=blob_condition(access.storage),
    )
    return env.get_template(access.template).render(**{**values, **own})


def user_data_expression(access: Access | None, slug: str, region_key: str | None) -> str:
    """The root stack's HCL for a task's user data: its cloud-init file, with ACCESS_TOKEN replaced
    by that task's access.env (JSON-quoted, so it stays one YAML scalar) when there is access."""
    text = f'file("${{path.module}}/../cloud-init/{slug}.yaml")'
    if access is None:
        return text
    env = "local.access_env" + (f"[{region_key!r}]".replace("'", '"') if access.task_cloud == "azure" else "")
    return f'replace({text}, "{ACCESS_TOKEN}", jsonencode({env}))'
