"""The deadline-aware spot policy: when a running task uses spot, when on-demand, and where.

One pure, deterministic decision function, :func:`decide`, called at every decision point
(``apply``'s poll, the simulator's tick) with what is known *now*; nothing here reads a clock,
a file or the future of a trace. :class:`AvailabilityEstimate` is the only memory: an online
record of what each zone's spot availability has been so far.

Background. Wu et al., "Can't Be Late: Optimizing Spot Instance Savings under Deadlines"
(NSDI'24) frame a task of ``C0`` hours of work with a deadline ``R0``: spot is cheap but comes
and goes, on-demand is dear but always there, and every launch costs a changeover delay ``d``
(the restart overhead). Their policy, *Uniform Progress* (UP), spends the slack ``R0 - C0``
evenly: it goes on-demand whenever progress falls behind the line ``t*C0/R0``, stays there until
it is ``2d`` ahead (hysteresis), and switches to on-demand for good when the time left is within
``C(t) + 2d`` of the work left (safety net). UP is simple and never late, but it is eager: on a
tight deadline it takes on-demand at the first hour without spot, and it keeps on-demand for as
long as it stays ahead by less than ``2d``, though spot is back.

The rule here (``skyplan``), written once and used by ``apply`` and by ``bench/spot.py``:

1. **Exact safety net, one step ahead.** An action is *allowed* only if, at the next decision
   point, falling back to on-demand still finishes by the deadline, counting the worst case:
   a spot instance taken now is preempted at once and the on-demand launch pays ``d`` again;
   an idle step burns one step of time. Because the fallback is always allowed at the next
   step too, the task never misses a deadline that on-demand-from-the-start could meet (the
   property test checks this on random traces). UP's fixed ``C(t) + 2d`` net is replaced by
   the exact amount, so the last of the slack is spent on spot instead of being held back.
2. **Exploitation** (as UP). A spot VM that still runs is kept while the net allows it.
3. **Waiting.** Without usable spot, wait (idle) while progress is ahead of UP's line
   ``t*C0/R0``, *or* while the slack still covers the idle time the work left is expected to
   need, ``W*(1-p)/p + 2d``. Here ``p`` is the share of decision points seen so far with spot
   somewhere (online, ``AvailabilityEstimate``). Otherwise take on-demand. UP takes on-demand
   as soon as it is behind its line, even with many hours of slack left after a long early
   outage. The second test is what makes the loose deadlines cheaper.
4. **Coming back to spot, with less hysteresis.** On on-demand, go back to spot once progress
   is ``hysteresis * d`` ahead of the line (UP: ``2d``; 1 measured best, bench/RESULTS.md)
   and the net allows the switch. UP's ``2d`` keeps on-demand for hours after spot is back.
5. **Spot worth taking.** Spot whose expected lifetime is too short to repay its launch costs
   more per useful hour than on-demand. It is treated as no spot at all.
6. **Where (several zones).** Among zones with spot now, take the one with the lowest
   *effective* price: the spot price, plus the restart overhead and the checkpoint transfer
   spread over the spot lifetime expected there. The lifetime is learnt online from the
   spells seen in that zone so far, starting from a prior, and never from the trace's future.
   A running spot VM is never moved (rule 2). After a preemption, the zone that holds the
   checkpoint pays no move, so it wins when its spot is back. A move pays the restart overhead
   plus the transfer time in the net, and the transfer dollars in the price.

Units: hours and USD per hour throughout. ``step_hours`` is the time until the next decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["spot", "on_demand", "idle"]

# A float tolerance for tick-aligned comparisons: 1e-9 h is well under a millisecond.
_EPS = 1e-9


@dataclass(frozen=True)
class Zone:
    """One place the task could run, and what is known about it right now."""

    name: str
    spot_available: bool
    spot_price: float
    on_demand_price: float
    # Dollars and hours to bring the task's checkpoint here from the current zone (0 for the
    # current zone, or when nothing has to move).
    move_dollars: float = 0.0
    move_hours: float = 0.0


@dataclass(frozen=True)
class Tenancy:
    """What the task runs on now: ``idle`` (nothing), or a spot / on-demand VM in ``zone``."""

    kind: Kind
    zone: str | None = None


IDLE = Tenancy("idle")


@dataclass(frozen=True)
class TaskState:
    """The task's progress and clock, as of this decision point.

    ``work_done_hours`` comes from the heartbeat / checkpoint; ``pending_overhead_hours`` is
    what is left of the current launch's restart overhead (0 once it is productive).
    """

    work_total_hours: float
    work_done_hours: float
    hours_to_deadline: float
    restart_hours: float
    step_hours: float
    current: Tenancy = IDLE
    pending_overhead_hours: float = 0.0
    # Hours since the task's window began (its first launch could have started): with
    # hours_to_deadline it gives the window R0 of the uniform progress line.
    elapsed_hours: float = 0.0

    @property
    def work_left_hours(self) -> float:
        """Hours of work still to do."""
        return max(self.work_total_hours - self.work_done_hours, 0.0)


@dataclass(frozen=True)
class Decision:
    """What to run until the next decision point, and why (one line, for events and logs)."""

    kind: Kind
    zone: str | None
    reason: str

    @property
    def placement(self) -> Tenancy:
        """The decision as a :class:`Tenancy`."""
        return Tenancy(self.kind, self.zone)


@dataclass
class AvailabilityEstimate:
    """Online per-zone record of spot availability: ticks seen, ticks with spot, preemptions.

    Fed with :meth:`observe` once per decision point, with the availability signals of that
    moment only. The expected spot lifetime is (hours seen with spot + prior) / (spells + 1):
    a zone seen flapping scores worse than one seen stable, and an unseen zone gets the prior.
    """

    prior_lifetime_hours: float = 4.0
    seen: dict[str, int] = field(default_factory=dict)
    up: dict[str, int] = field(default_factory=dict)
    losses: dict[str, int] = field(default_factory=dict)
    up_hours: dict[str, float] = field(default_factory=dict)
    _last: dict[str, bool] = field(default_factory=dict)
    any_seen: int = 0
    any_up: int = 0

    def observe(self, available: dict[str, bool], step_hours: float) -> None:
        """Record one decision point's availability signals (zone -> spot available now)."""
        self.any_seen += 1
        self.any_up += any(available.values())
        for zone in sorted(available):
            now = bool(available[zone])
            self.seen[zone] = self.seen.get(zone, 0) + 1
            if now:
                self.up[zone] = self.up.get(zone, 0) + 1
                self.up_hours[zone] = self.up_hours.get(zone, 0.0) + step_hours
            elif self._last.get(zone, False):
                self.losses[zone] = self.losses.get(zone, 0) + 1
            self._last[zone] = now

    def availability(self, zone: str) -> float:
        """Fraction of decision points with spot in ``zone`` so far (Laplace-smoothed)."""
        return (self.up.get(zone, 0) + 1) / (self.seen.get(zone, 0) + 2)

    def any_availability(self) -> float:
        """Fraction of decision points with spot in at least one zone (Laplace-smoothed)."""
        return (self.any_up + 1) / (self.any_seen + 2)

    def expected_lifetime_hours(self, zone: str) -> float:
        """Expected hours a spot instance lasts in ``zone``, from the spells seen so far."""
        return (self.up_hours.get(zone, 0.0) + self.prior_lifetime_hours) / (self.losses.get(zone, 0) + 1)


