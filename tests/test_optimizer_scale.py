"""The optimizer at scale: model size, location-level pruning, and pruned-vs-unpruned optima."""

from __future__ import annotations

import dataclasses
import random

import pytest

from skyplan.errors import InfeasibleError
from skyplan.models import Location, Objective
from skyplan.optimizer import solve
from skyplan.optimizer.heuristic import anchored_choice, plan_cost
from skyplan.optimizer.model import PlacementModel
from skyplan.optimizer.problem import build_problem
from skyplan.optimizer.prune import prune
from skyplan.optimizer.solve import _optimise
from tests.bruteforce import (
    LOCATIONS,
    brute_force,
    make_candidate,
    make_catalog,
    make_spec,
    structured_instance,
)

CATALOG = make_catalog()


def _optimum(prob, objective: Objective, with_time: bool):
    outcome = _optimise(PlacementModel(prob, with_time=with_time), objective, 30.0, 1, 0)
    assert outcome is not None and outcome.status == "OPTIMAL"
    return outcome.result.cost, (outcome.result.makespan if with_time else None)


def test_model_grows_with_candidates_plus_edges_times_locations():
    # A chain whose every task may run in any of 40 zones: a pairwise model would need
    # E·C² = 29·1600 product terms; this one stays linear in n·C + E·L.
    zones = [
        Location(cloud, f"{cloud}-r{r}", f"{cloud}-r{r}-z{z}")
        for cloud in ("aws", "gcp")
        for r in range(4)
        for z in range(5)
    ]
    rng = random.Random(7)
    names = [f"t{i}" for i in range(30)]
    spec = make_spec(
        "big", {t: ((names[i - 1],) if i else ()) for i, t in enumerate(names)}, {t: 100.0 for t in names}
    )
    cands = {t: [make_candidate(t, z, hourly=rng.uniform(1, 2), hours=1) for z in zones] for t in names}
    prob = build_problem(spec, cands, CATALOG, {})
    variables, constraints = PlacementModel(prob, with_time=True).counts()
    n_c = len(names) * len(zones)
    e_l = (len(names) - 1) * len(zones)
    assert variables <= 2 * (n_c + e_l)
    assert constraints <= 2 * (n_c + e_l)
    assert variables < (len(names) - 1) * len(zones) ** 2 / 10


def test_equally_priced_zones_collapse_to_one():
    spec = make_spec("z", {"a": (), "b": ("a",)}, {"a": 50.0})
    aws_a, aws_b = LOCATIONS[0], LOCATIONS[1]
    cands = {
        t: [make_candidate(t, aws_a, hourly=2, hours=1), make_candidate(t, aws_b, hourly=2, hours=1)]
        for t in "ab"
    }
    plan = solve(spec, cands, CATALOG)
    assert plan.solver.candidates_after == 2
    assert plan.task("a").candidate.location == plan.task("b").candidate.location
    assert plan.total_cost == pytest.approx(4.0)


def test_dearer_region_is_dropped_and_the_bucket_region_decides():
    east, west = LOCATIONS[0], LOCATIONS[2]  # aws us-east-1 and us-west-2
    spec = make_spec("r", {"a": (), "b": ("a",)}, {"a": 50.0})
    cands = {
        t: [make_candidate(t, east, hourly=1, hours=1), make_candidate(t, west, hourly=2, hours=1)]
        for t in "ab"
    }
    prob = build_problem(spec, cands, CATALOG, {})
    keep = prune(prob, with_time=False)
    assert [[prob.cands[i][j].location for j in k] for i, k in enumerate(keep)] == [[east], [east]]
    # With the bucket in the west, a's output goes there wherever its reader runs:
    # a in the east: $1 + 100 GB up inter-region ($2) > a in the west: $2, so the east goes.
    spec = make_spec("r", {"a": (), "b": ("a",)}, {"a": 100.0}, storage=("aws", "us-west-2"))
    cands["b"] = [make_candidate("b", west, hourly=2, hours=1)]
    prob = build_problem(spec, cands, CATALOG, {})
    keep = prune(prob, with_time=False)
    assert [prob.cands[0][j].location for j in keep[0]] == [west]
    assert solve(spec, cands, CATALOG).task("a").candidate.location == west


@pytest.mark.parametrize("seed", range(60))
def test_structured_pruned_equals_unpruned(seed):
    rng = random.Random(seed)
    inst = structured_instance(seed, n_tasks=rng.randint(3, 9), quotas=rng.random() < 0.3)
    objective = rng.choice([Objective.COST, Objective.TIME])
    spec = inst.spec
    if rng.random() < 0.3:
        spec = dataclasses.replace(spec, deadline_hours=30.0)
    try:
        prob = build_problem(spec, inst.candidates, CATALOG, inst.limits)
    except InfeasibleError:
        return
    with_time = objective is Objective.TIME or prob.deadline is not None or bool(prob.limits)
    keep = prune(prob, with_time=with_time)
    assert sum(map(len, keep)) <= sum(map(len, prob.cands))
    try:
        full = _optimum(prob, objective, with_time)
    except AssertionError:
        return  # infeasible (deadline): nothing to compare
    assert _optimum(prob.restrict(keep), objective, with_time) == full


@pytest.mark.parametrize("seed", range(100, 115))
def test_structured_matches_bruteforce(seed):
    inst = structured_instance(seed, n_tasks=3)
    for objective in (Objective.COST, Objective.TIME):
        best = brute_force(inst.spec, inst.candidates, CATALOG, objective=objective)
        plan = solve(inst.spec, inst.candidates, CATALOG, objective=objective)
        assert plan.total_cost == pytest.approx(best.cost, rel=1e-6)
        if objective is Objective.TIME:
            assert plan.makespan_hours == pytest.approx(best.makespan, rel=1e-6)


def test_medium_dag_is_proven_optimal_and_beats_the_starting_plan():
    inst = structured_instance(9, n_tasks=60)
    prob = build_problem(inst.spec, inst.candidates, CATALOG, {})
    start = plan_cost(prob, anchored_choice(prob))
    plan = solve(inst.spec, inst.candidates, CATALOG)
    assert plan.solver.status == "OPTIMAL"
    assert plan.solver.objective * 1e6 <= start + 1
    assert abs(plan.solver.objective - plan.total_cost) < 1e-4 * (1 + len(inst.spec.edges))
