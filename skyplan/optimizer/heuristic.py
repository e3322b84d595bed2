"""A starting plan for the solver: each task on its cheapest candidate.

Egress is per candidate (the data's real path goes through the plan's fixed storage,
skyplan/transfers.py), so cost separates by task and the cheapest candidate of every task is
the cheapest plan. Cost only: the solver repairs a hint that breaks a deadline or quota.
"""

from __future__ import annotations

from skyplan.optimizer.problem import Problem


def plan_cost(prob: Problem, choice: list[int]) -> int:
    """The model's cost of a full assignment, in micro-dollars."""
    return sum(prob.cost[i][j] for i, j in enumerate(choice))


def _cheapest(prob: Problem, i: int) -> int:
    return min(range(len(prob.cost[i])), key=lambda j: (prob.cost[i][j], prob.pref[i][j], j))


def anchored_choice(prob: Problem) -> list[int]:
    """The cheapest plan: every task on its cheapest candidate (lowest preference, then index)."""
    return [_cheapest(prob, i) for i in range(prob.n)]


def improve(prob: Problem, choice: list[int]) -> list[int]:
    """Move single tasks to their cheapest candidate, to a local optimum (which, with per-task
    costs, is the cheapest plan); tasks with one candidate keep it."""
    return [choice[i] if len(prob.cost[i]) == 1 else _cheapest(prob, i) for i in range(prob.n)]
