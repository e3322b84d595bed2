"""Cloud SDKs are optional extras (pyproject `[aws]`, `[gcp]`, `[azure]`): what to say when one is missing.

They are imported lazily, where a command first needs one, so a plain install runs every
local and ssh plan; a missing one is a one-line error naming the extra that brings it.
"""

from __future__ import annotations

from skyplan.errors import SkyplanError

# The pyproject extra that installs each cloud's SDKs.
EXTRA_OF_CLOUD = {"aws": "aws", "gcp": "gcp", "azure": "azure"}


def missing_sdk(cloud: str, packages: str, purpose: str, error: type[SkyplanError] = SkyplanError) -> SkyplanError:
    """The error for `purpose` needing `packages` of `cloud`'s SDK, which are not installed.

    >>> print(missing_sdk("aws", "boto3", "refreshing aws prices"))
    refreshing aws prices needs boto3, which is not installed: pip install 'skyplan[aws]'
    """
    return error(f"{purpose} needs {packages}, which is not installed: pip install 'skyplan[{EXTRA_OF_CLOUD[cloud]}]'")
