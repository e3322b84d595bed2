"""The optimizer against exhaustive enumeration, plus crafted cases for quotas, pools and errors."""

from __future__ import annotations

import dataclasses
import random

import pytest

from skyplan.errors import InfeasibleError
from skyplan.models import Bandwidth, Location, Objective
from skyplan.optimizer import evaluate, single_region_baseline, solve
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
    random_instance,
)

CATALOG = make_catalog()
AWS_A, AWS_B, AWS_W, GCP_A, GCP_B, GCP_EU, AZ_E, AZ_W = LOCATIONS


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def uses_limits(inst) -> bool:
    return any(k in inst.limits for cs in inst.candidates.values() for c in cs for k, _ in c.quota_usage)


def check_against_bruteforce(spec, inst, objective: Objective, catalog=CATALOG) -> None:
    # With a time model (deadline or quotas) the cost objective breaks ties by makespan.
    tie = objective is Objective.COST and (spec.deadline_hours is not None or uses_limits(inst))
    best = brute_force(
        spec, inst.candidates, catalog, objective=objective, limits=inst.limits, makespan_tiebreak=tie
    )
    if best is None:
        with pytest.raises(InfeasibleError):
            solve(spec, inst.candidates, catalog, objective=objective, limits=inst.limits)
        return
    plan = solve(spec, inst.candidates, catalog, objective=objective, limits=inst.limits)
    assert plan.solver.status == "OPTIMAL"
    assert close(plan.total_cost, best.cost), (plan.total_cost, best.cost)
    if objective is Objective.TIME or tie:
        assert close(plan.makespan_hours, best.makespan), (plan.makespan_hours, best.makespan)
    # The reported totals are those of the reported tasks.
    assignment = {tp.task: tp.candidate for tp in plan.tasks}
    assert close(evaluate(spec, assignment, catalog)[0], plan.total_cost)
    assert close(sum(tp.compute_cost + tp.egress_cost for tp in plan.tasks), plan.total_cost)
    if spec.deadline_hours is not None:
        assert plan.makespan_hours <= spec.deadline_hours + 1e-9
    if spec.budget is not None:
        assert plan.total_cost <= spec.budget + 1e-6


# --- against brute force -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(60))
def test_cost_objective_matches_bruteforce(seed):
    inst = random_instance(seed)
    check_against_bruteforce(inst.spec, inst, Objective.COST)
    plan = solve(inst.spec, inst.candidates, CATALOG)
    # Per-candidate egress is exact: the model's own objective equals the float cost (per-task rounding).
    assert abs(plan.solver.objective - plan.total_cost) <= 1e-5 * (1 + len(inst.spec.edges))


@pytest.mark.parametrize("seed", range(1000, 1050))
def test_time_objective_matches_bruteforce(seed):
    inst = random_instance(seed)
    check_against_bruteforce(inst.spec, inst, Objective.TIME)


@pytest.mark.parametrize("seed", range(2000, 2060))
def test_deadline_and_budget_match_bruteforce(seed):
    rng = random.Random(seed)
    inst = random_instance(seed)
    fastest = brute_force(inst.spec, inst.candidates, CATALOG, objective=Objective.TIME)
    cheapest = brute_force(
        inst.spec, inst.candidates, CATALOG, objective=Objective.COST, makespan_tiebreak=True
    )
    deadline = round(rng.uniform(fastest.makespan * 0.95, cheapest.makespan * 1.05) * 4) / 4
    budget = rng.choice([None, rng.uniform(cheapest.cost * 0.97, fastest.cost * 1.1)])
    spec = dataclasses.replace(inst.spec, deadline_hours=deadline, budget=budget)
    check_against_bruteforce(spec, inst, rng.choice([Objective.COST, Objective.TIME]))


@pytest.mark.parametrize("seed", range(3000, 3060))
def test_quotas_match_bruteforce(seed):
    rng = random.Random(seed)
    inst = random_instance(seed, max_tasks=4, max_cands=4, quotas=True)
    objective = rng.choice([Objective.COST, Objective.TIME])
    spec = inst.spec
    fastest = brute_force(spec, inst.candidates, CATALOG, objective=Objective.TIME, limits=inst.limits)
    if fastest is not None and rng.random() < 0.6:
        cheapest = brute_force(
            spec,
            inst.candidates,
            CATALOG,
            objective=Objective.COST,
            limits=inst.limits,
            makespan_tiebreak=True,
        )
        deadline = round(rng.uniform(fastest.makespan * 0.95, cheapest.makespan * 1.05) * 4) / 4
        spec = dataclasses.replace(spec, deadline_hours=deadline)
    check_against_bruteforce(spec, inst, objective)


