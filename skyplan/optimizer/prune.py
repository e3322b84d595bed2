"""Sound dominance pruning before modelling, per task.

Egress is part of each candidate's cost (skyplan/transfers.py), so a task's candidates can be
compared without looking at its neighbours' placements. Candidate c of task t is dropped when a
kept candidate d of t is at least as good in every plan:

    cost(d) ≤ cost(c), pref(d) ≤ pref(c), d holds no quota c does not hold, never more of it,
    max(0, Δin) + dur(d) − dur(c) + max(0, Δout) ≤ 0          (when the model has time)

where Δin is the largest increase, from c to d, of the time t waits for its inputs (reading its
external inputs; each upstream output's download) and Δout the largest increase of an outgoing
upload. Exchange argument: take an optimal plan S within the current candidate sets that uses
c. Put t on d instead and start it max(0, Δin) later: every input still arrives in time, t
ends no later than before and its outputs reach storage no later, so every successor and the
makespan keep their times; t's interval lies inside its old one, so no quota is exceeded; cost,
makespan and the preference tie-break do not get worse. So an optimal plan avoiding c exists
within the current sets; the dominator d is kept at the time, so a chain of removals never
loses the last good candidate.

To stay fast, each candidate is compared only with a few dominators: the best at its location,
at its storage tier, overall, and the fastest overall when time matters.
"""

from __future__ import annotations

from skyplan.models import Location
from skyplan.optimizer.problem import Problem


def prune(prob: Problem, *, with_time: bool) -> list[list[int]]:
    """Indices of the candidates to keep, per task, in their original order."""
    locs = [[c.location for c in cs] for cs in prob.cands]  # `Candidate.location` is a property
    in_edges: list[list[int]] = [[] for _ in range(prob.n)]
    out_edges: list[list[int]] = [[] for _ in range(prob.n)]
    for ei, e in enumerate(prob.edges):
        if e.gb > 0:  # a transfer of nothing takes nothing anywhere
            out_edges[e.src].append(ei)
            in_edges[e.dst].append(ei)
    keep = []
    for i in range(prob.n):
        alive = _within_location(prob, i, with_time, locs[i])
        keep.append(_prune_task(prob, i, alive, with_time, locs[i], in_edges[i], out_edges[i]))
    return keep


def _usage_key(usage: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(usage.items()))


def _within_location(prob: Problem, i: int, with_time: bool, locs: list[Location]) -> list[int]:
    """Same location and quota usage: keep only candidates not beaten on cost, time and preference."""
    cost, dur, pref, usage = prob.cost[i], prob.dur[i], prob.pref[i], prob.usage[i]
    groups: dict[tuple, list[int]] = {}
    for j, loc in enumerate(locs):
        u = usage[j]
        groups.setdefault((loc, _usage_key(u)) if u else loc, []).append(j)
    keep: list[int] = []
    for members in groups.values():
        if len(members) == 1:
            keep.append(members[0])
            continue
        members.sort(key=lambda j: (cost[j], dur[j], pref[j], j))
        kept: list[int] = []
        for j in members:
            pj, dj = pref[j], dur[j]
            if not any(pref[k] <= pj and (not with_time or dur[k] <= dj) for k in kept):
                kept.append(j)
        keep.extend(kept)
    return sorted(keep)


def _prune_task(
    prob: Problem,
    i: int,
    alive: list[int],
    with_time: bool,
    locs: list[Location],
    in_edges: list[int],
    out_edges: list[int],
) -> list[int]:
    if len(alive) <= 1:
        return alive
    cost, dur, pref, usage = prob.cost[i], prob.dur[i], prob.pref[i], prob.usage[i]
    tiers, ready = prob.store_tier[i], prob.ready[i]
    edges = prob.edges

    def time_delta(d: int, c: int) -> int:
        """max(0, Δin) + dur(d) − dur(c) + max(0, Δout) for moving t from c to d."""
        t_in = ready[d] - ready[c]
        for ei in in_edges:
            t_in = max(t_in, edges[ei].down(tiers[d]) - edges[ei].down(tiers[c]))
        t_out = 0
        for ei in out_edges:
            t_out = max(t_out, edges[ei].up(tiers[d]) - edges[ei].up(tiers[c]))
        return max(0, t_in) + dur[d] - dur[c] + t_out

    rank = {j: (cost[j], dur[j], pref[j], j) for j in alive}
    best: dict[tuple, int] = {}
    for j in alive:
        for key in (("loc", locs[j]), ("tier", tiers[j]), ("all",)):
            b = best.get(key)
            if b is None or rank[j] < rank[b]:
                best[key] = j
        if with_time:
            b = best.get(("fast",))
            if b is None or (dur[j], cost[j], pref[j], j) < (dur[b], cost[b], pref[b], b):
                best[("fast",)] = j
    removed: set[int] = set()
    for j in alive:
        for key in (("loc", locs[j]), ("tier", tiers[j]), ("all",), ("fast",)):
            d = best.get(key)
            if d is None or d == j or d in removed:
                continue
            if cost[d] > cost[j] or pref[d] > pref[j] or not _holds_less(usage[d], usage[j]):
                continue
            if with_time and time_delta(d, j) > 0:
                continue
            removed.add(j)
            break
    return [j for j in alive if j not in removed]


def _holds_less(a: dict[str, int], b: dict[str, int]) -> bool:
    return all(b.get(k, 0) >= v for k, v in a.items())
