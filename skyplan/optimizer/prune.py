"""Sound dominance pruning before modelling: within a location, whole zones/regions, then per candidate.

Candidate c of task t (location l) is dropped when a kept candidate d (location l') is at least
as good in every plan: for every placement of t's neighbours within their current candidates,

    cost(d) + Σ_incident edges Δcost_e(l → l') ≤ cost(c)
    max(0, Δin) + dur(d) − dur(c) + max(0, Δout) ≤ 0          (when the model has time)
    pref(d) ≤ pref(c), and d holds no quota c does not hold, never more of it,

where Δcost_e is the largest increase of edge e's egress when t moves from l to l' (maximised
over the neighbour's current locations), Δin the largest increase of any incoming transfer time
and Δout of any outgoing one. Exchange argument: take an optimal plan S within the current
candidate sets that uses c. Put t on d instead and start it max(0, Δin) later: every incoming
transfer still arrives in time, t ends no later than before (third condition), so every
successor and the makespan keep their times; t's interval lies inside its old one, so no quota
is exceeded; cost, makespan and the preference tie-break do not get worse. So an optimal plan
avoiding c exists within the current sets. Each removal is justified against the sets current
at that moment (neighbour sets only shrink, so bounds computed on larger sets stay valid), and
by induction an optimal plan survives the whole sequence; the dominator d is kept at the time,
so a chain of removals never loses the last good candidate.

To stay fast, each candidate is compared only with a few dominators (the best at its location,
in its region, in its cloud, overall, and the fastest overall when time matters), and
Δ is computed per pair of locations from a summary of the neighbour's locations (a handful of
representative locations cover every combination of tiers), with edges to neighbours of equal
summary aggregated. Costs are bounded in rate space plus the model's rounding slack.
"""

from __future__ import annotations

import math

from skyplan.models import Location
from skyplan.optimizer.problem import (
    COST_UNITS_PER_USD,
    INTERNET,
    Problem,
    tier,
)

_ROUNDING_SLACK = 4  # an edge's modelled tier cost is a sum of ≤ 4 rounded terms per side
# Rounds of per-candidate pruning. Neighbour sets shrink between rounds, so later rounds can prune
# more; on the benchmark a second round removed < 1 % more candidates for 70 % more pruning time.
_MAX_ROUNDS = 1


def prune(
    prob: Problem, *, with_time: bool, rates: dict[str, tuple[float, float, float, float]]
) -> list[list[int]]:
    """Indices of the candidates to keep, per task, in their original order."""
    locs = [[c.location for c in cs] for cs in prob.cands]  # `Candidate.location` is a property
    alive = [_within_location(prob, i, with_time, locs[i]) for i in range(prob.n)]
    alive = _dominated_locations(prob, alive, with_time, locs)
    return _CrossLocation(prob, with_time, rates, locs).run(alive)


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


_Entry = tuple  # (cost, duration, preference, quota usage)


def _dominates(a: _Entry, b: _Entry) -> bool:
    return a[0] <= b[0] and a[1] <= b[1] and a[2] <= b[2] and _holds_less(dict(a[3]), dict(b[3]))