@pytest.mark.parametrize("seed", range(4000, 4020))
def test_slow_internet_bandwidth_matches_bruteforce(seed):
    """Bandwidths falling by tier (the default has internet faster than inter-region)."""
    catalog = make_catalog(Bandwidth(same_zone=20.0, cross_zone=10.0, inter_region=5.0, internet=2.5))
    inst = random_instance(seed)
    check_against_bruteforce(inst.spec, inst, Objective.TIME, catalog)


# --- pruning -------------------------------------------------------------------------------------


def _lexicographic_optimum(prob, objective: Objective, with_time: bool):
    model = PlacementModel(prob, with_time=with_time)
    outcome = _optimise(model, objective, 30.0, 2, 0)
    assert outcome is not None and outcome.status == "OPTIMAL"
    return outcome.result.cost, outcome.result.makespan if objective is Objective.TIME or with_time else None


@pytest.mark.parametrize("seed", range(5000, 5110))
def test_pruned_and_unpruned_optima_are_equal(seed):
    rng = random.Random(seed)
    inst = random_instance(seed, max_tasks=8, max_cands=12, quotas=rng.random() < 0.3)
    objective = rng.choice([Objective.COST, Objective.TIME])
    spec = inst.spec
    if rng.random() < 0.3:
        spec = dataclasses.replace(spec, deadline_hours=40.0)
    try:
        prob = build_problem(spec, inst.candidates, CATALOG, inst.limits)
    except InfeasibleError:
        return
    with_time = objective is Objective.TIME or prob.deadline is not None or bool(prob.limits)
    keep = prune(prob, with_time=with_time)
    assert all(keep)
    pruned = _lexicographic_optimum(prob.restrict(keep), objective, with_time)
    full = _lexicographic_optimum(prob, objective, with_time)
    assert pruned == full


def test_pruning_drops_dominated_candidates():
    # Same zone, dearer and slower: gone. Same zone as a neighbour-free task: only the cheapest stays.
    cands = {
        "a": [
            make_candidate("a", AWS_A, hourly=1.0, hours=2),
            make_candidate("a", AWS_A, hourly=2.0, hours=3),
            make_candidate("a", AWS_B, hourly=3.0, hours=2),
            make_candidate("a", GCP_A, hourly=1.5, hours=2),
        ]
    }
    spec = make_spec("p", {"a": ()}, {})
    plan = solve(spec, cands, CATALOG)
    assert plan.solver.candidates_before == 4
    assert plan.solver.candidates_after == 1
    assert plan.task("a").candidate.hourly_price == 1.0


# --- quotas and pools ----------------------------------------------------------------------------


def test_quota_forces_a_different_plan():
    # Two parallel GPU jobs; both want the cheap zone, but its quota holds only one at a time.
    spec = make_spec("q", {"a": (), "b": ()}, {}, objective=Objective.TIME)
    cands = {
        t: [
            make_candidate(t, AWS_A, hourly=10, hours=4, quota=(("aws-gpu", 8),)),
            make_candidate(t, GCP_A, hourly=14, hours=4, quota=(("gcp-gpu", 8),)),
        ]
        for t in ("a", "b")
    }
    free = solve(spec, cands, CATALOG)
    assert {tp.candidate.location for tp in free.tasks} == {AWS_A}
    limited = solve(spec, cands, CATALOG, limits={"aws-gpu": 8, "gcp-gpu": 8})
    assert sorted(tp.candidate.location.cloud for tp in limited.tasks) == ["aws", "gcp"]
    assert limited.makespan_hours == pytest.approx(4.0)
    assert "quota:aws-gpu" in limited.tight_constraints


