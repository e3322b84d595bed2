"""The deadline-aware spot policy (skyplan/spotpolicy.py) and its trace benchmark (bench/spot.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from skyplan.spotpolicy import AvailabilityEstimate, TaskState, Tenancy, Zone, decide, is_safe

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import spot  # noqa: E402  (bench/spot.py, the simulator)

OD, SPOT = 3.06, 0.9731


def _zone(name: str, has_spot: bool, move: float = 0.0) -> Zone:
    return Zone(name, has_spot, SPOT, OD, move_dollars=move, move_hours=0.0)


def _state(**kw) -> TaskState:
    base = dict(work_total_hours=10.0, work_done_hours=0.0, hours_to_deadline=20.0, restart_hours=0.2, step_hours=0.1)
    base.update(kw)
    return TaskState(**base)


def test_spot_gone_near_deadline_means_on_demand() -> None:
    # Preempted with 3 h of work left and 3.3 h to go: waiting would miss, spot is gone.
    st_ = _state(work_done_hours=7.0, hours_to_deadline=3.3, elapsed_hours=16.7, current=Tenancy("spot", "a"))
    d = decide(st_, [_zone("a", False)])
    assert (d.kind, d.zone) == ("on_demand", "a")


def test_spot_launch_refused_when_a_preemption_could_not_be_absorbed() -> None:
    # Spot is there, but a launch (0.2 h) lost after one step (0.1 h) plus an on-demand launch
    # (0.2 h) and 3 h of work is 3.5 h > 3.28 h; on-demand now (3.2 h) still fits.
    st_ = _state(work_done_hours=7.0, hours_to_deadline=3.28, elapsed_hours=16.72)
    d = decide(st_, [_zone("a", True)])
    assert d.kind == "on_demand" and "safety net" in d.reason


def test_plenty_of_slack_waits_for_spot_and_keeps_running_spot() -> None:
    ahead = _state(work_done_hours=5.0, elapsed_hours=2.0, hours_to_deadline=40.0)
    assert decide(ahead, [_zone("a", False)]).kind == "idle"
    running = _state(work_done_hours=5.0, elapsed_hours=2.0, hours_to_deadline=40.0, current=Tenancy("spot", "a"))
    assert decide(running, [_zone("a", True)]).placement == Tenancy("spot", "a")


def test_behind_uniform_progress_without_spot_takes_on_demand() -> None:
    # 20 h elapsed of a 40 h window with 2 of 10 h done: far behind the line 5 h.
    behind = _state(work_done_hours=2.0, elapsed_hours=20.0, hours_to_deadline=20.0)
    assert decide(behind, [_zone("a", False)]).kind == "on_demand"


def test_moves_to_the_zone_that_has_spot() -> None:
    st_ = _state(work_done_hours=5.0, elapsed_hours=2.0, hours_to_deadline=40.0, current=Tenancy("spot", "a"))
    d = decide(st_, [_zone("a", False), _zone("b", True, move=1.0)])
    assert (d.kind, d.zone) == ("spot", "b")


def test_prefers_the_zone_seen_more_stable() -> None:
    est = AvailabilityEstimate()
    for k in range(40):  # "a" flaps every other tick, "b" stays up
        est.observe({"a": k % 2 == 0, "b": True}, 0.1)
    st_ = _state(work_done_hours=5.0, elapsed_hours=2.0, hours_to_deadline=40.0)
    d = decide(st_, [_zone("a", True), _zone("b", True)], est)
    assert d.zone == "b"
    assert est.expected_lifetime_hours("a") < est.expected_lifetime_hours("b")


def test_done_task_is_idle() -> None:
    assert decide(_state(work_done_hours=10.0), [_zone("a", True)]).kind == "idle"


def test_is_safe_counts_the_preemption_after_a_spot_step() -> None:
    # 1 h of work left, d=0.2, step 0.1: a spot launch lost after its first step costs that
    # step, then an on-demand launch and the work: 0.1 + 0.2 + 1 = 1.3 h.
    st_ = _state(work_done_hours=9.0, hours_to_deadline=1.3)
    assert is_safe(st_, Tenancy("spot", "a"), 0.2)
    st2 = _state(work_done_hours=9.0, hours_to_deadline=1.25)
    assert not is_safe(st2, Tenancy("spot", "a"), 0.2)
    assert is_safe(st2, Tenancy("on_demand", "a"), 0.2)


def _feasible(task: float, deadline: float, restart: float, gap: float) -> bool:
    return math.ceil((task + restart) / gap - 1e-9) <= math.floor(deadline / gap + 1e-9)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    gap=st.sampled_from([0.05, 0.1, 0.25, 1 / 6]),
    task=st.floats(0.5, 8.0),
    slack=st.floats(0.0, 6.0),
    restart=st.sampled_from([0.0, 0.02, 0.2, 0.4, 0.7]),
    zones=st.integers(1, 3),
)
def test_never_misses_a_feasible_deadline(data, gap, task, slack, restart, zones) -> None:
    deadline = task + restart + slack
    setup = spot.Setup(task, deadline, restart, checkpoint_gb=20.0)
    n = math.floor(deadline / gap + 1e-9)
    names = [f"us-east-1{c}" for c in "abc"[:zones]]
    avail = {z: data.draw(st.lists(st.booleans(), min_size=n, max_size=n)) for z in names}
    policy = spot._skyplan(setup, names, gap, spot.PolicyConfig())
    cost, met = spot.run_once(setup, policy, avail, names[0], gap)
    # On-demand from the start needs no move, so the bound is the same for any number of zones.
    if _feasible(task, deadline, restart, gap):
        assert met, (task, deadline, restart, gap, avail)
    assert cost >= 0


def test_uniform_progress_and_skyplan_meet_deadline_when_spot_vanishes() -> None:
    # Spot for the first 30 h, then gone: both must finish 48 h of work by 52 h on on-demand.
    gap = 0.1
    n = math.floor(52 / gap + 1e-9)
    avail = {"us-east-1a": [k * gap < 30 for k in range(n)]}
    setup = spot.Setup(48, 52, 0.2)
    for pol in (spot._uniform_progress(setup, "us-east-1a", gap), spot._skyplan(setup, ["us-east-1a"], gap, spot.PolicyConfig())):
        cost, met = spot.run_once(setup, pol, avail, "us-east-1a", gap)
        assert met
        assert SPOT * 30 < cost < OD * 52


def test_on_demand_cost_is_the_billed_ticks() -> None:
    gap = 600 / 3600
    setup = spot.Setup(48, 52, 0.2)
    n = math.floor(52 / gap + 1e-9)
    cost, met = spot.run_once(setup, spot._on_demand(setup, "z"), {"z": [False] * n}, "z", gap)
    assert met and math.isclose(cost, math.ceil((48.2) / gap) * gap * OD)


def test_bench_json_on_a_real_trace() -> None:
    trace = "bench/spot-traces/availability/1-node/aws-10-26-2022/us-west-2a_v100_1.json"
    out = subprocess.run(
        [sys.executable, "bench/spot.py", "--json", "--task-hours", "48", "--deadline-hours", "52",
         "--restart-hours", "0.2", trace],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    rows = json.loads(out.stdout)
    assert [r["policy"] for r in rows] == list(spot.POLICIES)
    for r in rows:
        assert set(r) == {"trace", "policy", "mean_cost", "deadline_met", "runs"}
        assert r["trace"] == trace and r["runs"] == 100
    by = {r["policy"]: r for r in rows}
    for name in ("on_demand", "uniform_progress", "skyplan", "skyplan_multi_region"):
        assert by[name]["deadline_met"] is True
    assert by["skyplan"]["mean_cost"] < by["on_demand"]["mean_cost"]
    # The value polarity: 1 = spot available. Reading it the other way round would make this
    # trace (79 % of ticks with spot) cost nearly on-demand.
    assert by["uniform_progress"]["mean_cost"] < 0.7 * by["on_demand"]["mean_cost"]


def test_the_benchmark_calls_the_policy_module_itself() -> None:
    import skyplan.spotpolicy

    assert spot.decide is skyplan.spotpolicy.decide


def test_gzip_traces_read_the_same(tmp_path: Path) -> None:
    import gzip
    import shutil

    src = REPO / "bench/spot-traces/availability/1-node/aws-10-26-2022/us-west-2a_v100_1.json"
    gz = tmp_path / (src.name + ".gz")
    with open(src, "rb") as f, gzip.open(gz, "wb") as g:
        shutil.copyfileobj(f, g)
    plain, packed = spot.load_trace(src), spot.load_trace(gz)
    assert packed.values == plain.values and packed.zone == "us-west-2a" and packed.itype == "v100_1"
    assert plain.gap_seconds == 600 and set(plain.values) == {0, 1}


def test_multi_region_moves_to_the_zone_with_spot_on_a_crafted_trace() -> None:
    # Zone a has spot for the first 10 h only, zone b always: single-zone must pay on-demand
    # for the rest, multi-region moves to b once and finishes on spot.
    gap = 0.1
    setup = spot.Setup(20, 24, 0.2, checkpoint_gb=50.0)
    n = math.floor(24 / gap + 1e-9)
    avail = {"us-east-1a": [k * gap < 10 for k in range(n)], "us-west-2b": [True] * n}
    single, ok1 = spot.run_once(setup, spot._skyplan(setup, ["us-east-1a"], gap, spot.PolicyConfig()),
                                {"us-east-1a": avail["us-east-1a"]}, "us-east-1a", gap)
    multi, ok2 = spot.run_once(setup, spot._skyplan(setup, sorted(avail), gap, spot.PolicyConfig()),
                               avail, "us-east-1a", gap)
    assert ok1 and ok2
    # All spot: two launches, one inter-region move of 50 GB (0.11 h, $1), one tick of rounding.
    assert multi < SPOT * (20 + 0.2 + 0.2 + 0.12 + gap) + 1.0 + 0.01
    assert single > multi + 10 * (OD - SPOT) * 0.9