@dataclass(frozen=True)
class PolicyConfig:
    """Tuning of :func:`decide`.

    ``hysteresis``: leave on-demand for spot once progress is this many restart overheads
    ahead of the uniform progress line (the paper uses 2; 1 measured best on the traces, see
    bench/RESULTS.md). ``margin_hours``: slack kept, beyond the exact safety net, on a switch
    from on-demand back to spot. ``reserve_factor``: rule 3's second test (0 turns it off).
    """

    hysteresis: float = 1.0
    margin_hours: float = 0.0
    # Wait for spot, even behind the uniform line, while the slack exceeds this many times the
    # idle time the work left is expected to need (from the availability seen so far).
    reserve_factor: float = 1.0


def _ticks_needed(hours: float, step: float) -> int:
    return max(math.ceil(hours / step - _EPS), 0)


def _ticks_left(hours: float, step: float) -> int:
    return math.floor(hours / step + _EPS)


def fallback_hours(state: TaskState, action: Tenancy, launch_hours: float) -> float:
    """Hours on-demand needs to finish from the *next* decision point if ``action`` is taken now.

    Worst case: a spot instance is preempted right after this step, so on-demand then pays a
    fresh restart overhead; on-demand kept running pays none. ``launch_hours`` is the overhead
    this action starts with (the pending one when it continues the current placement).
    """
    s, work, d = state.step_hours, state.work_left_hours, state.restart_hours
    if action.kind == "idle":
        return work + d
    productive = max(s - launch_hours, 0.0)
    work_next = max(work - productive, 0.0)
    if work_next <= _EPS:
        return 0.0
    if action.kind == "on_demand":
        return work_next + max(launch_hours - s, 0.0)
    return work_next + d


def is_safe(state: TaskState, action: Tenancy, launch_hours: float) -> bool:
    """True if after ``action`` the deadline can still be met by on-demand from the next step."""
    if state.work_left_hours <= _EPS:
        return True
    step = state.step_hours
    fallback = fallback_hours(state, action, launch_hours)
    if action.kind != "idle" and fallback == 0.0:
        # The work ends within this very step: it only has to end by the deadline.
        return _ticks_needed(state.work_left_hours + launch_hours, step) <= _ticks_left(state.hours_to_deadline, step)
    return _ticks_needed(fallback, step) <= _ticks_left(state.hours_to_deadline - step, step)


def slack_hours(state: TaskState) -> float:
    """Hours the task can still lose and finish on on-demand: time left - work left - launches."""
    on_od = state.current.kind == "on_demand"
    launch = state.pending_overhead_hours if on_od else state.restart_hours
    return state.hours_to_deadline - state.work_left_hours - launch