def test_pool_first_then_cloud():
    pool = Location("ssh", "on-prem", "host1")
    spec = make_spec("pool", {f"t{i}": () for i in range(3)}, {}, deadline=2.0)
    cands = {
        t.name: [
            make_candidate(t.name, pool, hourly=0.0, hours=2, quota=(("pool-host1", 8),)),
            make_candidate(t.name, AWS_A, hourly=3.0, hours=2),
        ]
        for t in spec.tasks
    }
    roomy = solve(spec, cands, CATALOG, limits={"pool-host1": 24})
    assert all(tp.candidate.location == pool for tp in roomy.tasks)
    assert roomy.total_cost == 0.0
    full = solve(spec, cands, CATALOG, limits={"pool-host1": 16})
    assert sorted(tp.candidate.location.cloud for tp in full.tasks) == ["aws", "ssh", "ssh"]
    assert full.total_cost == pytest.approx(6.0)
    # Without a deadline the pool may run them one after another: free, and later.
    serial = solve(dataclasses.replace(spec, deadline_hours=None), cands, CATALOG, limits={"pool-host1": 8})
    assert serial.total_cost == 0.0
    assert serial.makespan_hours == pytest.approx(6.0)
    spans = sorted((tp.start_hours, tp.end_hours) for tp in serial.tasks)
    assert all(a[1] <= b[0] + 1e-9 for a, b in zip(spans, spans[1:], strict=False))


# --- infeasibility -------------------------------------------------------------------------------


def _two_tasks():
    spec = make_spec("x", {"a": (), "b": ("a",)}, {"a": 100.0})
    cands = {
        "a": [make_candidate("a", AWS_A, hourly=10, hours=2)],
        "b": [make_candidate("b", AWS_A, hourly=5, hours=4), make_candidate("b", GCP_A, hourly=20, hours=1)],
    }
    return spec, cands


def test_infeasible_budget_names_the_cheapest_plan():
    spec, cands = _two_tasks()
    with pytest.raises(InfeasibleError) as err:
        solve(dataclasses.replace(spec, budget=30), cands, CATALOG)
    assert err.value.reasons == ("budget",)
    assert err.value.message == "cheapest plan costs $40.00 > budget $30.00"


def test_infeasible_deadline_names_the_fastest_plan():
    spec, cands = _two_tasks()
    with pytest.raises(InfeasibleError) as err:
        solve(dataclasses.replace(spec, deadline_hours=2.5), cands, CATALOG)
    assert err.value.reasons == ("deadline",)
    # a: 2 h; its 100 GB up to the bucket (aws us-east-1) and down to GCP, 80 s each at
    # 10 Gbit/s; b: 1 h.
    assert err.value.message == "fastest plan takes 3.04 h > deadline 2.5 h"


def test_deadline_and_budget_conflict():
    spec, cands = _two_tasks()
    with pytest.raises(InfeasibleError) as err:
        solve(dataclasses.replace(spec, deadline_hours=3.5, budget=45), cands, CATALOG)
    assert err.value.reasons == ("deadline", "budget")
    assert err.value.message.startswith("deadline 3.5 h and budget $45.00 conflict: ")
    assert "cheapest plan within the deadline costs $49.00" in err.value.message


def test_quota_that_cannot_hold_a_task():
    spec, cands = _two_tasks()
    cands["a"] = [make_candidate("a", AWS_A, hourly=10, hours=2, quota=(("aws-g-vcpus", 96),))]
    with pytest.raises(InfeasibleError) as err:
        solve(spec, cands, CATALOG, limits={"aws-g-vcpus": 64})
    assert err.value.reasons == ("quota:aws-g-vcpus",)
    assert err.value.message == "quota aws-g-vcpus (64) cannot hold task 'a' (96) at any time"


def test_quota_and_deadline_conflict():
    spec = make_spec("y", {"a": (), "b": (), "c": ()}, {}, deadline=4)
    cands = {t: [make_candidate(t, AWS_A, hourly=10, hours=2, quota=(("k", 8),))] for t in ("a", "b", "c")}
    with pytest.raises(InfeasibleError) as err:
        solve(spec, cands, CATALOG, limits={"k": 8})
    assert err.value.reasons == ("deadline", "quota:k")
    assert "fastest plan within quota k (8) takes 6 h" in err.value.message
    ok = solve(spec, cands, CATALOG, limits={"k": 16})
    assert ok.makespan_hours == pytest.approx(4.0)


# --- tie-breaks, determinism, hints --------------------------------------------------------------


