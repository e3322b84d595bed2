"""examples/ci/: both workflows parse, and every `skyplan …` command they run works as written.

The commands are taken from the YAML (GitHub `run:` steps, GitLab `script:` lines), their
variables replaced by the workflow's own values — except the backend, which points at a moto S3
server on loopback — and run in a checkout-like tree holding examples/quickstart.yaml and its
committed plan, in the order the workflow runs them."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.moto_backend import MotoS3, moto_s3  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parent.parent
CI = REPO / "examples" / "ci"
pytestmark = pytest.mark.slow


def github_commands(doc: dict) -> dict[str, list[str]]:
    """Each job's shell lines, in step order."""
    return {name: [line for step in job["steps"] if "run" in step for line in _lines(step["run"])]
            for name, job in doc["jobs"].items()}


def gitlab_commands(doc: dict) -> dict[str, list[str]]:
    return {name: [line for item in job["script"] for line in _lines(item)]
            for name, job in doc.items() if isinstance(job, dict) and "script" in job}


def _lines(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines() if line.strip()]


def skyplan_lines(commands: dict[str, list[str]]) -> dict[str, list[str]]:
    return {job: [line for line in lines if line.startswith("skyplan ")] for job, lines in commands.items()}


def _load(name: str) -> dict:
    # GitHub's `on:` key is YAML 1.1's boolean True for PyYAML; it is the trigger map either way.
    return yaml.safe_load((CI / name).read_text())


def test_github_workflow_shape():
    doc = _load("github-actions.yml")
    triggers = doc.get("on", doc.get(True))
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    apply = doc["jobs"]["apply"]
    assert apply["concurrency"] == {"group": "skyplan-apply", "cancel-in-progress": False}
    assert doc["jobs"]["review"]["permissions"]["pull-requests"] == "write"
    review = " ".join(github_commands(doc)["review"])
    # The comment is found by its marker line and updated in place, else posted.
    assert "head -n 1 skyplan-comment.md" in review and "--method PATCH" in review and "gh pr comment" in review
    lines = skyplan_lines(github_commands(doc))
    assert [line.split()[1] for line in lines["review"]] == ["compile", "diff"]
    assert [line.split()[1] for line in lines["apply"]] == ["compile", "apply"]


def test_gitlab_pipeline_shape():
    doc = _load("gitlab-ci.yml")
    assert doc["skyplan-apply"]["resource_group"] == "skyplan-apply"
    review = " ".join(gitlab_commands(doc)["skyplan-review"])
    assert "head -n 1 skyplan-comment.md" in review and "--request PUT" in review and "--request POST" in review
    lines = skyplan_lines(gitlab_commands(doc))
    assert [line.split()[1] for line in lines["skyplan-review"]] == ["compile", "diff"]
    assert [line.split()[1] for line in lines["skyplan-apply"]] == ["compile", "apply"]


def _expand(line: str, values: dict[str, str]) -> list[str]:
    """The shell words of `line` with `$VAR` / `${VAR}` replaced; output redirection dropped."""
    line = line.split(" > ", 1)[0]
    unknown = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", line)) - set(values)
    assert not unknown, f"{line}: variables the test does not know: {unknown}"
    text = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: values[m.group(1)], line)
    return shlex.split(text)


@pytest.mark.parametrize("workflow", ["github-actions.yml", "gitlab-ci.yml"])
def test_every_skyplan_command_runs(workflow: str, tmp_path: Path, moto_s3: MotoS3):  # noqa: F811
    doc = _load(workflow)
    commands = github_commands(doc) if workflow.startswith("github") else gitlab_commands(doc)
    variables = {k: str(v) for k, v in (doc.get("env") or doc.get("variables")).items()}
    backend = f"s3://{moto_s3.bucket}/{workflow}/quickstart?region=eu-west-1"
    variables["SKYPLAN_BACKEND"] = backend
    env = dict(os.environ, PYTHONPATH=str(REPO), SKYPLAN_LOCAL_SLOTS_DIR=str(tmp_path / "slots"), **moto_s3.env)

    def skyplan(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "skyplan", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)

    # The checkout: the spec where the workflow says, and the plan committed from it.
    checkout = tmp_path / "checkout"
    spec = checkout / variables["SPEC"]
    spec.parent.mkdir(parents=True)
    shutil.copy(REPO / "examples" / "quickstart.yaml", spec)
    res = skyplan("compile", variables["SPEC"], "--backend", backend, "-o", variables["PLAN_DIR"], cwd=checkout)
    assert res.returncode == 0, res.stderr
    # The base branch (`git worktree add base …`) had no plan yet: the diff shows it all added.
    (checkout / "base").mkdir()

    ran = []
    for job, lines in skyplan_lines(commands).items():
        for line in lines:
            argv = _expand(line, variables)
            res = skyplan(*argv[1:], cwd=checkout)
            assert res.returncode == 0, f"{job}: {line}\n{res.stdout}\n{res.stderr}"
            ran.append(argv[1])
            if argv[1] == "diff":
                assert res.stdout.startswith("<!-- skyplan-diff:quickstart -->\n"), res.stdout[:200]
    assert sorted(ran) == ["apply", "compile", "compile", "diff"]
    # The apply kept its Terraform state and its run state in the backend, not on the runner.
    prefix = f"{workflow}/quickstart"
    assert moto_s3.keys(f"{prefix}/") == [f"{prefix}/.skyplan/events.jsonl", f"{prefix}/.skyplan/plan.applied.json",
                                          f"{prefix}/local/terraform.tfstate"]
    assert not (checkout / variables["PLAN_DIR"] / "local" / "terraform.tfstate").exists()