def _ahead_hours(state: TaskState, later_hours: float) -> float:
    """Progress ahead of the uniform line ``ep(t) = t*C0/R0`` (Wu et al.), ``later_hours`` from now."""
    window = state.elapsed_hours + state.hours_to_deadline
    line = (state.elapsed_hours + later_hours) * state.work_total_hours / window
    return state.work_done_hours - line


def _launch_hours(state: TaskState, target: Tenancy, zone: Zone | None) -> float:
    """Overhead an action starts with: the pending one if it keeps the current VM, else a launch."""
    if target == state.current:
        return state.pending_overhead_hours
    move = zone.move_hours if zone is not None and target.zone != state.current.zone else 0.0
    return state.restart_hours + move


def _effective_price(zone: Zone, state: TaskState, estimate: AvailabilityEstimate | None) -> float:
    """Spot $/h of useful work in ``zone``: price plus launch and move costs over the lifetime."""
    lifetime = estimate.expected_lifetime_hours(zone.name) if estimate else 4.0
    lifetime = max(lifetime, state.step_hours)
    staying = state.current == Tenancy("spot", zone.name)
    launch = 0.0 if staying else state.restart_hours + zone.move_hours
    useful = max(lifetime - launch, state.step_hours * 0.5)
    return (zone.spot_price * lifetime + (0.0 if staying else zone.move_dollars)) / useful


def decide(
    state: TaskState,
    zones: list[Zone],
    estimate: AvailabilityEstimate | None = None,
    config: PolicyConfig = PolicyConfig(),
) -> Decision:
    """Choose spot in a zone, on-demand, or idle until the next decision point (see module doc).

    ``zones`` are the places the task may run (one for a single-zone task); the current zone,
    if any, must be among them. Deterministic: ties break by zone name.
    """
    if state.work_left_hours <= _EPS:
        return Decision("idle", None, "work done")
    by_name = {z.name: z for z in zones}
    cur = state.current
    home = by_name.get(cur.zone) if cur.zone else None
    # On-demand goes where the task already is, else the cheapest zone (its checkpoint moved).
    od_zone = home or min(zones, key=lambda z: (z.on_demand_price + z.move_dollars, z.name))
    od = Tenancy("on_demand", od_zone.name)
    od_launch = _launch_hours(state, od, od_zone)
    slack = slack_hours(state)
    d = state.restart_hours

    # 2. Exploitation: a running spot VM is kept while the safety net allows.
    if cur.kind == "spot" and home is not None and home.spot_available:
        if is_safe(state, cur, state.pending_overhead_hours):
            return Decision("spot", cur.zone, "keep spot: still running and the deadline is safe")
        return Decision("on_demand", od.zone, "safety net: a preemption now would miss the deadline")

    # 3. Wait for spot while ahead of the uniform line, or while the slack covers the idle
    # time the work left is expected to need at the availability seen so far.
    waiting_ok = _ahead_hours(state, 0.0) >= -_EPS
    if not waiting_ok and estimate is not None and config.reserve_factor > 0:
        p = estimate.any_availability()
        need = config.reserve_factor * state.work_left_hours * (1 - p) / p
        waiting_ok = slack - state.step_hours >= need + 2 * d
    spot_zones = [z for z in zones if z.spot_available]
    best: Zone | None = None
    if spot_zones:
        best = min(spot_zones, key=lambda z: (_effective_price(z, state, estimate), z.name))
        # Spot that is expected to be gone before its launch pays off costs more per useful
        # hour than on-demand: treat it as no spot at all.
        if _effective_price(best, state, estimate) >= od_zone.on_demand_price:
            best = None
    if best is not None:
        target = Tenancy("spot", best.name)
        launch = _launch_hours(state, target, best)
        safe = is_safe(state, target, launch)
        if cur.kind == "on_demand":
            # 4. Hysteresis: leave on-demand only once ahead of the line and with slack to switch.
            left_after = state.hours_to_deadline - state.work_left_hours - launch - d
            ahead = _ahead_hours(state, config.hysteresis * d)
            if safe and left_after >= config.margin_hours - _EPS and ahead >= -_EPS:
                return Decision("spot", best.name, f"spot back in {best.name}: slack {left_after:.2f} h covers the switch")
            return Decision("on_demand", od.zone, "stay on on-demand: too little slack to risk a switch to spot")
        if safe:
            why = "preempted, spot" if cur.kind == "spot" else "spot"
            return Decision("spot", best.name, f"{why} available in {best.name}")
        return Decision("on_demand", od.zone, "safety net: no slack left for a spot launch")

    # No usable spot: stay on on-demand, or wait while rule 3 allows it.
    if cur.kind == "on_demand":
        return Decision("on_demand", od.zone, "no spot: keep on-demand")
    if waiting_ok and is_safe(state, IDLE, 0.0):
        return Decision("idle", None, f"no spot: wait, ahead of uniform progress, slack {slack:.2f} h")
    if not is_safe(state, od, od_launch):
        return Decision("on_demand", od.zone, "deadline at risk: on-demand now is the best left")
    return Decision("on_demand", od.zone, f"no spot and behind uniform progress (slack {slack:.2f} h): on-demand")