def _dominated_locations(
    prob: Problem, alive: list[list[int]], with_time: bool, loc_of: list[list[Location]]
) -> list[list[int]]:
    """Drop whole locations for every task at once: a zone whose candidates are, for every task,
    dominated by candidates in another zone of its region; then a region whose every zone maps
    to a zone of another region of the same cloud with that property.

    Exchange argument (plans, not single tasks): take an optimal plan and move *every* task at a
    dropped location to the dominating candidate at its image. Compute cost, duration, preference
    and quota use do not grow. No edge gets a farther tier: two tasks that shared a zone share
    its image; tasks in different zones of a region stay within one region; an edge leaving the
    region or the cloud keeps its tier, and the source cloud's rates are unchanged. A zone-less
    location (same tier as every zone of its region) only maps to a zone-less one. Rates and
    transfer times are monotone by tier up to inter-region (checked when the model is built), so
    neither cost nor any time grows: the moved plan is optimal too.
    """
    # Tasks with identical candidate tables behave identically: check each table once.
    # Locations are numbered in their sort order, so that the table keys sort on integers.
    ordered = sorted({loc for row in loc_of for loc in row})
    ids = {loc: n for n, loc in enumerate(ordered)}
    tables: dict[tuple, dict[Location, list[_Entry]]] = {}
    for i, keep in enumerate(alive):
        li, cost, dur, pref, usage = loc_of[i], prob.cost[i], prob.dur[i], prob.pref[i], prob.usage[i]
        rows = [
            (ids[li[j]], (cost[j], dur[j] if with_time else 0, pref[j], _usage_key(usage[j]))) for j in keep
        ]
        key = tuple(sorted(rows))
        if key not in tables:
            table: dict[Location, list[_Entry]] = {}
            for n, entry in key:
                table.setdefault(ordered[n], []).append(entry)
            tables[key] = table
    at: dict[Location, list[dict[Location, list[_Entry]]]] = {}
    for table in tables.values():
        for loc in table:
            at.setdefault(loc, []).append(table)
    removed: set[Location] = set()

    def covered(loc: Location, by: Location) -> bool:
        return all(
            by in table and all(any(_dominates(b, a) for b in table[by]) for a in table[loc])
            for table in at[loc]
        )

    regions: dict[tuple[str, str], list[Location]] = {}
    for loc in sorted(at):
        regions.setdefault((loc.cloud, loc.region), []).append(loc)
    for locs in regions.values():
        zones = [z for z in locs if z.zone is not None]
        for z in zones:
            if any(z2 != z and z2 not in removed and covered(z, z2) for z2 in zones):
                removed.add(z)
    by_cloud: dict[str, list[tuple[str, str]]] = {}
    for r in regions:
        by_cloud.setdefault(r[0], []).append(r)
    gone: set[tuple[str, str]] = set()
    for rs in by_cloud.values():
        for r in rs:
            mine = [z for z in regions[r] if z not in removed]
            for r2 in rs:
                if r2 == r or r2 in gone:
                    continue
                theirs = [z for z in regions[r2] if z not in removed]
                if all(
                    any(covered(z, z2) for z2 in theirs if z.zone is not None or z2.zone is None)
                    for z in mine
                ):
                    gone.add(r)
                    removed.update(mine)
                    break
    if not removed:
        return alive
    return [[j for j in keep if loc_of[i][j] not in removed] for i, keep in enumerate(alive)]


class _Summary:
    """Where a task may currently be: its locations, counted by region and cloud."""

    __slots__ = ("locs", "by_region", "by_cloud", "total")

    def __init__(self, locs: frozenset[Location]):
        self.locs = locs
        self.by_region: dict[tuple[str, str], int] = {}
        self.by_cloud: dict[str, int] = {}
        for loc in locs:
            r = (loc.cloud, loc.region)
            self.by_region[r] = self.by_region.get(r, 0) + 1
            self.by_cloud[loc.cloud] = self.by_cloud.get(loc.cloud, 0) + 1
        self.total = len(locs)

    def representatives(self, a: Location, b: Location) -> list[tuple[str | None, int, int]]:
        """(cloud of m, tier(a, m), tier(b, m)) for representatives m of every class of the
        summary's locations that a and b can tell apart; cloud None when m is in neither's cloud."""
        special = {a, b, Location(a.cloud, a.region, None), Location(b.cloud, b.region, None)}
        reps: list[Location] = [m for m in special if m in self.locs]
        regions = {(a.cloud, a.region), (b.cloud, b.region)}
        for r in regions:
            n_special = sum(1 for m in reps if (m.cloud, m.region) == r)
            if self.by_region.get(r, 0) > n_special:
                reps.append(Location(r[0], r[1], "\x00other-zone"))
        clouds = {a.cloud, b.cloud}
        for k in clouds:
            in_regions = sum(self.by_region.get(r, 0) for r in regions if r[0] == k)
            if self.by_cloud.get(k, 0) > in_regions:
                reps.append(Location(k, "\x00other-region", "\x00other-zone"))
        out = [(m.cloud, tier(a, m), tier(b, m)) for m in reps]
        if self.total > sum(self.by_cloud.get(k, 0) for k in clouds):
            out.append((None, INTERNET, INTERNET))
        return out


