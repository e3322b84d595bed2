"""checkov over the stacks of the examples and of the render scenarios (GCP GPUs and a TPU slice,
all three clouds together): every failed check is fixed or listed, with a one-line reason, in
tests/checkov-skips.yaml — and every listed check still fails somewhere, so the list stays short."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from test_render import rendered
from tools import require_tool

from skyplan.outdir import write_output
from skyplan.pipeline import compile_plan

REPO = Path(__file__).resolve().parent.parent
SKIPS = REPO / "tests" / "checkov-skips.yaml"
CLOUDS = ("aws", "gcp", "azure")


def _checkov() -> str:
    return require_tool("checkov", os.environ.get("SKYPLAN_CHECKOV"))


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Counter[str]]:
    """check id → number of failures, per cloud, over every stack."""
    exe = _checkov()
    root = tmp_path_factory.mktemp("checkov")
    for example in ("ml-pipeline", "eu-residency"):
        compile_plan(REPO / "examples" / f"{example}.yaml", root / example)
    for scenario in ("gcp_gpus", "mixed"):
        write_output(rendered(scenario), root / scenario)
    found: dict[str, Counter[str]] = {c: Counter() for c in CLOUDS}
    stacks = sorted(p.parent for p in root.glob("*/*/terraform.tf") if p.parent.name in CLOUDS)
    assert {s.name for s in stacks} == set(CLOUDS)
    for stack in stacks:
        proc = subprocess.run([exe, "-d", str(stack), "--framework", "terraform", "--quiet", "--compact",
                               "-o", "json"], capture_output=True, text=True, timeout=600)
        assert proc.returncode in (0, 1), proc.stderr  # 1: some check failed
        doc = json.loads(proc.stdout)
        for report in doc if isinstance(doc, list) else [doc]:
            results = report.get("results", {}) if isinstance(report, dict) else {}
            summary = report.get("summary", {}) if isinstance(report, dict) else {}
            assert summary.get("passed", 0) > 0, f"{stack}: checkov passed nothing; did it read the stack?"
            for check in results.get("failed_checks", []):
                found[stack.name][check["check_id"]] += 1
    return found


def test_every_failed_check_is_fixed_or_listed(failed: dict[str, Counter[str]]) -> None:
    skips = yaml.safe_load(SKIPS.read_text())
    unlisted = {c: sorted(set(ids) - set(skips)) for c, ids in failed.items()}
    assert not any(unlisted.values()), f"failed checks neither fixed nor in {SKIPS.name}: {unlisted}"


def test_every_listed_check_still_fails(failed: dict[str, Counter[str]]) -> None:
    skips = yaml.safe_load(SKIPS.read_text())
    assert all(isinstance(v, str) and v.strip() and "\n" not in v for v in skips.values())
    seen = set().union(*failed.values())
    assert sorted(set(skips) - seen) == [], "listed checks that no longer fail: remove them"


def test_audit_findings_are_fixed(failed: dict[str, Counter[str]]) -> None:
    # TPU VMs without external IPs; Azure VMs allow no extensions.
    assert failed["gcp"]["CKV2_GCP_32"] == 0
    assert failed["azure"]["CKV_AZURE_50"] == 0
    # No stack uses the project's default network.
    for scenario in ("gcp_gpus", "mixed"):
        main = rendered(scenario)["gcp/main.tf"].decode()
        assert not re.search(r'network\s*=\s*"default"', main)
        assert main.count("network               = google_compute_network.node[0].self_link") == main.count('source    = "../modules/gcp-node')
        assert "enable_external_ips = true" not in main