def test_preference_breaks_cost_ties():
    spec = make_spec("pref", {"a": ()}, {})
    cands = {
        "a": [
            make_candidate("a", AWS_A, hourly=2, hours=2, instance="v100", preference=1),
            make_candidate("a", GCP_A, hourly=1, hours=4, instance="a100", preference=0),
        ]
    }
    assert solve(spec, cands, CATALOG).task("a").candidate.offering.instance_type == "a100"


def test_same_inputs_same_answer():
    inst = random_instance(77, max_tasks=5, max_cands=6)
    plans = [solve(inst.spec, inst.candidates, CATALOG, objective=Objective.TIME) for _ in range(3)]
    assert len({tuple(tp.candidate for tp in p.tasks) for p in plans}) == 1


def test_hint_from_previous_plan_keeps_the_optimum():
    inst = random_instance(12, max_tasks=5, max_cands=6)
    cold = solve(inst.spec, inst.candidates, CATALOG)
    warm = solve(inst.spec, inst.candidates, CATALOG, hint=cold, excluded_zones=["use1-az1"])
    assert close(warm.total_cost, cold.total_cost)
    assert warm.excluded_zones == ("use1-az1",)


# --- explanations --------------------------------------------------------------------------------


def test_pareto_points_are_a_frontier():
    inst = random_instance(21, max_tasks=5, max_cands=6)
    plan = solve(inst.spec, inst.candidates, CATALOG, pareto=True)
    fastest = brute_force(inst.spec, inst.candidates, CATALOG, objective=Objective.TIME)
    cheapest = brute_force(
        inst.spec, inst.candidates, CATALOG, objective=Objective.COST, makespan_tiebreak=True
    )
    points = plan.pareto
    assert 1 <= len(points) <= 6
    assert close(points[0].makespan_hours, fastest.makespan)
    assert close(points[-1].total_cost, cheapest.cost)
    for a, b in zip(points, points[1:], strict=False):
        assert a.makespan_hours < b.makespan_hours and a.total_cost > b.total_cost
    assert close(plan.total_cost, cheapest.cost)  # the chosen plan still follows the objective


def test_runners_up_are_evaluated_alternatives():
    inst = random_instance(5, max_tasks=5, max_cands=6)
    plan = solve(inst.spec, inst.candidates, CATALOG, explain=True)
    chosen = {tp.task: tp.candidate for tp in plan.tasks}
    for r in plan.runners_up:
        assert r.candidate != chosen[r.task]
        cost, span = evaluate(inst.spec, {**chosen, r.task: r.candidate}, CATALOG)
        assert close(cost, r.total_cost) and close(span, r.makespan_hours)
        assert r.total_cost >= plan.total_cost - 1e-6  # the plan is optimal
    multi = {t for t, cs in inst.candidates.items() if len(cs) > 1}
    assert {r.task for r in plan.runners_up} == multi


# --- evaluate and the baseline -------------------------------------------------------------------


def test_evaluate_by_hand():
    # Storage in aws us-east-1: a writes its 100 GB once, b and c read it from there.
    spec = make_spec("e", {"a": (), "b": ("a",), "c": ("a",)}, {"a": 100.0})
    assignment = {
        "a": make_candidate("a", AWS_A, hourly=1, hours=1),  # up in the bucket's region: free
        "b": make_candidate("b", AWS_B, hourly=1, hours=1),  # another zone, same region: free
        "c": make_candidate("c", GCP_A, hourly=1, hours=2),  # down to another cloud: $0.09/GB (AWS bills)
    }
    cost, span = evaluate(spec, assignment, CATALOG)
    assert cost == pytest.approx(1 + 1 + 2 + 100 * 0.09)
    transfer = 100 * 8 / 10 / 3600  # one leg at 10 Gbit/s
    assert span == pytest.approx(1 + 2 * transfer + 2)