class _CrossLocation:
    def __init__(
        self,
        prob: Problem,
        with_time: bool,
        rates: dict[str, tuple[float, float, float, float]],
        locs: list[list[Location]],
    ):
        self.prob = prob
        self.locs = locs
        self.with_time = with_time
        self.rates = rates
        self.out_edges: list[list[int]] = [[] for _ in range(prob.n)]
        self.in_edges: list[list[int]] = [[] for _ in range(prob.n)]
        for ei, e in enumerate(prob.edges):
            if e.gb > 0:  # a transfer of nothing costs and takes nothing anywhere
                self.out_edges[e.src].append(ei)
                self.in_edges[e.dst].append(ei)
        self._summaries: dict[frozenset[Location], _Summary] = {}
        self._rep_cache: dict[tuple[int, Location, Location, bool], tuple[bool, float, frozenset]] = {}

    def _summary(self, locs: frozenset[Location]) -> _Summary:
        s = self._summaries.get(locs)
        if s is None:
            s = self._summaries[locs] = _Summary(locs)
        return s

    def _pair_bound(self, summary: _Summary, a: Location, b: Location, outgoing: bool):
        """(some class costs exactly the same, max rate increase over the others, tier pairs)."""
        key = (id(summary), a, b, outgoing)
        hit = self._rep_cache.get(key)
        if hit is not None:
            return hit
        has_zero, worst, pairs = False, -math.inf, set()
        for m_cloud, ta, tb in summary.representatives(a, b):
            pairs.add((ta, tb))
            if outgoing:
                if a.cloud == b.cloud and ta == tb:
                    has_zero = True
                else:
                    worst = max(worst, self.rates[b.cloud][tb] - self.rates[a.cloud][ta])
            else:
                if ta == tb:
                    has_zero = True
                else:
                    worst = max(worst, self.rates[m_cloud][tb] - self.rates[m_cloud][ta])
        hit = (has_zero, worst, frozenset(pairs))
        self._rep_cache[key] = hit
        return hit

    def run(self, alive: list[list[int]]) -> list[list[int]]:
        prob = self.prob
        locs = [frozenset(self.locs[i][j] for j in a) for i, a in enumerate(alive)]
        dirty = set(range(prob.n))
        for _ in range(_MAX_ROUNDS):
            if not dirty:
                break
            changed: set[int] = set()
            for i in sorted(dirty):
                new = self._prune_task(i, alive[i], locs)
                if len(new) < len(alive[i]):
                    alive[i] = new
                    new_locs = frozenset(self.locs[i][j] for j in new)
                    if new_locs != locs[i]:
                        locs[i] = new_locs
                        changed.add(i)
            dirty = set()
            for i in changed:
                dirty.update(prob.edges[ei].dst for ei in self.out_edges[i])
                dirty.update(prob.edges[ei].src for ei in self.in_edges[i])
        return alive

    def _groups(self, i: int, locs: list[frozenset[Location]]):
        """Incident edges grouped by direction and the neighbour's location summary."""
        prob = self.prob
        groups: dict[tuple[bool, int], list] = {}
        for outgoing, edge_ids in ((True, self.out_edges[i]), (False, self.in_edges[i])):
            for ei in edge_ids:
                e = prob.edges[ei]
                summary = self._summary(locs[e.dst if outgoing else e.src])
                g = groups.get((outgoing, id(summary)))
                if g is None:
                    g = groups[(outgoing, id(summary))] = [outgoing, summary, 0.0, 0, {}, math.inf]
                g[2] += e.gb
                g[3] += 1
                g[5] = min(g[5], e.gb)
                if self.with_time:
                    table = g[4]
                    for ta in range(4):
                        for tb in range(4):
                            d = e.seconds[tb] - e.seconds[ta]
                            if d > table.get((ta, tb), -math.inf):
                                table[(ta, tb)] = d
        return list(groups.values())

    def _delta(self, groups, a: Location, b: Location) -> tuple[int, int, int]:
        """Upper bounds on (egress cost increase, incoming time increase, outgoing time increase)
        when the task moves from a to b."""
        cost, t_in, t_out = 0.0, 0, 0
        for outgoing, summary, gb, n_edges, table, min_gb in groups:
            has_zero, worst, pairs = self._pair_bound(summary, a, b, outgoing)
            if worst > -math.inf:
                # Per edge the bound is gb·worst + slack, or 0 from an exactly-equal class.
                bound = gb * worst * COST_UNITS_PER_USD + _ROUNDING_SLACK * n_edges
                if has_zero and worst < 0:
                    bound = 0.0 if min_gb * -worst * COST_UNITS_PER_USD >= _ROUNDING_SLACK else 4.0 * n_edges
                elif has_zero:
                    bound = max(bound, 0.0)
                cost += bound
            if self.with_time:
                dt = max(table[p] for p in pairs)
                if outgoing:
                    t_out = max(t_out, dt)
                else:
                    t_in = max(t_in, dt)
        return math.ceil(cost), t_in, t_out

    def _prune_task(self, i: int, alive: list[int], locs: list[frozenset[Location]]) -> list[int]:
        prob = self.prob
        cands, cost, dur, pref, usage = self.locs[i], prob.cost[i], prob.dur[i], prob.pref[i], prob.usage[i]
        if len(alive) <= 1:
            return alive
        groups = self._groups(i, locs)

        rank = {j: (cost[j], dur[j], pref[j], j) for j in alive}
        best: dict[tuple, int] = {}
        for j in alive:
            loc = cands[j]
            r = rank[j]
            for key in (("loc", loc), ("region", loc.cloud, loc.region), ("cloud", loc.cloud), ("all",)):
                b = best.get(key)
                if b is None or r < rank[b]:
                    best[key] = j
            if self.with_time:
                fk = ("fast",)
                if fk not in best or (dur[j], cost[j], pref[j], j) < (
                    dur[best[fk]],
                    cost[best[fk]],
                    pref[best[fk]],
                    best[fk],
                ):
                    best[fk] = j
        removed: set[int] = set()
        deltas: dict[tuple[Location, Location], tuple[int, int, int]] = {}
        for j in alive:
            loc = cands[j]
            for key in (
                ("loc", loc),
                ("region", loc.cloud, loc.region),
                ("cloud", loc.cloud),
                ("all",),
                ("fast",),
            ):
                d = best.get(key)
                if d is None or d == j or d in removed:
                    continue
                if pref[d] > pref[j] or not _holds_less(usage[d], usage[j]):
                    continue
                dloc = cands[d]
                pair = (loc, dloc)
                if pair not in deltas:
                    deltas[pair] = (0, 0, 0) if loc == dloc else self._delta(groups, loc, dloc)
                dc, t_in, t_out = deltas[pair]
                if cost[d] + dc > cost[j]:
                    continue
                if self.with_time and max(0, t_in) + dur[d] - dur[j] + max(0, t_out) > 0:
                    continue
                removed.add(j)
                break
        return [j for j in alive if j not in removed]


def _holds_less(a: dict[str, int], b: dict[str, int]) -> bool:
    return all(b.get(k, 0) >= v for k, v in a.items())
