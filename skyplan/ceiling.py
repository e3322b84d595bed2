"""The cloud-side ceiling of a task's machines: how long a VM may live when nobody watches it.

`skyplan apply` gives a polled cloud task up after `WATCHDOG_FACTOR` × its planned hours plus
`GRACE_H` (skyplan/apply/watch.py `_watchdog_seconds` reads these constants). The same span, rounded up to whole minutes, is armed on the cloud side at boot, so a VM
still ends if the process running `skyplan apply` (or the CI job around it) dies:

- GCP: `scheduling.max_run_duration` with `instance_termination_action = "DELETE"`;
- AWS: a systemd timer armed by cloud-init powers the VM off, which terminates it
  (`instance_initiated_shutdown_behavior = "terminate"`); EC2 has no run-time limit for
  on-demand instances;
- Azure: the same timer runs the VM's end step, which deallocates the VM through its managed
  identity before powering off (Azure has no run-time limit either).
"""

from __future__ import annotations

import math

WATCHDOG_FACTOR = 3.0  # a task may run this many times its planned hours…
GRACE_H = 1.0  # …plus this much for booting, image pulls and setup


def ceiling_seconds(planned_hours: float) -> int:
    """The cloud-side lifetime of a task's VMs, in seconds (a whole number of minutes, ≥ 1 h)."""
    # plan.json keeps hours to 4 decimals and apply's watchdog reads them from there: round alike.
    hours = round(max(float(planned_hours), 0.0), 4)
    seconds = (WATCHDOG_FACTOR * hours + GRACE_H) * 3600.0
    return int(math.ceil(seconds / 60.0)) * 60
