"""A good starting plan for the solver: the best "everyone near one anchor" plan, then local moves.

When edges carry hundreds of GB, egress outweighs compute and the optimum keeps connected tasks
together; per-task cheapest choices scatter them across clouds instead. So for every location
as an anchor, each task takes its cheapest candidate in the anchor's zone, else its region, else
its cloud, else anywhere; the cheapest such plan is then improved by moving one task at a time
to its best candidate given its neighbours, until no move helps. Cost only: the solver repairs
a hint that breaks a deadline or quota.
"""

from __future__ import annotations

from skyplan.models import Location
from skyplan.optimizer.problem import Problem

_MAX_PASSES = 20


def plan_cost(prob: Problem, choice: list[int]) -> int:
    """The model's cost of a full assignment, in micro-dollars."""
    return _plan_cost(prob, choice, [[c.location for c in cs] for cs in prob.cands])


def _plan_cost(prob: Problem, choice: list[int], locs: list[list[Location]]) -> int:
    total = sum(prob.cost[i][j] for i, j in enumerate(choice))
    at = [locs[i][j] for i, j in enumerate(choice)]
    for e in prob.edges:
        total += e.cost(at[e.src], at[e.dst])
    return total


def anchored_choice(prob: Problem) -> list[int]:
    """The cheapest anchored plan, improved by single-task moves."""
    locs = [[c.location for c in cs] for cs in prob.cands]
    tables = [_cheapest_by_scope(prob, i, locs[i]) for i in range(prob.n)]
    best: list[int] | None = None
    best_cost = 0
    for anchor in sorted({loc for row in locs for loc in row}):
        scopes = (anchor, (anchor.cloud, anchor.region), anchor.cloud, None)
        choice = [next(t[s] for s in scopes if s in t) for t in tables]
        cost = _plan_cost(prob, choice, locs)
        if best is None or cost < best_cost:
            best, best_cost = choice, cost
    assert best is not None
    return improve(prob, best, locs)


def improve(prob: Problem, choice: list[int], locs: list[list[Location]] | None = None) -> list[int]:
    """Move single tasks to their cheapest candidate given their neighbours, to a local optimum."""
    if locs is None:
        locs = [[c.location for c in cs] for cs in prob.cands]
    choice = list(choice)
    out_edges: list[list] = [[] for _ in range(prob.n)]
    in_edges: list[list] = [[] for _ in range(prob.n)]
    for e in prob.edges:
        if e.gb > 0:
            out_edges[e.src].append(e)
            in_edges[e.dst].append(e)
    for _ in range(_MAX_PASSES):
        moved = False
        for i in range(prob.n):
            cands = locs[i]

            def local(j: int, i: int = i, cands=cands) -> int:
                here = cands[j]
                total = prob.cost[i][j]
                for e in out_edges[i]:
                    total += e.cost(here, locs[e.dst][choice[e.dst]])
                for e in in_edges[i]:
                    total += e.cost(locs[e.src][choice[e.src]], here)
                return total

            current = local(choice[i])
            best_j, best_v = choice[i], current
            for j in range(len(cands)):
                if j != choice[i]:
                    v = local(j)
                    if v < best_v:
                        best_j, best_v = j, v
            if best_j != choice[i]:
                choice[i] = best_j
                moved = True
        if not moved:
            break
    return choice


def _cheapest_by_scope(prob: Problem, i: int, locs: list[Location]) -> dict:
    """Task i's cheapest candidate per location, region, cloud and overall (key None)."""
    best: dict = {}
    for j in sorted(range(len(locs)), key=lambda j: (prob.cost[i][j], prob.pref[i][j], j)):
        loc = locs[j]
        for scope in (loc, (loc.cloud, loc.region), loc.cloud, None):
            best.setdefault(scope, j)
    return best
