"""What `terraform plan` would do to a stack, from its JSON: the resource changes by action.

Two forms are read, whichever the file holds:

* `terraform show -json PLANFILE` (one JSON object): `resource_changes[].address` and
  `.change.actions` (`["create"]`, `["update"]`, `["delete"]`, `["delete", "create"]` or
  `["create", "delete"]` for a replacement, `["no-op"]`, `["read"]`);
* `terraform plan -json` (the machine-readable UI, one JSON object per line): the
  `planned_change` messages, `change.resource.addr` and `change.action` (`create`, `update`,
  `delete`, `replace`, `read`, `noop`, `move`, `forget`, `import`).

No-ops and data-source reads are not changes a reviewer approves; they are left out.
"""

from __future__ import annotations

import json
from pathlib import Path

from skyplan.errors import SkyplanError

ACTIONS = ("create", "update", "replace", "delete")  # the order a comment lists them in
_STREAM_ACTIONS = {"create": "create", "update": "update", "delete": "delete", "replace": "replace"}


def _actions(actions: list[str]) -> str | None:
    """The one action a `resource_changes[].change.actions` list stands for (None: not a change)."""
    if set(actions) == {"create", "delete"}:
        return "replace"
    if len(actions) == 1 and actions[0] in ("create", "update", "delete"):
        return actions[0]
    return None


def read_plan_changes(path: str | Path) -> dict[str, list[str]]:
    """Action → the sorted addresses it applies to, from a Terraform plan JSON file (either form)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SkyplanError(f"{path}: no such Terraform plan JSON file") from None
    except UnicodeDecodeError:
        raise SkyplanError(f"{path}: not a JSON file (a binary plan? give `terraform show -json PLANFILE` "
                           "output)") from None
    changes: dict[str, set[str]] = {a: set() for a in ACTIONS}
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and ("resource_changes" in doc or "format_version" in doc):
        for number, rc in enumerate(doc.get("resource_changes") or []):
            try:
                action = _actions(list(rc["change"]["actions"]))
                address = str(rc["address"])
            except (KeyError, TypeError):
                raise SkyplanError(f"{path}: resource_changes[{number}] has no address or change.actions") from None
            if action:
                changes[action].add(address)
        return {a: sorted(v) for a, v in changes.items()}
    seen = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            raise SkyplanError(f"{path}:{number}: not JSON: give `terraform show -json PLANFILE` or "
                               "`terraform plan -json` output") from None
        if not isinstance(msg, dict) or "type" not in msg:
            raise SkyplanError(f"{path}:{number}: not a Terraform JSON message (no `type`)")
        seen = True
        if msg["type"] != "planned_change":
            continue
        try:
            action = _STREAM_ACTIONS.get(msg["change"]["action"])
            address = str(msg["change"]["resource"]["addr"])
        except (KeyError, TypeError):
            raise SkyplanError(f"{path}:{number}: planned_change without change.action or resource.addr") from None
        if action:
            changes[action].add(address)
    if not seen:
        raise SkyplanError(f"{path}: empty; give `terraform show -json PLANFILE` or `terraform plan -json` output")
    return {a: sorted(v) for a, v in changes.items()}
