"""Shared test helper: external tools (shellcheck, cloud-init, sshd, terraform) the tests drive."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, path: str | None = None) -> str:
    """Return the tool's path. Missing: skip on a developer machine, FAIL in CI (CI=true), where
    `.ci/run` installs every tool — a silently skipped check would prove nothing."""
    found = path if path and os.path.exists(path) else shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (`.ci/run` installs it: apt-get install {name})"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)
