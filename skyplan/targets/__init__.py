"""The target registry: name → Target, each imported only when first asked for."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from functools import cache

from skyplan.errors import SkyplanError
from skyplan.targets.base import Target

# name → module defining exactly one Target subclass with that `name`.
_MODULES: dict[str, str] = {
    "aws": "skyplan.targets.aws",
    "gcp": "skyplan.targets.gcp",
    "azure": "skyplan.targets.azure",
    "local": "skyplan.targets.local",
    "ssh": "skyplan.targets.ssh",
}


def target_names() -> tuple[str, ...]:
    """Names of the targets this installation has, in registry order (aws, gcp, azure, local, ssh)."""
    return tuple(name for name, module in _MODULES.items() if importlib.util.find_spec(module) is not None)


def paid_target_names() -> tuple[str, ...]:
    """Targets whose machines cost money (`Target.paid`): the clouds, in registry order."""
    return tuple(name for name in target_names() if get_target(name).paid)


def price_refreshed_names() -> tuple[str, ...]:
    """Targets that `skyplan catalog refresh` can re-price (`Target.refreshes_prices`)."""
    return tuple(name for name in target_names() if get_target(name).refreshes_prices)


@cache
def get_target(name: str) -> Target:
    """The Target called `name` (one shared instance per name).

    Raises:
        SkyplanError: no such target (the message suggests the closest name).
    """
    module_name = _MODULES.get(name)
    if module_name is None or importlib.util.find_spec(module_name) is None:
        close = difflib.get_close_matches(name, list(_MODULES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SkyplanError(f"unknown target {name!r} (known: {', '.join(target_names())}){hint}")
    module = importlib.import_module(module_name)
    for value in vars(module).values():
        if (isinstance(value, type) and issubclass(value, Target) and value.__module__ == module_name
                and getattr(value, "name", None) == name):
            return value()
    raise SkyplanError(f"module {module_name} defines no Target named {name!r}")
