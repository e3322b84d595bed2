"""The optimizer refuses, with the task's file:line:key, numbers its int64 model cannot hold."""

from __future__ import annotations

import pytest

from skyplan.errors import EXIT_BAD_INPUT, SpecError
from skyplan.pipeline import solve_spec

# The priciest machine of the shipped catalog (≈ $29,362/h on demand), at the spec's maxima.
HUGE = "    resources: {accelerators: tpu-v5p-12288}\n    num_nodes: 1000\n    hours: 10000\n"
ORDERED = ("    resources:\n      accelerators: tpu-v5p-12288\n"
           "      ordered: [{region: us-south1}, {region: europe-west4}]\n    num_nodes: 1000\n    hours: 10000\n")


def spec_file(tmp_path, tasks: int, body: str):
    text = "name: big\ntasks:\n" + "".join(f"  - name: t{i}\n" + body for i in range(tasks))
    path = tmp_path / "big.yaml"
    path.write_text(text)
    return path


def test_many_maximal_tasks_are_refused_naming_the_costliest(tmp_path):
    path = spec_file(tmp_path, 10, HUGE)
    with pytest.raises(SpecError) as caught:
        solve_spec(path)
    assert str(caught.value).startswith(f"{path}:3: tasks[t0]: the plan could cost up to $2,936,217,600,000, "
                                        "more than the optimizer can count ($2,305,843,009,214)")
    assert caught.value.exit_code == EXIT_BAD_INPUT


def test_a_few_maximal_tasks_still_solve(tmp_path):
    solved = solve_spec(spec_file(tmp_path, 2, HUGE))
    # The cheapest region sells it for $25,804.80/h: two tasks of 10,000 h on 1,000 nodes.
    assert solved.placement.total_cost == pytest.approx(2 * 10000 * 1000 * 25804.8)
    assert solved.placement.solver.status == "OPTIMAL"


def test_the_preference_tie_break_counts_against_the_limit(tmp_path):
    # Three tasks fit without preferences (≈ $0.9e12 < $2.3e12) but not with them: the cost
    # objective is multiplied by K = Σ max preference + 1 = 4.
    solve_spec(spec_file(tmp_path, 3, HUGE))
    with pytest.raises(SpecError, match=r"tasks\[t0\]: .*\(÷ 4, the preference tie-break"):
        solve_spec(spec_file(tmp_path, 3, ORDERED))