def test_evaluate_charges_every_leg_of_the_real_path():
    # Storage on GCP europe-west4; a on AWS writes 50 GB there (AWS internet rate), b on AWS with
    # 3 nodes reads it to each node (GCP internet rate, three times); c in the bucket's region
    # reads it free; b writes 10 GB up (AWS internet), c reads b's output (free).
    spec = make_spec("r", {"a": (), "b": ("a",), "c": ("a", "b")}, {"a": 50.0, "b": 10.0},
                     storage=("gcp", "europe-west4"), nodes={"b": 3})
    gcp_eu = Location("gcp", "europe-west4", "europe-west4-a")
    assignment = {
        "a": make_candidate("a", AWS_A, hourly=1, hours=1),
        "b": make_candidate("b", AWS_B, hourly=1, hours=1, nodes=3),
        "c": make_candidate("c", gcp_eu, hourly=1, hours=1),
    }
    cost, span = evaluate(spec, assignment, CATALOG)
    compute = 1 + 3 + 1
    assert cost == pytest.approx(compute + 50 * 0.09 + 3 * 50 * 0.12 + 10 * 0.09)
    plan = solve(spec, {t: [c] for t, c in assignment.items()}, CATALOG)
    assert plan.task("a").egress_cost == pytest.approx(50 * 0.09)
    assert plan.task("b").egress_cost == pytest.approx(3 * 50 * 0.12 + 10 * 0.09)
    assert plan.task("c").egress_cost == pytest.approx(0.0)
    assert plan.total_cost == pytest.approx(cost)
    # a's 50 GB: up (internet) + down to b (internet), 40 s each; b's 10 GB: up and down, 8 s each.
    leg = 8 / 10 / 3600
    assert span == pytest.approx(max(1 + 2 * 50 * leg + 1 + 2 * 10 * leg, 1 + 2 * 50 * leg) + 1)


def test_storage_of_unknown_region_is_free_within_its_cloud():
    spec = make_spec("u", {"a": (), "b": ("a",)}, {"a": 100.0}, storage=("aws", None))
    far = Location("aws", "us-west-2", "usw2-az1")
    assignment = {"a": make_candidate("a", AWS_A, hourly=1, hours=1), "b": make_candidate("b", far, hourly=1, hours=1)}
    assert evaluate(spec, assignment, CATALOG)[0] == pytest.approx(2.0)
    # With the bucket's region given, b's read crosses regions (AWS inter-region $0.02/GB).
    known = make_spec("k", {"a": (), "b": ("a",)}, {"a": 100.0}, storage=("aws", "us-east-1"))
    assert evaluate(known, assignment, CATALOG)[0] == pytest.approx(2.0 + 100 * 0.02)


def test_single_region_baseline():
    spec = make_spec("s", {"a": (), "b": ("a",)}, {"a": 100.0})
    cands = {
        "a": [make_candidate("a", AWS_A, hourly=1, hours=1), make_candidate("a", GCP_A, hourly=5, hours=1)],
        "b": [make_candidate("b", AWS_B, hourly=1, hours=1), make_candidate("b", GCP_B, hourly=1, hours=1)],
    }
    # Storage in aws us-east-1. aws us-east-1: a in az1, b in az2, both next to the bucket: 1 + 1.
    # gcp: 5 + 1 + 100 GB up to AWS ($0.12/GB, GCP bills) + 100 GB down ($0.09/GB, AWS bills).
    assert single_region_baseline(spec, cands, CATALOG) == ("aws:us-east-1", pytest.approx(2.0))
    plan = solve(spec, cands, CATALOG)
    assert plan.single_region_baseline == ("aws:us-east-1", pytest.approx(2.0))


def test_replan_moves_only_what_it_must():
    # A chain a→b→c plus an independent d, all in one AWS zone; the zone fails.
    zone, other = AWS_A, AWS_B
    spec = make_spec("f", {"a": (), "b": ("a",), "c": ("b",), "d": ()}, {"a": 10.0, "b": 100.0})
    cands = {
        t: [make_candidate(t, zone, hourly=1, hours=1), make_candidate(t, other, hourly=1.5, hours=1)]
        for t in "abcd"
    }
    before = solve(spec, cands, CATALOG)
    assert {tp.candidate.location for tp in before.tasks} == {zone}
    survivors = {t: [c for c in cs if c.location != zone or t == "d"] for t, cs in cands.items()}
    survivors["c"] = cands["c"]  # c's offering in the zone is still there; b's and a's are gone
    after = solve(spec, survivors, CATALOG, hint=before, excluded_zones=["use1-az1"])
    assert after.task("a").candidate.location == other and after.task("b").candidate.location == other
    assert after.task("d").candidate == before.task("d").candidate  # unaffected: kept
    assert after.extras["kept_in_place"] == 1
    assert after.solver.status == "FEASIBLE"  # optimal for the moved tasks only
    # c, next to a moved task, was free to follow it but stays: b's output reaches c through the
    # bucket, which serves both zones of the region alike, so moving would only cost more.
    assert after.task("c").candidate.location == zone


