"""A lower bound on plan cost, and the candidates it rules out.

Egress follows the real path through the plan's fixed storage (skyplan/transfers.py), so every
cost term belongs to one task's candidate: without time, quotas, deadline and budget, placement
separates by task. The bound is exact:

    LB = Σ_tasks min_j cost_ij

and the plan of each task's cheapest candidate meets it. Reduced-cost fixing: a plan that puts
task i on candidate j costs at least LB + (cost_ij − min_j cost_ij), so every candidate with
that above a known plan's cost can be dropped without losing any plan that costs no more: the
CP-SAT model of what remains has the same optimum and the same tie-breaks among optimal plans.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from skyplan.optimizer.problem import Problem

# A bound within this many micro-dollars (plus a relative 1e-9) of a plan's cost proves it optimal;
# the same tolerance keeps candidates whose bound is a float rounding away from a plan's cost.
_ABS_TOL = 1.0
_REL_TOL = 1e-9


@dataclass
class CostBound:
    """A lower bound on the modelled cost (micro-dollars) of every plan of a Problem, the best
    plan found on the way, and per candidate how far above the bound any plan using it costs."""

    lower: float
    upper: float  # the cost of `plan`
    plan: list[int]
    iterations: int
    wall_s: float
    _slack: list[list[int]]

    @property
    def proven(self) -> bool:
        """Whether `plan` is optimal (to within float rounding of the micro-dollar costs)."""
        return _proven(self.lower, self.upper)

    def keep(self, upper: float) -> list[list[int]]:
        """Per task, the candidates that some plan costing at most `upper` can use."""
        room = upper - self.lower + _ABS_TOL + _REL_TOL * abs(upper)
        return [[j for j, s in enumerate(row) if s <= room] for row in self._slack]


def cost_bound(prob: Problem, *, time_budget_s: float, plan: Sequence[int]) -> CostBound:
    """The exact cost bound of `prob` (time, quotas, deadline and budget relaxed, so it holds for
    every feasible plan) and its plan: each task's cheapest candidate, the lowest preference and
    then the lowest index among equals. `plan` (a start) and `time_budget_s` are accepted for the
    solver's calling convention; the bound needs one pass."""
    del time_budget_s
    started = time.perf_counter()
    best = [min(range(len(row)), key=lambda j, i=i: (prob.cost[i][j], prob.pref[i][j], j))
            for i, row in enumerate(prob.cost)]
    lower = float(sum(prob.cost[i][j] for i, j in enumerate(best)))
    start_cost = float(sum(prob.cost[i][j] for i, j in enumerate(plan))) if len(plan) == prob.n else None
    if start_cost is not None and start_cost <= lower:
        best = list(plan)
    slack = [[c - prob.cost[i][best[i]] for c in row] for i, row in enumerate(prob.cost)]
    return CostBound(lower, lower, best, 1, time.perf_counter() - started, slack)


def _proven(lower: float, upper: float) -> bool:
    return lower >= upper - (_ABS_TOL + _REL_TOL * abs(upper))
