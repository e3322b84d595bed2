"""The optimizer: the cheapest (or fastest) placement of a job DAG, exact, via CP-SAT.

Cost model. Total cost = Σ_tasks candidate.cost: compute plus every transfer the task's
placement pays on the real path through the plan's storage (skyplan/transfers.py): its external
inputs read to each node, its outputs written to storage, each upstream's outputs read to each
node, at the source cloud's tiered rate (same zone ≤ cross zone ≤ inter region ≤ internet).
The storage is fixed, so egress is per candidate and the model has no pairwise term; it is
reported in each task's `TaskPlacement.egress_cost`.

Time model. end = start + candidate.hours; a task starts after reading its external inputs,
and for every edge u→v, start(v) ≥ end(u) + upload(u's location → storage) + download(storage
→ v's location) of outputs_gb(u) at the tiers' bandwidths; makespan = max end. `deadline_hours`
(makespan ≤) and `budget` (cost ≤) are hard constraints under either objective. Quota limits
bound the concurrent usage of tasks running at the same time. Objective cost minimises cost
(then preference, then makespan when time is modelled); objective time minimises makespan, then
cost. Times and schedules are only modelled when needed (objective time, a deadline, a quota
some candidate uses, or a Pareto request); otherwise the model is placement only.

How a solve runs (`solve.py`). Sound dominance pruning per task (`prune.py`); for the cost
objective, the exact cost bound (`bound.py`: with egress per candidate, the sum of each task's
cheapest candidate), whose reduced costs drop every candidate that no plan as cheap as the best
known can use; then the exact CP-SAT model (`model.py`) of what is left, which settles ties
(preference, makespan), time, quotas, deadline and budget. The time objective and Pareto fronts
go to CP-SAT directly.

Integer units: micro-dollars (rounded) and seconds (durations and transfers rounded up, the
deadline down: a plan the solver accepts meets the deadline exactly). Reported totals are
recomputed in floating point by `evaluate`.
"""

from skyplan.optimizer.evaluate import evaluate, single_region_baseline
from skyplan.optimizer.solve import solve

__all__ = ["evaluate", "single_region_baseline", "solve"]
