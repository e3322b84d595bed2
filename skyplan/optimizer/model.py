"""CP-SAT model of a placement problem, growing with tasks × candidates + edges.

Why CP-SAT and not MathOpt with HiGHS/SCIP: the model is 0-1 with an integral objective plus,
when quotas apply, a cumulative resource constraint over task intervals. CP-SAT takes both
natively (a MIP would need a time-indexed formulation), solves the LP relaxation of the linear
part for bounds, accepts solution hints for re-planning, returns assumption cores for
infeasibility explanations, and is reproducible with `interleave_search`.

Egress follows the real path of the data (skyplan/transfers.py): up from the upstream to the
plan's storage, down from it to each downstream node. The storage is fixed, so every transfer's
cost depends on one task's location and is part of that task's candidate cost; the model has no
pairwise egress term. Transfer time is the precedence

    start(v) ≥ end(u) + Σ_j x[u,j]·up_e(tier of u's candidate j to storage)
                      + Σ_j x[v,j]·down_e(tier of v's candidate j to storage)

and a task with external inputs starts no earlier than it can have read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ortools.sat.python import cp_model

from skyplan.optimizer.problem import Problem

_Var = cp_model.IntVar


# CP-SAT's deterministic seconds run about twice as fast as wall seconds on the benchmark machine:
# a wall budget of T seconds becomes a deterministic limit of T/2, which normally fires first.
DETERMINISTIC_PER_WALL_S = 0.5


def _configure(p, *, workers: int, seed: int, time_limit_s: float, deterministic_s: float | None) -> None:
    """Solver parameters. Reproducibility first: same inputs, same plan.

    workers == 1: one search thread, which is deterministic by construction, using the LP-heavy
    `max_lp` strategy: the location-aggregated model has a tight LP relaxation, and on the
    benchmark this single search proves 100-task optima 2–8× faster than the 2-thread
    portfolios. Probing and symmetry detection are off: on these models they cost seconds of
    presolve and bought nothing.
    workers ≥ 2: CP-SAT's interleaved portfolio (`interleave_search`), deterministic for a fixed
    worker count (probing stays on: with it off this mode aborts in or-tools 9.15).
    The deterministic-time limit stops either at the same point on every run; the wall-clock
    limit is a safety net and, only if it fires first, can make two runs differ.
    """
    p.random_seed = seed
    p.num_workers = max(1, workers)
    if workers <= 1:
        p.subsolvers.append("max_lp")
        p.cp_model_probing_level = 0
        p.symmetry_level = 0
    else:
        p.interleave_search = True
        p.symmetry_level = 0
    if deterministic_s is None:
        deterministic_s = time_limit_s * DETERMINISTIC_PER_WALL_S
    p.max_deterministic_time = max(deterministic_s, 0.01)
    p.max_time_in_seconds = max(time_limit_s, 0.05)


@dataclass
class SolveResult:
    status: str  # OPTIMAL | FEASIBLE | INFEASIBLE | UNKNOWN | MODEL_INVALID
    choice: list[int] | None  # candidate index per task
    start: list[int] | None  # seconds, when the model has time
    objective: float
    bound: float
    cost: int | None  # micro-dollars, as modelled
    makespan: int | None  # seconds, as modelled
    wall_s: float
    deterministic_s: float = 0.0
    core: tuple[str, ...] = ()  # group names, for INFEASIBLE solves with assumptions


class PlacementModel:
    """The CP-SAT model of one Problem. `with_time` adds start/end times, transfer precedences,
    the makespan and the quota cumulatives; `with_groups` guards deadline, budget and each quota
    with a literal so that an infeasible model can name the conflicting groups."""

    def __init__(self, prob: Problem, *, with_time: bool, with_groups: bool = False):
        self.prob = prob
        self.with_time = with_time
        self.model = cp_model.CpModel()
        m = self.model
        self._obj: dict[int, int] = {}  # variable index -> cost coefficient (micro-dollars)
        self._vars: dict[int, _Var] = {}
        self._cost_const = 0
        self.groups: dict[str, _Var] = {}
        # Auxiliary Booleans as (var, positive parts, negative parts), in creation order, so that
        # a hint on the candidate Booleans can be completed: var = max(0, Σpos − Σneg).
        self._derived: list[tuple[_Var, tuple[_Var, ...], tuple[_Var, ...]]] = []
        self._demands: list[tuple[_Var, int, list[int]]] = []  # quota demand of task i per candidate

        self.x: list[list[_Var]] = []
        for i, cs in enumerate(prob.cands):
            row = [m.new_bool_var(f"x{i}_{j}") for j in range(len(cs))]
            m.add_exactly_one(row)
            self.x.append(row)
            for j, v in enumerate(row):
                self._add_cost(v, prob.cost[i][j])

        self.start: list[_Var] = []
        self.end: list[_Var] = []
        self.makespan: _Var | None = None
        if with_time:
            self._build_times()
        self._build_edges()
        if with_time:
            self._build_quotas(with_groups)
            if prob.deadline is not None:
                ct = m.add(self.makespan <= prob.deadline)
                self._guard(ct, "deadline", with_groups)
        if prob.budget is not None:
            ct = m.add(self.cost_expr() <= prob.budget)
            self._guard(ct, "budget", with_groups)

    # --- construction -------------------------------------------------------------------------

    def _add_cost(self, var: _Var, coef: int) -> None:
        if coef:
            idx = var.index
            self._vars[idx] = var
            self._obj[idx] = self._obj.get(idx, 0) + coef

    def _build_times(self) -> None:
        prob, m = self.prob, self.model
        horizon = (sum(max(d) for d in prob.dur) + sum(max(r) for r in prob.ready)
                   + sum(2 * max(e.seconds) for e in prob.edges) + 1)
        self._durations: list[_Var | int] = []
        for i, durs in enumerate(prob.dur):
            s = m.new_int_var(0, horizon, f"start{i}")
            e = m.new_int_var(0, horizon, f"end{i}")
            if min(durs) == max(durs):
                m.add(e == s + durs[0])
                d = durs[0]
            else:
                d = m.new_int_var(min(durs), max(durs), f"dur{i}")
                m.add_linear_constraint(
                    cp_model.LinearExpr.weighted_sum([d, *self.x[i]], [1] + [-x for x in durs]), 0, 0
                )
                m.add(e == s + d)
            ready = prob.ready[i]
            if max(ready) > 0:  # reading the external inputs comes first
                m.add_linear_constraint(
                    cp_model.LinearExpr.weighted_sum([s, *self.x[i]], [1] + [-r for r in ready]), 0, cp_model.INT_MAX
                )
            self.start.append(s)
            self.end.append(e)
            self._durations.append(d)
        self.makespan = m.new_int_var(0, horizon, "makespan")
        has_succ = {e.src for e in prob.edges}
        for i in range(prob.n):
            if i not in has_succ:
                m.add(self.makespan >= self.end[i])

    def _build_edges(self) -> None:
        """Precedences with the real path's transfer time; nothing when the model has no time."""
        if not self.with_time:
            return
        prob, m = self.prob, self.model
        for e in prob.edges:
            u, v = e.src, e.dst
            if e.gb <= 0:  # nothing moves: no transfer time, just the precedence
                m.add(self.start[v] >= self.end[u])
                continue
            up = [e.up(t) for t in prob.store_tier[u]]
            down = [e.down(t) for t in prob.store_tier[v]]
            # start(v) − end(u) − Σ up·x_u − Σ down·x_v ≥ 0, with the constant parts taken out.
            base = min(up) + min(down)
            terms = [(x, c - min(up)) for x, c in zip(self.x[u], up, strict=True) if c > min(up)]
            terms += [(x, c - min(down)) for x, c in zip(self.x[v], down, strict=True) if c > min(down)]
            expr = cp_model.LinearExpr.weighted_sum(
                [self.start[v], self.end[u], *(x for x, _ in terms)], [1, -1, *(-c for _, c in terms)]
            )
            m.add_linear_constraint(expr, base, cp_model.INT_MAX)

    def _build_quotas(self, with_groups: bool) -> None:
        prob, m = self.prob, self.model
        self.intervals: dict[int, cp_model.IntervalVar] = {}
        for key, limit in prob.limits.items():
            intervals, demands, top = [], [], 0
            for i in range(prob.n):
                amounts = [u.get(key, 0) for u in prob.usage[i]]
                if not any(amounts):
                    continue
                if i not in self.intervals:
                    self.intervals[i] = m.new_interval_var(
                        self.start[i], self._durations[i], self.end[i], f"iv{i}"
                    )
                if min(amounts) == max(amounts):
                    demand = amounts[0]
                else:
                    demand = m.new_int_var(0, max(amounts), f"q{i}_{key}")
                    self._demands.append((demand, i, amounts))
                    m.add_linear_constraint(
                        cp_model.LinearExpr.weighted_sum([demand, *self.x[i]], [1] + [-a for a in amounts]),
                        0,
                        0,
                    )
                intervals.append(self.intervals[i])
                demands.append(demand)
                top += max(amounts)
            if with_groups:
                # A cumulative takes no enforcement literal, so the guarded limit is on its capacity.
                cap = m.new_int_var(0, max(limit, top), f"cap_{key}")
                ct = m.add(cap <= limit)
                self._guard(ct, f"quota:{key}", True)
            else:
                cap = limit
            m.add_cumulative(intervals, demands, cap)

    def _guard(self, ct: cp_model.Constraint, group: str, with_groups: bool) -> None:
        if with_groups:
            lit = self.model.new_bool_var(f"group_{group}")
            ct.only_enforce_if(lit)
            self.groups[group] = lit

    # --- use -----------------------------------------------------------------------------------

    def cost_expr(self) -> cp_model.LinearExpr:
        idx = sorted(self._obj)
        return cp_model.LinearExpr.weighted_sum([self._vars[i] for i in idx], [self._obj[i] for i in idx])

    def preference_expr(self) -> cp_model.LinearExpr | None:
        pairs = [
            (v, p)
            for row, prefs in zip(self.x, self.prob.pref, strict=False)
            for v, p in zip(row, prefs, strict=False)
            if p
        ]
        if not pairs:
            return None
        return cp_model.LinearExpr.weighted_sum([v for v, _ in pairs], [p for _, p in pairs])

    def max_preference_sum(self) -> int:
        return sum(max(p) for p in self.prob.pref)

    def hint(self, choice: Sequence[int | None], start: Sequence[int] | None = None) -> None:
        """Hint a plan: its candidate Booleans, and for time models every auxiliary variable too."""
        self.model.clear_hints()
        value: dict[int, int] = {}
        for i, j in enumerate(choice):
            if j is None:
                continue
            for jj, v in enumerate(self.x[i]):
                value[v.index] = int(jj == j)
                self.model.add_hint(v, jj == j)
        # Completing the hint to the auxiliary Booleans helps time models find a first schedule,
        # but on placement-only models it stalled the LP search (chain-1000: optimal in 10 s with
        # candidate-only hints, stuck at the hint with complete ones); solve() keeps the hinted
        # plan as a fallback anyway.
        if self.with_time and all(j is not None for j in choice):
            for var, pos, neg in self._derived:
                if var.index in value:
                    continue
                v = max(0, sum(value[p.index] for p in pos) - sum(value[n.index] for n in neg))
                value[var.index] = v
                self.model.add_hint(var, v)
        if start is not None and self.with_time:
            complete = all(j is not None for j in choice)
            ends = []
            for i, (s, t) in enumerate(zip(self.start, start, strict=True)):
                self.model.add_hint(s, t)
                if complete:
                    dur = self.prob.dur[i][choice[i]]  # type: ignore[index]
                    ends.append(t + dur)
                    self.model.add_hint(self.end[i], t + dur)
                    if not isinstance(self._durations[i], int):
                        self.model.add_hint(self._durations[i], dur)
            if complete and self.makespan is not None:
                self.model.add_hint(self.makespan, max(ends, default=0))
                for var, i, amounts in self._demands:
                    self.model.add_hint(var, amounts[choice[i]])  # type: ignore[index]

    def bound(self, expr: cp_model.LinearExprT, upper: int) -> _Var:
        """Add `expr ≤ upper`, switched on by a literal whose domain `release` can later fix to 0
        (CP-SAT cannot delete a constraint; this keeps one model across lexicographic phases)."""
        lit = self.model.new_bool_var("bound")
        self.model.add(expr <= upper).only_enforce_if(lit)
        self._fix(lit, 1)
        return lit

    def release(self, lit: _Var) -> None:
        self._fix(lit, 0)

    def _fix(self, lit: _Var, value: int) -> None:
        domain = self.model.proto.variables[lit.index].domain
        domain[0] = value
        domain[1] = value

    def counts(self) -> tuple[int, int]:
        proto = self.model.proto
        return len(proto.variables), len(proto.constraints)

    def solve(
        self,
        objective: cp_model.LinearExprT | None,
        *,
        time_limit_s: float,
        deterministic_s: float | None = None,
        workers: int,
        seed: int,
        assumptions: Sequence[str] | None = None,
    ) -> SolveResult:
        m = self.model
        if objective is None:
            m.clear_objective()
        else:
            m.minimize(objective)
        m.clear_assumptions()
        solver = cp_model.CpSolver()
        p = solver.parameters
        _configure(p, workers=workers, seed=seed, time_limit_s=time_limit_s, deterministic_s=deterministic_s)
        if assumptions is not None:
            lits = [self.groups[g] for g in assumptions]
            # Guard literals not assumed are free; assumptions are the only way they become true.
            m.add_assumptions(lits)
            # Presolve can report a core literal outside the assumptions (or-tools#5141).
            p.cp_model_presolve = False
            p.num_workers = 1
            p.interleave_search = False
        status = solver.solve(m)
        name = solver.status_name(status)
        if name not in ("OPTIMAL", "FEASIBLE"):
            core: tuple[str, ...] = ()
            if name == "INFEASIBLE" and assumptions is not None:
                by_index = {lit.index: g for g, lit in self.groups.items()}
                core = tuple(
                    sorted(
                        by_index[i]
                        for i in solver.sufficient_assumptions_for_infeasibility()
                        if i in by_index
                    )
                )
            bound = solver.best_objective_bound if objective is not None and name == "UNKNOWN" else 0.0
            return SolveResult(
                name, None, None, 0.0, bound, None, None, solver.wall_time, solver.deterministic_time, core
            )
        values = solver.response_proto.solution
        choice = [next(j for j, v in enumerate(row) if values[v.index]) for row in self.x]
        start = [values[s.index] for s in self.start] if self.with_time else None
        cost = sum(values[i] * c for i, c in self._obj.items())
        makespan = values[self.makespan.index] if self.makespan is not None else None
        has_obj = objective is not None
        return SolveResult(
            name,
            choice,
            start,
            solver.objective_value if has_obj else 0.0,
            solver.best_objective_bound if has_obj else 0.0,
            cost,
            makespan,
            solver.wall_time,
            solver.deterministic_time,
        )
