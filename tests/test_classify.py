"""Failure classification of aws/gcp/azure error texts against real and documented cloud errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from skyplan.models import FailureScope
from skyplan.targets import get_target

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "cloud-errors.yaml"  # provenance: fixtures/README.md


def _cases() -> list[tuple[str, str, str, str]]:
    """(cloud, expected scope, field, text) for every message and terraform text of the fixture."""
    entries = yaml.safe_load(FIXTURE.read_text())
    cases = []
    for i, e in enumerate(entries):
        for field in ("message", "terraform"):
            if e.get(field):
                cases.append(pytest.param(e["cloud"], e["scope"], e["code"], e[field],
                                          id=f"{i:02d}-{e['cloud']}-{e['code']}-{field}"))
    return cases


CASES = _cases()


def test_fixture_covers_every_cloud_and_scope() -> None:
    clouds = {c.values[0] for c in CASES}
    scopes = {c.values[1] for c in CASES}
    assert clouds == {"aws", "gcp", "azure"}
    assert {"zone", "region", "cloud", "none-retry"} <= scopes
    assert len(CASES) >= 28  # 23 entries, 5 of them with a terraform wrapper too


@pytest.mark.parametrize(("cloud", "scope", "code", "text"), CASES)
def test_fixture_entry_is_classified_to_its_scope(cloud: str, scope: str, code: str, text: str) -> None:
    failure = get_target(cloud).classify_failure(text)
    assert failure is not None, f"{cloud} did not recognise: {text[:120]}"
    assert failure.scope == FailureScope(scope)
    assert failure.message == text.strip()
    assert failure.code  # a short name a human can search for


@pytest.mark.parametrize(("cloud", "scope", "code", "text"), CASES)
def test_other_clouds_do_not_claim_it_with_a_different_scope(cloud: str, scope: str, code: str,
                                                             text: str) -> None:
    # The apply loop asks the target that ran the stack; another target must never turn, say, a
    # GCP zone exhaustion into a region or cloud exclusion if asked by mistake.
    for other in {"aws", "gcp", "azure"} - {cloud}:
        failure = get_target(other).classify_failure(text)
        assert failure is None or failure.scope == FailureScope(scope), (other, failure)


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
@pytest.mark.parametrize(
    "text",
    [
        "",
        "Error: Invalid reference\n\nA reference to a resource type must be followed by at least one attribute",
        "Error: Unsupported argument: An argument named \"bogus\" is not expected here.",
        "exit status 1",
        "task train failed: run exited with 3",
    ],
)
def test_unrecognised_text_gives_none(cloud: str, text: str) -> None:
    assert get_target(cloud).classify_failure(text) is None


def test_global_quota_rules_out_the_cloud_but_regional_quota_only_the_region() -> None:
    gcp = get_target("gcp")
    assert gcp.classify_failure("Quota 'NVIDIA_A100_GPUS' exceeded.  Limit: 0.0 in region us-central1.").scope \
        == FailureScope.REGION
    assert gcp.classify_failure("Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 1.0 globally.").scope \
        == FailureScope.CLOUD


def test_aws_codes_are_matched_inside_the_provider_wrapper() -> None:
    aws = get_target("aws")
    wrapped = ("creating EC2 Instance: operation error EC2: RunInstances, https response error StatusCode: 400, "
               "RequestID: x, api error InsufficientInstanceCapacity: whatever the message says")
    failure = aws.classify_failure(wrapped)
    assert failure is not None
    assert (failure.scope, failure.code) == (FailureScope.ZONE, "InsufficientInstanceCapacity")
