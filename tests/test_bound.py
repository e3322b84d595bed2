"""The cost bound and its reduced-cost fixing, against every plan of small instances (priced by
the brute-force reference's own real-path arithmetic)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from skyplan.errors import InfeasibleError
from skyplan.models import Location, Objective
from skyplan.optimizer import solve
from skyplan.optimizer.bound import cost_bound
from skyplan.optimizer.heuristic import anchored_choice, plan_cost
from skyplan.optimizer.model import PlacementModel
from skyplan.optimizer.problem import build_problem
from skyplan.optimizer.solve import _optimise
from tests.bruteforce import make_candidate, make_catalog, make_spec, random_instance, structured_instance
from tests.bruteforce import plan_cost as reference_cost

CATALOG = make_catalog()
TOL = 1e-3  # micro-dollars: the bound is float arithmetic over integer costs


def _problem(inst):
    return build_problem(inst.spec, inst.candidates, CATALOG, {})


def _every_plan(prob):
    for choice in itertools.product(*(range(len(cs)) for cs in prob.cands)):
        yield list(choice), plan_cost(prob, list(choice))


def _instances():
    for seed in range(120):
        if seed % 2:
            yield seed, random_instance(seed, max_tasks=6, max_cands=5)
        else:
            yield seed, structured_instance(seed, n_tasks=4)


@pytest.mark.parametrize("seed,inst", list(_instances()), ids=lambda v: str(v) if isinstance(v, int) else "")
def test_bound_holds_and_fixing_keeps_every_plan_within_reach(seed, inst):
    prob = _problem(inst)
    if math.prod(len(cs) for cs in prob.cands) > 60_000:
        pytest.skip("too many plans to enumerate")
    plans = list(_every_plan(prob))
    # The model's integer cost of every plan is the reference's real-path cost (micro-dollar rounding).
    for choice, cost in plans[:2000]:
        assign = {name: prob.cands[i][j] for i, (name, j) in enumerate(zip(prob.task_names, choice, strict=True))}
        assert cost / 1e6 == pytest.approx(reference_cost(inst.spec, CATALOG, assign), abs=1e-6 * prob.n)
    optimum = min(cost for _, cost in plans)
    bound = cost_bound(prob, time_budget_s=5.0, plan=anchored_choice(prob))

    assert bound.lower <= optimum + TOL
    assert bound.upper == plan_cost(prob, bound.plan)
    if bound.proven:
        assert bound.upper == optimum
    # Fixing against any upper value keeps every candidate of every plan that costs no more.
    spread = sorted({cost for _, cost in plans})
    for upper in (optimum, spread[len(spread) // 4], bound.upper):
        kept = [set(row) for row in bound.keep(upper)]
        for choice, cost in plans:
            if cost <= upper:
                assert all(j in kept[i] for i, j in enumerate(choice)), (upper, choice, cost)


def _chain(seed: int, n: int, zones: list[Location]):
    rng = random.Random(seed)
    names = [f"t{i}" for i in range(n)]
    spec = make_spec(
        "chain",
        {t: ((names[i - 1],) if i else ()) for i, t in enumerate(names)},
        {t: float(rng.randint(0, 400)) for t in names},
    )
    cands = {
        t: [make_candidate(t, z, hourly=round(rng.uniform(0.5, 6.0), 3), hours=1.0) for z in zones]
        for t in names
    }
    return spec, cands


@pytest.mark.parametrize("seed", range(10))
def test_bound_is_exact_on_a_chain(seed):
    # Egress is per task on the real path (storage fixed), so the bound is exact on every DAG.
    from tests.bruteforce import LOCATIONS

    spec, cands = _chain(seed, 6, list(LOCATIONS[:5]))
    prob = build_problem(spec, cands, CATALOG, {})
    optimum = min(cost for _, cost in _every_plan(prob))
    bound = cost_bound(prob, time_budget_s=5.0, plan=anchored_choice(prob))
    assert bound.lower == pytest.approx(optimum, abs=TOL)
    assert bound.proven and bound.upper == optimum


def _cold_optimum(prob):
    outcome = _optimise(PlacementModel(prob, with_time=False), Objective.COST, 60.0, 1, 0)
    assert outcome is not None and outcome.status == "OPTIMAL"
    return outcome.result.cost


@pytest.mark.parametrize("seed", range(6))
def test_solve_with_fixing_finds_the_unfixed_optimum_at_scale(seed):
    # 40 tasks over 8 locations with shared price levels: too many plans to enumerate, so the
    # reference is CP-SAT on the whole model. The bound path must reach the same optimum and
    # hand CP-SAT a smaller model.
    rng = random.Random(seed)
    inst = structured_instance(seed, n_tasks=40)
    spec = inst.spec
    for t in spec.tasks[:3]:  # a few tasks with only one location keep the instance uneven
        inst.candidates[t.name] = inst.candidates[t.name][: rng.randint(1, 2)]
    prob = build_problem(spec, inst.candidates, CATALOG, {})
    plan = solve(spec, inst.candidates, CATALOG)
    assert plan.solver.status == "OPTIMAL"
    reference = _cold_optimum(prob)
    assert plan.total_cost == pytest.approx(reference / 1e6, abs=1e-5)
    # The bound sums micro-dollar costs rounded per task.
    assert plan.extras["dual_bound"] <= plan.total_cost + 1e-6 * len(spec.tasks)
    assert plan.solver.candidates_after < sum(len(cs) for cs in prob.cands)


def test_budget_below_the_bound_still_names_the_budget():
    spec, cands = _chain(
        3, 4, [Location("aws", "us-east-1", "use1-az1"), Location("gcp", "us-central1", "us-central1-a")]
    )
    cheapest = solve(spec, cands, CATALOG).total_cost
    tight = make_spec(
        "chain",
        {t.name: t.depends_on for t in spec.tasks},
        {t.name: t.outputs_gb for t in spec.tasks},
        budget=cheapest * 0.5,
    )
    with pytest.raises(InfeasibleError) as err:
        solve(tight, cands, CATALOG)
    assert "budget" in err.value.reasons
    assert f"{cheapest:,.2f}" in str(err.value)
