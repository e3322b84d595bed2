"""How a cloud VM leaves billing when its task ends or its ceiling is reached, nobody watching.

Two pieces go into the task's cloud-init (`skyplan.executor.cloud_init`):

- `END_MACHINE_PATH`, a per-cloud script that releases the VM through the VM's own identity
  before it powers off, on the clouds where powering off alone keeps billing:
  Azure deallocates the VM (a VM stopped from inside stays allocated and billed; REST
  `virtualMachines/deallocate` with an IMDS token, the identity holding a role scoped to the VM),
  GCP deletes the VM with its boot disk (a stopped VM still bills its disk; REST
  `instances.delete` with a metadata-server token, the service account holding a role on that
  instance only). AWS needs none: `instance_initiated_shutdown_behavior = "terminate"`.
  The executor runs it at the end of the task, just before `shutdown -h now`.
- a systemd timer, `skyplan-ceiling.timer`, firing `ceiling_s` after boot (again after a reboot),
  whose service runs the same end script and then powers off: the cloud-side ceiling on clouds
  without a run-time limit of their own (GCP's `max_run_duration` is set in the stack too).

Both scripts retry for about a minute (a role assignment may still be propagating) and fail
quietly: power-off follows regardless, and `skyplan apply` destroys whatever is left.
"""

from __future__ import annotations

END_MACHINE_PATH = "/var/lib/skyplan/end-machine"
CEILING_UNIT = "skyplan-ceiling"

_AZURE = """#!/bin/bash
# skyplan: deallocate this VM through its managed identity; powering off alone keeps it allocated.
imds=http://169.254.169.254/metadata
for _ in 1 2 3 4 5; do
  token="$(curl -sf -H Metadata:true "$imds/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F" | sed -n 's/.*"access_token": *"\\([^"]*\\)".*/\\1/p')"
  rid="$(curl -sf -H Metadata:true "$imds/instance/compute/resourceId?api-version=2021-02-01&format=text")"
  if [[ -n "$token" && "$rid" == /subscriptions/* ]] &&
    curl -sf -X POST -H "Authorization: Bearer $token" -H "Content-Length: 0" \\
      "https://management.azure.com$rid/deallocate?api-version=2024-07-01" >/dev/null; then
    exit 0
  fi
  sleep 12
done
echo "skyplan: could not deallocate this VM" >&2
exit 1
"""

_GCP = """#!/bin/bash
# skyplan: delete this VM (and its auto-delete boot disk) through its service account; a
# stopped VM still bills for its disk.
md=http://metadata.google.internal/computeMetadata/v1
get() { curl -sf -H Metadata-Flavor:Google "$md/$1"; }
for _ in 1 2 3 4 5; do
  token="$(get instance/service-accounts/default/token | sed -n 's/.*"access_token": *"\\([^"]*\\)".*/\\1/p')"
  name="$(get instance/name)"
  zone="$(get instance/zone)"
  project="$(get project/project-id)"
  if [[ -n "$token" && -n "$name" && -n "$zone" && -n "$project" ]] &&
    curl -sf -X DELETE -H "Authorization: Bearer $token" \\
      "https://compute.googleapis.com/compute/v1/projects/$project/zones/${zone##*/}/instances/$name" >/dev/null; then
    exit 0
  fi
  sleep 12
done
echo "skyplan: could not delete this VM" >&2
exit 1
"""

END_MACHINE: dict[str, str] = {"azure": _AZURE, "gcp": _GCP}


def ceiling_units(ceiling_s: int, *, end_machine: bool) -> dict[str, str]:
    """The systemd timer and service (file name → text) that end the VM `ceiling_s` after boot."""
    end = f"ExecStart=-{END_MACHINE_PATH}\n" if end_machine else ""
    service = (
        "[Unit]\nDescription=skyplan: end this VM at its cloud-side ceiling\n\n"
        f"[Service]\nType=oneshot\n{end}ExecStart=/bin/systemctl poweroff\n"
    )
    timer = (
        "[Unit]\nDescription=skyplan: cloud-side ceiling of this VM\n\n"
        f"[Timer]\nOnBootSec={int(ceiling_s)}s\nAccuracySec=1min\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return {f"{CEILING_UNIT}.service": service, f"{CEILING_UNIT}.timer": timer}