def test_two_workers_find_the_same_optimum():
    inst = random_instance(31, max_tasks=5, max_cands=6)
    one = solve(inst.spec, inst.candidates, CATALOG, workers=1)
    two = solve(inst.spec, inst.candidates, CATALOG, workers=2)
    assert close(one.total_cost, two.total_cost)
    assert two.solver.workers == 2


def test_time_limited_solve_still_returns_a_plan():
    inst = random_instance(44, max_tasks=5, max_cands=6)
    plan = solve(inst.spec, inst.candidates, CATALOG, time_limit_s=0.001)
    assert len(plan.tasks) == len(inst.spec.tasks)
    assert plan.solver.status in ("OPTIMAL", "FEASIBLE")


def test_replan_frees_kept_tasks_when_keeping_them_is_infeasible():
    pool = Location("ssh", "on-prem", "host1")
    spec = make_spec("g", {"a": (), "b": ()}, {}, deadline=2.0)
    q = (("pool-host1", 8.0),)
    cands = {
        "a": [
            make_candidate("a", pool, hourly=0, hours=2, quota=q),
            make_candidate("a", AWS_A, hourly=3, hours=2),
        ],
        "b": [
            make_candidate("b", AWS_B, hourly=1, hours=2),
            make_candidate("b", pool, hourly=0, hours=2, quota=q),
        ],
    }
    limits = {"pool-host1": 8.0}
    before = solve(spec, cands, CATALOG, limits=limits)
    assert before.task("a").candidate.location == pool
    after = solve(spec, {"a": cands["a"], "b": cands["b"][1:]}, CATALOG, limits=limits, hint=before)
    assert after.task("b").candidate.location == pool
    assert after.task("a").candidate.location == AWS_A


# --- the real path on the shipped catalog ------------------------------------------------------


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_the_storage_region_draws_the_tasks_that_move_data(region):
    from skyplan.candidates import build_candidates
    from skyplan.catalog import load_catalog
    from skyplan.spec import load_spec

    text = f"""
name: pull
storage: {{uri: s3://b/p, region: {region}}}
allowed: {{clouds: [aws]}}
tasks:
  - {{name: a, run: echo, hours: 1, outputs_gb: 300}}
  - {{name: b, run: echo, hours: 1, depends_on: [a], num_nodes: 2}}
"""
    spec = load_spec("pull.yaml", text=text)
    catalog = load_catalog()
    plan = solve(spec, build_candidates(spec, catalog), catalog)
    # Outside the bucket's region a costs 300 GB × $0.02 up and b 2 × 300 GB × $0.02 down: more
    # than any region's cheaper compute saves.
    assert {tp.candidate.location.region for tp in plan.tasks} == {region}
    assert all(tp.egress_cost == 0.0 for tp in plan.tasks)
    assert plan.total_cost == pytest.approx(evaluate(spec, {tp.task: tp.candidate for tp in plan.tasks}, catalog)[0])


def test_reading_external_inputs_delays_the_start():
    from skyplan.models import DataInput

    # 450 GB from a GCP bucket to an AWS task: the internet tier, 10 Gbit/s, 360 s = 0.1 h.
    inputs = {"a": (DataInput("gs://raw/x", 450.0, "gcp", "us-central1"),)}
    spec = make_spec("in", {"a": ()}, {}, inputs=inputs, deadline=2.05)
    cands = {"a": [make_candidate("a", AWS_A, hourly=1, hours=2)]}
    assert evaluate(spec, {"a": cands["a"][0]}, CATALOG)[1] == pytest.approx(2.1)
    with pytest.raises(InfeasibleError) as err:
        solve(spec, cands, CATALOG)
    assert err.value.message == "fastest plan takes 2.1 h > deadline 2.05 h"
    # With the deadline met, a starts at 0.1 h, once its input is read.
    plan = solve(dataclasses.replace(spec, deadline_hours=2.1), cands, CATALOG)
    assert plan.task("a").start_hours == pytest.approx(0.1) and plan.makespan_hours == pytest.approx(2.1)
