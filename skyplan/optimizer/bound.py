"""A lower bound on plan cost from the dual of the placement LP, and the candidates it rules out.

Placement without time is a labelling problem: each task takes a location (label) with a unary
cost (its cheapest candidate there) and each edge u→v costs θ_e(l_u, l_v), the egress tier price.
The dual of its LP relaxation (the local polytope, whose value equals the relaxation CP-SAT
solves) is a set of messages m_{e→u}(l), m_{e→v}(l) per edge; for *any* messages

    LB = Σ_tasks min_l b_i(l) + Σ_edges min_{l,l'} (θ_e(l,l') − m_{e→u}(l) − m_{e→v}(l'))
    b_i(l) = unary_i(l) + Σ_{edges e at i} m_{e→i}(l)

is a lower bound on every plan's cost (each plan's cost equals Σ b_i + Σ residuals at its labels:
the messages cancel). The messages are improved by block-coordinate ascent: each edge update is
an exact maximisation over that edge's messages (the MPLP family: after it, u holds β and v
holds 1 − β of the min-marginal of u, e, v), so the bound never decreases. Sweeps alternate a
forward pass in topological order (β = 0 on a task's last out-edge pushes everything it knows
downstream: on a chain one pass is exact), the matching backward pass, and a vectorised
symmetric sweep (β = ½) over edge colour classes.

Reduced-cost fixing: a plan that puts task i on candidate j costs at least
LB + (b_i(l_j) − min b_i) + (cost_ij − unary_i(l_j)), so every candidate with that above a known
plan's cost can be dropped without losing any plan that costs no more: the CP-SAT model of what
remains has the same optimum, and the same tie-breaks among optimal plans. On the benchmark the
bound meets the LP optimum in 1–3 s at 1,000 tasks, where CP-SAT's own LP did not finish in 10 s,
and fixing leaves about one candidate per task.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from skyplan.optimizer.problem import Problem, tier

# A bound within this many micro-dollars (plus a relative 1e-9) of a plan's cost proves it optimal;
# the same tolerance keeps candidates whose bound is a float rounding away from a plan's cost.
_ABS_TOL = 1.0
_REL_TOL = 1e-9
_STALL = 1e-7
# Close enough to hand over: fixing leaves few candidates and CP-SAT proves the rest quickly.
_CLOSE_ENOUGH = 1e-4
_SYMMETRIC_PER_ITERATION = 8
_BALANCING_SWEEPS = 10
_MAX_PASSES = 20  # local search passes
_MIN_ITERATIONS = 2
# Wall seconds per edge and location pair of one iteration (two directed passes, the symmetric
# sweeps, evaluation, decoding), measured on the benchmark machine at 1,000 and 5,000 tasks.
_SECONDS_PER_EDGE_CELL = 1.0e-7
_SECONDS_PER_EDGE = 7e-5  # Python overhead of the per-edge updates (dominant with few locations)
_SECONDS_PER_TASK = 5e-5  # decoding and local search
_WALL_SAFETY = 3.0  # × the budget: only a much slower machine stops on the wall clock


@dataclass
class CostBound:
    """A lower bound on the modelled cost (micro-dollars) of every plan of a Problem, the best
    plan found on the way, and per candidate how far above the bound any plan using it costs."""

    lower: float
    upper: float  # the cost of `plan`
    plan: list[int]
    iterations: int
    wall_s: float
    _slack: list[np.ndarray]

    @property
    def proven(self) -> bool:
        """Whether `plan` is optimal (to within float rounding of the micro-dollar costs)."""
        return _proven(self.lower, self.upper)

    def keep(self, upper: float) -> list[list[int]]:
        """Per task, the candidates that some plan costing at most `upper` can use."""
        room = upper - self.lower + _ABS_TOL + _REL_TOL * abs(upper)
        return [np.flatnonzero(s <= room).tolist() for s in self._slack]


class _Dual:
    def __init__(self, prob: Problem):
        locations = sorted({c.location for cs in prob.cands for c in cs})
        loc_id = {loc: k for k, loc in enumerate(locations)}
        clouds = sorted({loc.cloud for loc in locations})
        cloud_id = {c: k for k, c in enumerate(clouds)}
        n, width = prob.n, len(locations)
        self.width = width
        self.cand_loc = [np.array([loc_id[c.location] for c in cs], dtype=np.int64) for cs in prob.cands]
        self.cand_cost = [np.array(row, dtype=np.float64) for row in prob.cost]
        unary = np.full((n, width), np.inf)
        for i in range(n):
            np.minimum.at(unary[i], self.cand_loc[i], self.cand_cost[i])
        self.base = unary  # each task's cheapest candidate per location
        self.tiers = np.array([[tier(a, b) for b in locations] for a in locations], dtype=np.int64)
        self.cloud_of = np.array([cloud_id[loc.cloud] for loc in locations], dtype=np.int64)
        # Tasks with one location (kept in place by a re-plan, or pruned to one) are conditioned
        # out: an edge to such a task is a cost on the other end's location, or a constant.
        placed = [
            int(np.argmax(row)) if n_at == 1 else -1
            for row, n_at in zip(np.isfinite(unary), np.isfinite(unary).sum(axis=1), strict=True)
        ]
        self.unary = unary.copy()
        self.constant = 0.0
        edges = []
        for e in prob.edges:
            if e.gb <= 0:
                continue
            rates = np.zeros((len(clouds), 4))
            for cloud, costs in e.cost_by_cloud.items():
                if cloud in cloud_id:
                    rates[cloud_id[cloud]] = costs
            lu, lv = placed[e.src], placed[e.dst]
            if lu >= 0 and lv >= 0:
                self.constant += float(rates[self.cloud_of[lu], self.tiers[lu, lv]])
            elif lu >= 0:
                self.unary[e.dst] += rates[self.cloud_of[lu], self.tiers[lu]]
            elif lv >= 0:
                self.unary[e.src] += rates[self.cloud_of, self.tiers[:, lv]]
            else:
                edges.append((e, rates))
        self.avail = np.isfinite(self.unary)
        self.src = np.array([e.src for e, _ in edges], dtype=np.int64)
        self.dst = np.array([e.dst for e, _ in edges], dtype=np.int64)
        self.rates = np.array([r for _, r in edges]).reshape(len(edges), len(clouds), 4)
        self.mu = np.zeros((len(edges), width))  # m_{e→src}
        self.mv = np.zeros((len(edges), width))  # m_{e→dst}
        self.b = self.unary.copy()
        self.out_edges: list[list[int]] = [[] for _ in range(n)]
        self.in_edges: list[list[int]] = [[] for _ in range(n)]
        for k, (e, _) in enumerate(edges):
            self.out_edges[e.src].append(k)
            self.in_edges[e.dst].append(k)
        self.order = _topological(n, [e for e, _ in edges])
        self.classes = _colour_classes(self.src, self.dst, n)

    def theta(self, edges) -> np.ndarray:
        """Egress cost by (source location, destination location) for one edge or an array of them."""
        return self.rates[edges][..., self.cloud_of[:, None], self.tiers]

    def _update(self, e: int, keep_at_src: float) -> None:
        b, avail = self.b, self.avail
        u, v = self.src[e], self.dst[e]
        au = b[u] - self.mu[e]
        av = b[v] - self.mv[e]
        joint = au[:, None] + self.theta(e) + av[None, :]
        bu = keep_at_src * joint.min(axis=1)
        bv = (1.0 - keep_at_src) * joint.min(axis=0)
        self.mu[e] = np.where(avail[u], bu - au, 0.0)
        self.mv[e] = np.where(avail[v], bv - av, 0.0)
        b[u] = np.where(avail[u], bu, np.inf)
        b[v] = np.where(avail[v], bv, np.inf)

    def directed_pass(self, forward: bool) -> None:
        """Push along the DAG: a task splits its belief evenly over its out-edges (in-edges when
        going backward), the last edge taking what is left."""
        for u in self.order if forward else reversed(self.order):
            edges = self.out_edges[u] if forward else self.in_edges[u]
            k = len(edges)
            for m, e in enumerate(edges, 1):
                keep = (k - m) / (k - m + 1)
                self._update(e, keep if forward else 1.0 - keep)

    def symmetric_sweep(self) -> None:
        b, avail = self.b, self.avail
        for cl in self.classes:
            u, v = self.src[cl], self.dst[cl]
            au = b[u] - self.mu[cl]
            av = b[v] - self.mv[cl]
            joint = au[:, :, None] + self.theta(cl) + av[:, None, :]
            bu = 0.5 * joint.min(axis=2)
            bv = 0.5 * joint.min(axis=1)
            self.mu[cl] = np.where(avail[u], bu - au, 0.0)
            self.mv[cl] = np.where(avail[v], bv - av, 0.0)
            b[u] = np.where(avail[u], bu, np.inf)
            b[v] = np.where(avail[v], bv, np.inf)

    def _row(self, e: int, at_src: int) -> np.ndarray:
        """θ_e(at_src, ·) over destination locations."""
        return self.rates[e, self.cloud_of[at_src], self.tiers[at_src]]

    def _column(self, e: int, at_dst: int) -> np.ndarray:
        """θ_e(·, at_dst) over source locations."""
        return self.rates[e, self.cloud_of, self.tiers[:, at_dst]]

    def decode(self, b: np.ndarray) -> np.ndarray:
        """Locations from the messages: tasks in topological order, each where its belief plus
        the residual edge costs to the tasks already placed is least."""
        label = np.full(len(b), -1, dtype=np.int64)
        for i in self.order:
            score = b[i].copy()
            for e in self.in_edges[i]:
                lu = label[self.src[e]]
                if lu >= 0:
                    score += self._row(e, lu) - self.mu[e][lu] - self.mv[e]
            for e in self.out_edges[i]:
                lv = label[self.dst[e]]
                if lv >= 0:
                    score += self._column(e, lv) - self.mu[e] - self.mv[e][lv]
            label[i] = int(np.argmin(score))
        return label

    def local_search(self, label: np.ndarray) -> np.ndarray:
        """Move one task at a time to its cheapest location given its neighbours, until none moves."""
        label = label.copy()
        for _ in range(_MAX_PASSES):
            moved = False
            for i in self.order:
                score = self.unary[i].copy()
                for e in self.in_edges[i]:
                    score += self._row(e, label[self.src[e]])
                for e in self.out_edges[i]:
                    score += self._column(e, label[self.dst[e]])
                best = int(np.argmin(score))
                if score[best] < score[label[i]]:
                    label[i] = best
                    moved = True
            if not moved:
                break
        return label

    def cost(self, label: np.ndarray) -> float:
        """The modelled cost of putting every task at its label's cheapest candidate."""
        unary = float(self.unary[np.arange(len(label)), label].sum())
        lu, lv = label[self.src], label[self.dst]
        egress = self.rates[np.arange(len(self.src)), self.cloud_of[lu], self.tiers[lu, lv]]
        return self.constant + unary + float(egress.sum())

    def labels_of(self, plan: Sequence[int]) -> np.ndarray:
        return np.array([self.cand_loc[i][j] for i, j in enumerate(plan)], dtype=np.int64)

    def plan_of(self, label: np.ndarray) -> list[int]:
        """Each task's cheapest candidate at its label (the lowest index among equals)."""
        plan = []
        for i, locs in enumerate(self.cand_loc):
            at = np.flatnonzero(locs == label[i])
            plan.append(int(at[np.argmin(self.cand_cost[i][at])]))
        return plan

    def evaluate(self) -> tuple[float, np.ndarray]:
        """The bound of the current messages, recomputed from scratch (no drift from the updates)."""
        b = self.unary.copy()
        np.add.at(b, self.dst, self.mv)
        np.add.at(b, self.src, self.mu)
        lower = self.constant + float(np.min(b, axis=1).sum())
        chunk = max(1, 4_000_000 // max(1, b.shape[1] ** 2))
        for s in range(0, len(self.src), chunk):
            idx = np.arange(s, min(s + chunk, len(self.src)))
            residual = self.theta(idx) - self.mu[idx][:, :, None] - self.mv[idx][:, None, :]
            pairs = self.avail[self.src[idx]][:, :, None] & self.avail[self.dst[idx]][:, None, :]
            residual = np.where(pairs, residual, np.inf)
            lower += float(residual.reshape(len(idx), -1).min(axis=1).sum())
        return lower, b


def cost_bound(prob: Problem, *, time_budget_s: float, plan: Sequence[int]) -> CostBound:
    """Raise the dual bound of `prob` and improve `plan` alongside it, both on cost alone (time,
    quotas, deadline and budget are relaxed, so the bound holds for every feasible plan). After
    every iteration a plan is read off the messages and improved by single moves.

    Stops when the best plan is proven optimal, when the bound stops rising or comes within
    0.01 % of the plan, or after as many iterations as `time_budget_s` allows at the benchmark
    machine's speed: a count fixed by the problem's size, so the answer is reproducible. Three
    times the budget in wall time is a safety net that only a much slower machine reaches."""
    started = time.perf_counter()
    dual = _Dual(prob)
    best = dual.local_search(dual.labels_of(plan))
    upper = dual.cost(best)
    with np.errstate(invalid="ignore"):
        lower, b = dual.evaluate()
        iterations = 0
        # Seconds per iteration on the benchmark machine: edge work dominates (E·L² per sweep).
        per_iteration_s = (
            _SECONDS_PER_EDGE_CELL * dual.src.size * dual.width**2
            + _SECONDS_PER_EDGE * dual.src.size
            + _SECONDS_PER_TASK * len(dual.b)
        )
        max_iterations = max(_MIN_ITERATIONS, int(time_budget_s / per_iteration_s))
        while dual.src.size and not _proven(lower, upper) and iterations < max_iterations:
            before = lower
            dual.directed_pass(True)
            dual.directed_pass(False)
            for _ in range(_SYMMETRIC_PER_ITERATION):
                dual.symmetric_sweep()
            iterations += 1
            lower, b = dual.evaluate()
            label = dual.local_search(dual.decode(b))
            cost = dual.cost(label)
            if cost < upper:
                best, upper = label, cost
            if lower - before <= _STALL * max(abs(lower), 1.0) or upper - lower <= _CLOSE_ENOUGH * abs(upper):
                break
            if time.perf_counter() - started >= _WALL_SAFETY * time_budget_s:
                break
        # Directed passes leave upstream tasks with flat beliefs (everything pushed on), which
        # fixes nothing there; symmetric sweeps spread the min-marginals back (the bound cannot drop).
        if not _proven(lower, upper):
            for _ in range(_BALANCING_SWEEPS):
                dual.symmetric_sweep()
            lower, b = dual.evaluate()
    return CostBound(
        lower, upper, dual.plan_of(best), iterations, time.perf_counter() - started, _slack(dual, b)
    )


def _proven(lower: float, upper: float) -> bool:
    return lower >= upper - (_ABS_TOL + _REL_TOL * abs(upper))


def _slack(dual: _Dual, b: np.ndarray) -> list[np.ndarray]:
    best = b.min(axis=1)
    return [
        b[i, locs] - best[i] + (dual.cand_cost[i] - dual.base[i, locs])
        for i, locs in enumerate(dual.cand_loc)
    ]


def _topological(n: int, edges: Sequence) -> list[int]:
    """Tasks in a topological order (Kahn, smallest index first: stable for sorted specs)."""
    indegree = [0] * n
    succ: list[list[int]] = [[] for _ in range(n)]
    for e in edges:
        succ[e.src].append(e.dst)
        indegree[e.dst] += 1
    ready = [i for i in range(n) if indegree[i] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in succ[i]:
            indegree[j] -= 1
            if indegree[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != n:  # not a DAG (the spec loader refuses cycles); any order keeps the bound valid
        order = list(range(n))
    return order


def _colour_classes(src: np.ndarray, dst: np.ndarray, n: int) -> list[np.ndarray]:
    """Edges split into matchings (no two share a task), so that a class updates at once."""
    used: list[set[int]] = [set() for _ in range(n)]
    classes: list[list[int]] = []
    for k, (u, v) in enumerate(zip(src.tolist(), dst.tolist(), strict=True)):
        c = 0
        while c in used[u] or c in used[v]:
            c += 1
        used[u].add(c)
        used[v].add(c)
        if c == len(classes):
            classes.append([])
        classes[c].append(k)
    return [np.array(c, dtype=np.int64) for c in classes]
