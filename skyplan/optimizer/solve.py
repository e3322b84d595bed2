"""`solve`: prune, model, optimise lexicographically, explain; returns a Placement."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from skyplan.errors import InfeasibleError
from skyplan.models import (
    Candidate,
    Catalog,
    Objective,
    ParetoPoint,
    Placement,
    RunnerUp,
    SolverStats,
    Spec,
    TaskPlacement,
)
from skyplan.optimizer.bound import CostBound, cost_bound
from skyplan.optimizer.evaluate import (
    earliest_schedule,
    evaluate,
    single_region_baseline,
    task_cost,
    task_egress,
)
from skyplan.optimizer.heuristic import anchored_choice, improve, plan_cost
from skyplan.optimizer.model import DETERMINISTIC_PER_WALL_S, PlacementModel, SolveResult
from skyplan.optimizer.problem import (
    COST_UNITS_PER_USD,
    QUOTA_SCALE,
    SECONDS_PER_HOUR,
    Problem,
    build_problem,
    quota_pos,
    quota_unit,
)
from skyplan.optimizer.prune import prune
from skyplan.transfers import outputs_by_task

_TIGHT = 0.005  # a constraint with less than 0.5 % slack is reported as binding
_MAX_PARETO = 6


@dataclass
class _Outcome:
    result: SolveResult  # the last phase's solution
    status: str  # OPTIMAL only when every phase was proven optimal
    objective: float  # primary objective, user units ($ or hours)
    gap: float


def solve(
    spec: Spec,
    candidates: Mapping[str, Sequence[Candidate]],
    catalog: Catalog,
    *,
    objective: Objective | None = None,
    limits: Mapping[str, float] | None = None,
    excluded_zones: Sequence[str] = (),
    hint: Placement | None = None,
    pareto: bool = False,
    explain: bool = False,
    time_limit_s: float = 60.0,
    workers: int = 1,
    seed: int = 0,
) -> Placement:
    """The best placement of every task of `spec` on one of its candidates.

    Minimises total cost (objective cost; ties broken by lower preference, then shorter
    makespan when the model has time) or makespan (objective time; then cost), subject to the
    spec's deadline and budget and to `limits` (quota key → concurrent usage limit). `workers`
    and `seed` are passed to CP-SAT; the default single worker is deterministic and the fastest
    here (see `model._configure`). For fixed inputs the answer is reproducible.
    `time_limit_s` bounds the optimisation (all phases) in wall seconds; CP-SAT stops on a
    deterministic-time share of it first, so a time-limited answer is reproducible too.

    Raises InfeasibleError naming the constraint(s) that leave no plan.
    """
    started = time.perf_counter()
    objective = Objective(objective or spec.objective)
    full = build_problem(spec, candidates, catalog, limits or {})
    before = sum(len(candidates.get(t.name, ())) for t in spec.tasks)
    with_time = objective is Objective.TIME or full.deadline is not None or bool(full.limits) or pareto
    prob, n_fixed = _keep_unaffected(full, hint)
    keep = prune(prob, with_time=with_time)
    sub = prob.restrict(keep)
    pruned_s = time.perf_counter() - started

    start_choice = _hint_choice(spec, sub, hint, objective)
    unfixed = sub  # infeasibility is explained on every candidate, not only those fixing kept
    bound: CostBound | None = None
    if objective is Objective.COST and not pareto:
        # The exact cost bound proves a plan optimal unless a deadline, budget or quota intervenes,
        # and its reduced costs drop every candidate that no plan as cheap can use (see bound.py);
        # CP-SAT then gets a small model.
        bound = cost_bound(sub, time_budget_s=time_limit_s, plan=start_choice)
        survivors = _survivors(sub, bound)
        if survivors is not None:
            keep = [[ks[j] for j in fixed] for ks, fixed in zip(keep, survivors, strict=True)]
            sub = sub.restrict(survivors)
            position = [{j: k for k, j in enumerate(row)} for row in survivors]
            mapped = [position[i].get(j) for i, j in enumerate(bound.plan)]
            start_choice = (
                mapped if all(j is not None for j in mapped) else _hint_choice(spec, sub, hint, objective)
            )
    bound_s = time.perf_counter() - started - pruned_s

    model = PlacementModel(sub, with_time=with_time)
    start_times = _left_justify(sub, start_choice, [0] * sub.n) if with_time else None
    if with_time or hint is not None or bound is not None:
        model.hint(start_choice, [s for s, _ in start_times] if start_times else None)
    built_s = time.perf_counter() - started - pruned_s - bound_s
    fallback = start_choice if _feasible_start(sub, start_choice, start_times) else None
    # The solver gets the whole limit, not what the wall clock left (the bound takes one pass): its
    # deterministic-time limit is derived from it, and must not vary from run to run.
    solver_limit_s = time_limit_s
    outcome = _optimise(
        model,
        objective,
        solver_limit_s,
        workers,
        seed,
        fallback,
        outside=bound.lower if bound is not None else None,
    )
    if outcome is None and n_fixed:
        # Keeping tasks in place made it infeasible: re-plan everything (hint-free).
        return solve(
            spec,
            candidates,
            catalog,
            objective=objective,
            limits=limits,
            excluded_zones=excluded_zones,
            pareto=pareto,
            explain=explain,
            time_limit_s=time_limit_s,
            workers=workers,
            seed=seed,
        )
    if outcome is None:
        raise _explain_infeasible(spec, unfixed, with_time, time_limit_s, seed)
    result = outcome.result
    assert result.choice is not None

    assignment = {
        name: sub.cands[i][j] for i, (name, j) in enumerate(zip(sub.task_names, result.choice, strict=False))
    }
    total_cost, makespan = evaluate(spec, assignment, catalog)
    if sub.limits:
        schedule_s = _left_justify(sub, result.choice, result.start or [0] * sub.n)
        times = {
            name: (s / SECONDS_PER_HOUR, e / SECONDS_PER_HOUR)
            for name, (s, e) in zip(sub.task_names, schedule_s, strict=False)
        }
        makespan = max(e for _, e in times.values())
    else:
        times = earliest_schedule(spec, assignment, catalog)
    outputs = outputs_by_task(spec)
    tasks = tuple(
        TaskPlacement(
            task=t.name,
            candidate=assignment[t.name],
            egress_cost=task_egress(spec, t, assignment[t.name], catalog, outputs),
            start_hours=times[t.name][0],
            end_hours=times[t.name][1],
        )
        for t in spec.tasks
    )
    variables, constraints = model.counts()

    points: tuple[ParetoPoint, ...] = ()
    if pareto:
        points = _pareto(spec, model, catalog, assignment, outcome, time_limit_s, workers, seed)
    runners: tuple[RunnerUp, ...] = ()
    if explain:
        runners = _runners_up(spec, full, catalog, assignment, objective)
    tight = _tight_constraints(spec, sub, total_cost, makespan, times, assignment)

    wall = time.perf_counter() - started
    return Placement(
        name=spec.name,
        objective=objective,
        tasks=tasks,
        total_cost=total_cost,
        makespan_hours=makespan,
        excluded_zones=tuple(sorted(set(excluded_zones))),
        solver=SolverStats(
            # A re-plan that kept tasks in place is optimal only for the tasks it moved.
            status="FEASIBLE" if n_fixed and outcome.status == "OPTIMAL" else outcome.status,
            objective=outcome.objective,
            wall_s=wall,
            gap=outcome.gap,
            variables=variables,
            constraints=constraints,
            candidates_before=before,
            candidates_after=sum(len(k) for k in keep),
            workers=workers,
            seed=seed,
        ),
        tight_constraints=tight,
        runners_up=runners,
        pareto=points,
        single_region_baseline=single_region_baseline(spec, candidates, catalog),
        extras={
            "prune_s": round(pruned_s, 3),
            "bound_s": round(bound_s, 3),
            "build_s": round(built_s, 3),
            "kept_in_place": n_fixed,
            **(
                {
                    "dual_bound": round(bound.lower / COST_UNITS_PER_USD, 6),
                    "dual_iterations": bound.iterations,
                }
                if bound is not None
                else {}
            ),
        },
    )


# --- optimisation ------------------------------------------------------------------------------


def _primary_cost(model: PlacementModel):
    """Cost, with preference as an exact tie-break: cost·K + Σpref where K exceeds any Σpref."""
    pref = model.preference_expr()
    if pref is None:
        return model.cost_expr(), 1
    k = model.max_preference_sum() + 1
    return model.cost_expr() * k + pref, k


def _optimise(
    model: PlacementModel,
    objective: Objective,
    time_limit_s: float,
    workers: int,
    seed: int,
    fallback: list[int] | None = None,
    outside: float | None = None,
) -> _Outcome | None:
    """Lexicographic: the objective first, then the other one with the first held at its optimum.
    `fallback` is a feasible plan to return if the solver finds nothing within the limit.
    `outside` is a lower bound on the cost (micro-dollars) of every plan, including those using
    candidates fixed away before modelling; the reported gap uses it when it is stronger."""
    cost_obj, scale = _primary_cost(model)
    if objective is Objective.TIME:
        first, second = model.makespan, cost_obj
    else:
        first, second = cost_obj, (model.makespan if model.with_time else None)
    r1 = model.solve(first, time_limit_s=time_limit_s, workers=workers, seed=seed)
    if r1.status in ("INFEASIBLE", "MODEL_INVALID"):
        return None
    if r1.choice is None and fallback is not None:
        r1 = _fallback_result(model, fallback, objective, scale, r1)
    elif r1.status == "FEASIBLE" and fallback is not None and not model.with_time:
        # Placement only (the objective is cost): keep the better of the solver's and the starting plan.
        start = _fallback_result(model, fallback, objective, scale, r1)
        if start.objective < r1.objective:
            r1 = start
    if r1.choice is None:
        raise InfeasibleError(
            f"no plan found within the solver time limit ({time_limit_s:g} s); raise time_limit_s",
            ("time-limit",),
        )
    if objective is Objective.TIME:
        primary = r1.makespan / SECONDS_PER_HOUR
    else:
        primary = r1.objective / scale / COST_UNITS_PER_USD
    bound = r1.bound
    if outside is not None and r1.status != "OPTIMAL":
        bound = max(bound, outside * scale)
    gap = abs(r1.objective - bound) / abs(r1.objective) if r1.objective else 0.0
    status, last = r1.status, r1
    # The second phase gets what the first left, counted in deterministic time (reproducible).
    left = time_limit_s * DETERMINISTIC_PER_WALL_S - r1.deterministic_s
    if second is not None and left > 0.05:
        lit = model.bound(first, round(r1.objective))
        model.hint(r1.choice, r1.start)
        r2 = model.solve(
            second,
            time_limit_s=max(time_limit_s - r1.wall_s, 0.1),
            deterministic_s=left,
            workers=workers,
            seed=seed,
        )
        model.release(lit)
        if r2.choice is not None:
            last = r2
        if r2.status != "OPTIMAL":
            status = "FEASIBLE"
    elif second is not None:
        status = "FEASIBLE"
    return _Outcome(last, status, primary, gap)


def _survivors(prob: Problem, bound: CostBound) -> list[list[int]] | None:
    """Per task, the candidates a plan at least as good as the best known can use; None when no
    upper value on the optimum is known (the bound's plan misses the deadline, and no budget).

    The bound relaxes time, so its plan is feasible when it meets the deadline: quotas alone
    never rule a placement out (each candidate fits its quotas alone, so tasks can wait). Every
    feasible plan also costs at most the budget."""
    meets_deadline = (
        prob.deadline is None
        or max((e for _, e in _left_justify(prob, bound.plan, [0] * prob.n)), default=0) <= prob.deadline
    )
    upper = bound.upper if meets_deadline else math.inf
    if prob.budget is not None:
        upper = min(upper, float(prob.budget))
    if math.isinf(upper):
        return None
    survivors = bound.keep(upper)
    if not all(survivors):
        # Nothing fits the budget: keep what the bound's plan allows, so that the solver can still
        # prove it and name the budget (with a deadline that plan may be infeasible: keep all).
        return bound.keep(bound.upper) if meets_deadline else None
    return survivors


def _keep_unaffected(prob: Problem, hint: Placement | None) -> tuple[Problem, int]:
    """Re-plan: keep every task whose previous candidate is still offered where it was, unless
    it is next to a task that must move; only those tasks and their neighbours are re-placed.
    A failover then changes as little as possible (a small Terraform diff) and solves a small
    model. Returns the restricted problem and how many tasks it keeps in place."""
    if hint is None:
        return prob, 0
    previous = {tp.task: tp.candidate for tp in hint.tasks}
    kept = [_position(cs, previous.get(name)) for cs, name in zip(prob.cands, prob.task_names, strict=True)]
    affected = {i for i, j in enumerate(kept) if j is None}
    free = set(affected)
    for e in prob.edges:
        if e.src in affected or e.dst in affected:
            free.update((e.src, e.dst))
    if len(free) == prob.n:
        return prob, 0
    keep = [list(range(len(cs))) if i in free else [kept[i]] for i, cs in enumerate(prob.cands)]
    return prob.restrict(keep), prob.n - len(free)


def _position(cands: Sequence[Candidate], wanted: Candidate | None) -> int | None:
    """Index of `wanted` among `cands` (compared by value: hashing every candidate of a large
    problem costs more than scanning for one)."""
    if wanted is None:
        return None
    return next((j for j, c in enumerate(cands) if c == wanted), None)


def _hint_choice(spec: Spec, prob: Problem, hint: Placement | None, objective: Objective) -> list[int | None]:
    """The previous placement where its candidate survives, else each task's cheapest (fastest)."""
    previous: dict[str, Candidate] = {}
    if hint is not None:
        previous = {tp.task: tp.candidate for tp in hint.tasks}
    choice = [_position(cs, previous.get(name)) for cs, name in zip(prob.cands, prob.task_names, strict=True)]
    if all(j is not None for j in choice):
        return choice
    if objective is Objective.TIME:
        fastest = [
            min(range(len(cs)), key=lambda j, i=i: (prob.dur[i][j], prob.cost[i][j], prob.pref[i][j], j))
            for i, cs in enumerate(prob.cands)
        ]
        return [j if j is not None else f for j, f in zip(choice, fastest, strict=True)]
    if all(j is None for j in choice):
        return anchored_choice(prob)
    # Re-plan: keep what survived, fill the rest with each task's best move given its neighbours.
    greedy = [
        min(range(len(cs)), key=lambda j, i=i: (prob.cost[i][j], prob.pref[i][j], j))
        for i, cs in enumerate(prob.cands)
    ]
    return improve(prob, [j if j is not None else g for j, g in zip(choice, greedy, strict=True)])


def _fallback_result(
    model: PlacementModel, choice: list[int], objective: Objective, scale: int, stopped: SolveResult
) -> SolveResult:
    """The starting plan as a FEASIBLE result, when the solver stopped before finding any."""
    prob = model.prob
    cost = plan_cost(prob, choice)
    times = _left_justify(prob, choice, [0] * prob.n) if model.with_time else None
    makespan = max(e for _, e in times) if times else None
    if objective is Objective.TIME and makespan is not None:
        value = float(makespan)
    else:
        value = float(cost * scale + sum(prob.pref[i][j] for i, j in enumerate(choice)))
    starts = [s for s, _ in times] if times else None
    return SolveResult(
        "FEASIBLE",
        list(choice),
        starts,
        value,
        stopped.bound,
        cost,
        makespan,
        stopped.wall_s,
        stopped.deterministic_s,
    )


def _feasible_start(prob: Problem, choice: list[int], times: list[tuple[int, int]] | None) -> bool:
    """Whether the starting plan (quota-feasible by construction) meets the budget and deadline."""
    if prob.budget is not None and plan_cost(prob, choice) > prob.budget:
        return False
    return prob.deadline is None or times is None or max(e for _, e in times) <= prob.deadline


def _left_justify(prob: Problem, choice: Sequence[int], start: Sequence[int]) -> list[tuple[int, int]]:
    """Serial schedule in the solver's start order: every task as early as precedences and quotas
    allow. Each task starts no later than in the solver's schedule (what ran before it only moved
    earlier), so the makespan does not grow and the deadline still holds."""
    order = sorted(range(prob.n), key=lambda i: (start[i], i))
    preds: list[list] = [[] for _ in range(prob.n)]
    for e in prob.edges:
        preds[e.dst].append(e)
    placed: list[tuple[int, int, dict[str, int]]] = []
    out: list[tuple[int, int]] = [(0, 0)] * prob.n
    for i in order:
        ready = prob.ready[i][choice[i]]
        down_tier = prob.store_tier[i][choice[i]]
        for e in preds[i]:
            up_tier = prob.store_tier[e.src][choice[e.src]]
            ready = max(ready, out[e.src][1] + e.up(up_tier) + e.down(down_tier))
        dur = prob.dur[i][choice[i]]
        use = prob.usage[i][choice[i]]
        t = ready
        if use:
            for t in sorted({ready} | {end for _, end, _ in placed if end > ready}):
                if _fits(placed, t, t + dur, use, prob.limits):
                    break
        out[i] = (t, t + dur)
        placed.append((t, t + dur, use))
    return out


def _fits(placed, start: int, end: int, use: dict[str, int], limits: dict[str, int]) -> bool:
    for key, amount in use.items():
        if key not in limits:
            continue
        # Usage only rises at interval starts: check at this start and every start inside.
        points = [start] + [s for s, _, _ in placed if start < s < end]
        for p in points:
            held = sum(u.get(key, 0) for s, e, u in placed if s <= p < e)
            if held + amount > limits[key]:
                return False
    return True


# --- infeasibility ------------------------------------------------------------------------------


def _explain_infeasible(
    spec: Spec, prob: Problem, with_time: bool, time_limit_s: float, seed: int
) -> InfeasibleError:
    """Name the deadline/budget/quota groups that conflict, from an assumption core of CP-SAT,
    shrunk to a minimal one by dropping each group and re-checking."""
    gm = PlacementModel(prob, with_time=with_time, with_groups=True)
    groups = sorted(gm.groups)
    limit = max(time_limit_s, 1.0)
    r = gm.solve(None, time_limit_s=limit, workers=1, seed=seed, assumptions=groups)
    if r.status != "INFEASIBLE":
        return InfeasibleError("no plan found: the solver stopped before proving anything", ("unknown",))
    core = list(r.core) or groups
    for g in list(core):
        trial = [c for c in core if c != g]
        if gm.solve(None, time_limit_s=limit, workers=1, seed=seed, assumptions=trial).status == "INFEASIBLE":
            core = trial
    if not core:
        return InfeasibleError("no combination of candidates satisfies the tasks' constraints", ())
    core.sort(key=lambda g: ({"deadline": 0, "budget": 1}.get(g, 2), g))

    def best(expr, active: list[str]) -> SolveResult:
        return gm.solve(expr, time_limit_s=limit, workers=1, seed=seed, assumptions=active)

    where = [group_pos(spec, g) for g in core]
    lead = next((w for w in where if w), None)
    # The first located group leads the line (file:line:key); the others say where they are.
    names = [_located(_group_text(spec, prob, g), w if w != lead else None) for g, w in zip(core, where, strict=True)]
    details: list[str] = []
    if "budget" in core:
        r_cost = best(gm.cost_expr(), [g for g in core if g != "budget"])
        if r_cost.cost is not None:
            within = _within(core, "budget", spec, prob)
            details.append(f"cheapest plan{within} costs ${r_cost.cost / COST_UNITS_PER_USD:,.2f}")
    if "deadline" in core:
        r_time = best(gm.makespan, [g for g in core if g != "deadline"])
        if r_time.makespan is not None:
            within = _within(core, "deadline", spec, prob)
            details.append(f"fastest plan{within} takes {_hours(r_time.makespan / SECONDS_PER_HOUR)} h")
    if core == ["budget"] and details:  # one group: "<what the rest allows> > <limit>"
        message = f"{details[0]} > budget ${spec.budget:,.2f}"
    elif core == ["deadline"] and details:
        message = f"{details[0]} > deadline {_hours(spec.deadline_hours or 0)} h"
    else:
        message = " and ".join(names) + " conflict"
        if details:
            message += ": " + "; ".join(details)
    return InfeasibleError(f"{lead}: {message}" if lead else message, tuple(core))


def _located(text: str, where: str | None) -> str:
    """`quota gpus (8 accelerators; spec.yaml:5: quotas[0].accelerators)`."""
    if where is None:
        return text
    return f"{text[:-1]}; {where})" if text.endswith(")") else f"{text} ({where})"


def group_pos(spec: Spec, group: str) -> str | None:
    """file:line:key of the spec key behind a constraint group ("deadline", "budget",
    "quota:<key>"), if the spec says where it is written."""
    if group in ("deadline", "budget"):
        pos = spec.where(group)
    elif group.startswith("quota:"):
        pos = quota_pos(spec, group.split(":", 1)[1])
    else:
        pos = None
    return str(pos) if pos is not None else None


def _group_text(spec: Spec, prob: Problem, group: str) -> str:
    if group == "deadline":
        return f"deadline {_hours(spec.deadline_hours or 0)} h"
    if group == "budget":
        return f"budget ${spec.budget:,.2f}"
    key = group.split(":", 1)[1]
    unit = quota_unit(spec, key)
    limit = prob.limits[key] / QUOTA_SCALE
    return f"quota {key} ({limit:g}{' ' + unit if unit else ''})"


def _within(core: list[str], skip: str, spec: Spec, prob: Problem) -> str:
    rest = [g for g in core if g != skip]
    if not rest:
        return ""
    words = {"deadline": "the deadline", "budget": "the budget"}
    return " within " + " and ".join(words.get(g, _group_text(spec, prob, g)) for g in rest)


def _hours(h: float) -> str:
    return f"{h:.2f}".rstrip("0").rstrip(".")


# --- explanations -------------------------------------------------------------------------------


def _tight_constraints(
    spec: Spec,
    prob: Problem,
    total_cost: float,
    makespan: float,
    times: Mapping[str, tuple[float, float]],
    assignment: Mapping[str, Candidate],
) -> tuple[str, ...]:
    """Constraints with less than 0.5 % slack: deadline, budget, and quotas at their peak."""
    tight = []
    if spec.deadline_hours is not None and makespan >= spec.deadline_hours * (1 - _TIGHT):
        tight.append("deadline")
    if spec.budget is not None and total_cost >= spec.budget * (1 - _TIGHT):
        tight.append("budget")
    for key, limit in prob.limits.items():
        held = [
            (times[t][0], times[t][1], a * QUOTA_SCALE)
            for t, c in assignment.items()
            for k, a in c.quota_usage
            if k == key
        ]
        peak = max((sum(a for s2, e2, a in held if s2 <= s < e2) for s, _, _ in held), default=0)
        if peak >= limit * (1 - _TIGHT):
            tight.append(f"quota:{key}")
    return tuple(tight)


def _runners_up(
    spec: Spec, prob: Problem, catalog: Catalog, assignment: Mapping[str, Candidate], objective: Objective
) -> tuple[RunnerUp, ...]:
    """Per task, the best other candidate with every other task kept where it is (evaluated, not
    re-solved): the plan's total cost and makespan if that task alone moved there. Every
    alternative's cost change is its own cost change (all egress is per candidate); the three
    cheapest and the three fastest are then evaluated in full and the best by the objective is kept."""
    base_cost, _ = evaluate(spec, assignment, catalog)
    outputs = outputs_by_task(spec)
    out = []
    for i, name in enumerate(prob.task_names):
        chosen = assignment[name]
        task = spec.tasks[i]

        def local_cost(c: Candidate, task=task) -> float:
            return task_cost(spec, task, c, catalog, outputs)

        others = [c for c in prob.cands[i] if c != chosen]
        if not others:
            continue
        here = local_cost(chosen)
        shortlist = sorted(others, key=local_cost)[:3] + sorted(others, key=lambda c: c.hours)[:3]
        best: tuple[tuple[float, float], Candidate, float, float] | None = None
        for c in dict.fromkeys(shortlist):
            _, span = evaluate(spec, {**assignment, name: c}, catalog)
            cost = base_cost + local_cost(c) - here
            key = (span, cost) if objective is Objective.TIME else (cost, span)
            if best is None or key < best[0]:
                best = (key, c, cost, span)
        assert best is not None
        out.append(RunnerUp(task=name, candidate=best[1], total_cost=best[2], makespan_hours=best[3]))
    return tuple(out)


def _pareto(
    spec: Spec,
    model: PlacementModel,
    catalog: Catalog,
    chosen: Mapping[str, Candidate],
    outcome: _Outcome,
    time_limit_s: float,
    workers: int,
    seed: int,
) -> tuple[ParetoPoint, ...]:
    """Up to six cost/makespan trade-offs: the fastest plan, the cheapest, and the cheapest under
    makespan caps spaced between them (ε-constraint), each lexicographically optimised."""
    prob = model.prob
    per_solve = max(time_limit_s / (2 * _MAX_PARETO), 0.5)
    cost_obj, _ = _primary_cost(model)

    def lexi(first, second, cap: int | None) -> SolveResult | None:
        lits = [model.bound(model.makespan, cap)] if cap is not None else []
        r1 = model.solve(first, time_limit_s=per_solve, workers=workers, seed=seed)
        if r1.choice is None:
            for lit in lits:
                model.release(lit)
            return None
        lits.append(model.bound(first, round(r1.objective)))
        model.hint(r1.choice, r1.start)
        r2 = model.solve(second, time_limit_s=per_solve, workers=workers, seed=seed)
        for lit in lits:
            model.release(lit)
        return r2 if r2.choice is not None else r1

    fastest = lexi(model.makespan, cost_obj, None)
    cheapest = lexi(cost_obj, model.makespan, None)
    found = [r for r in (fastest, cheapest) if r is not None]
    if fastest is not None and cheapest is not None and cheapest.makespan > fastest.makespan:
        lo, hi = fastest.makespan, cheapest.makespan
        for k in range(1, _MAX_PARETO - 1):
            cap = lo + (hi - lo) * k // (_MAX_PARETO - 1)
            r = lexi(cost_obj, model.makespan, cap)
            if r is not None:
                found.append(r)
    points: dict[tuple, ParetoPoint] = {}
    for r in found:
        assignment = {
            name: prob.cands[i][j] for i, (name, j) in enumerate(zip(prob.task_names, r.choice, strict=False))
        }
        cost, _ = evaluate(spec, assignment, catalog)
        span = r.makespan / SECONDS_PER_HOUR if prob.limits else evaluate(spec, assignment, catalog)[1]
        key = tuple(sorted((t, c.location.key) for t, c in assignment.items()))
        points[key] = ParetoPoint(total_cost=cost, makespan_hours=span, assignment=key)
    # Keep the non-dominated ones, fastest first.
    frontier = sorted(points.values(), key=lambda p: (p.makespan_hours, p.total_cost))
    kept: list[ParetoPoint] = []
    for p in frontier:
        if not kept or p.total_cost < kept[-1].total_cost - 1e-9:
            kept.append(p)
    return tuple(kept[:_MAX_PARETO])
