"""plan.json / PLAN.md / diff: the external formats reviewers and CI read."""

from __future__ import annotations

import json

import pytest

from skyplan.errors import SkyplanError
from skyplan.models import (
    Candidate,
    CatalogInfo,
    Location,
    Objective,
    Offering,
    Placement,
    ResourceOption,
    SolverStats,
    Spec,
    Task,
    TaskPlacement,
)
from skyplan.planfile import (
    FORMAT_VERSION,
    diff_plans,
    dumps,
    plan_document,
    read_plan,
    summary_markdown,
)

INFO = CatalogInfo(date="2026-11-22", fingerprint="ab" * 32, source="builtin")


def _candidate(task: str, cloud: str, region: str, zone: str | None, itype: str, price: float, hours: float,
               spot: bool = False, accel: str | None = None, count: int = 0) -> Candidate:
    off = Offering(Location(cloud, region, zone), itype, accel, count, 8, 32, price, price / 3)
    return Candidate(task=task, offering=off, spot=spot, hours=hours, hourly_price=price, num_nodes=1,
                     input_egress_cost=0.0)


def _spec(hours_given: bool = True) -> Spec:
    opt = (ResourceOption(),)
    return Spec(
        name="demo",
        tasks=(
            Task(name="prep", options=opt, hours=2, hours_given=hours_given),
            Task(name="train", options=opt, hours=10, hours_given=True, depends_on=("prep",)),
        ),
        budget=800,
        deadline_hours=36,
        source_sha256="cd" * 32,
    )


def _placement(train_zone: str = "use1-az1", train_price: float = 32.77) -> Placement:
    prep = _candidate("prep", "aws", "us-east-1", "use1-az2", "m6i.4xlarge", 0.768, 2)
    train = _candidate("train", "aws", "us-east-1", train_zone, "p4d.24xlarge", train_price, 10, spot=True,
                       accel="A100", count=8)
    return Placement(
        name="demo",
        objective=Objective.COST,
        tasks=(
            TaskPlacement("prep", prep, 0.0, 0.0, 2.0),
            TaskPlacement("train", train, 0.5, 2.01, 12.01),
        ),
        total_cost=prep.compute_cost + train.compute_cost + 0.5,
        makespan_hours=12.01,
        excluded_zones=("use1-az3",),
        solver=SolverStats(status="OPTIMAL", objective=1.0, wall_s=0.0123, variables=10, constraints=5),
        single_region_baseline=("aws:us-east-1", 400.0),
    )


def test_plan_document_has_the_contract_keys():
    doc = plan_document(_spec(), _placement(), INFO)
    for key in ("format_version", "name", "objective", "total_cost", "makespan_hours", "tasks", "excluded_zones",
                "catalog", "solver", "inputs"):
        assert key in doc
    assert doc["format_version"] == FORMAT_VERSION
    task_keys = {"name", "cloud", "region", "zone", "instance_type", "accelerator", "accelerator_count",
                 "num_nodes", "spot", "hours", "compute_cost", "egress_cost"}
    assert all(task_keys <= set(t) for t in doc["tasks"])
    assert {"status", "objective", "gap"} <= set(doc["solver"])
    # A wall-clock figure would make two compiles of the same inputs differ (issue 9 item 6).
    assert "wall_s" not in doc["solver"]
    assert doc["solver"]["status"] == "OPTIMAL" and doc["solver"]["objective"] == 1.0
    assert {"spec_sha256", "catalog_sha256", "exclusions_sha256"} <= set(doc["inputs"])
    assert doc["catalog"] == {"date": "2026-11-22", "fingerprint": "ab" * 32, "source": "builtin"}
    train = next(t for t in doc["tasks"] if t["name"] == "train")
    assert train["zone"] == "use1-az1" and train["spot"] is True and train["accelerator_count"] == 8
    assert train["compute_cost"] == pytest.approx(327.7)


def test_plan_json_is_sorted_and_deterministic():
    text = dumps(plan_document(_spec(), _placement(), INFO))
    assert text == dumps(plan_document(_spec(), _placement(), INFO))
    doc = json.loads(text)
    assert [t["name"] for t in doc["tasks"]] == sorted(t["name"] for t in doc["tasks"])
    # sort_keys: the serialized key order is alphabetical at every level
    assert list(doc) == sorted(doc)
    assert text.endswith("\n")


def test_read_plan_refuses_other_major_versions(tmp_path):
    doc = plan_document(_spec(), _placement(), INFO)
    doc["format_version"] = "2.0"
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    with pytest.raises(SkyplanError, match="format_version 2.0"):
        read_plan(tmp_path)
    with pytest.raises(SkyplanError, match="no plan here"):
        read_plan(tmp_path / "missing")


def test_plan_md_shows_table_totals_constraints_and_savings():
    md = summary_markdown(plan_document(_spec(), _placement(), INFO))
    assert "| train | aws / us-east-1 / use1-az1 | p4d.24xlarge | A100×8 | spot |" in md
    assert "makespan **12 h 1 min**" in md
    assert "- deadline: 36 h" in md and "- budget: $800.00" in md
    assert "- excluded zones: use1-az3" in md
    total = 0.768 * 2 + 327.7 + 0.5
    assert f"Saves **${400 - total:,.2f}**" in md
    assert "2026-11-22" in md


def test_plan_md_flags_default_hours():
    md = summary_markdown(plan_document(_spec(hours_given=False), _placement(), INFO))
    assert "planned as 1 hour" in md
    assert "| prep |" in md and "| 2 h* |" in md


def test_diff_reports_moves_and_cost_delta():
    old = plan_document(_spec(), _placement(), INFO)
    new = plan_document(_spec(), _placement(train_zone="use1-az4", train_price=30.0), INFO)
    diff = diff_plans(old, new)
    assert [c["task"] for c in diff["changes"]] == ["train"]
    change = diff["changes"][0]
    assert change["action"] == "move"
    assert change["fields"]["zone"] == {"old": "use1-az1", "new": "use1-az4"}
    assert change["cost_delta"] == pytest.approx(-27.7)
    assert diff["total_cost_delta"] == pytest.approx(-27.7)
    assert diff_plans(old, old)["changes"] == []
