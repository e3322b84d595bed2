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


def test_ordered_alternatives_no_longer_multiply_the_objective(tmp_path):
    # `ordered` keeps only its first feasible alternative, so every candidate of a task has one
    # preference, K = 1, and three maximal tasks fit as they do without `ordered`; all of them
    # land in the first alternative's region, even where the second is as cheap or cheaper.
    solved = solve_spec(spec_file(tmp_path, 3, ORDERED))
    assert {tp.candidate.location.region for tp in solved.placement.tasks} == {"us-south1"}
    reversed_order = ORDERED.replace("{region: us-south1}, {region: europe-west4}",
                                     "{region: europe-west4}, {region: us-south1}")
    solved = solve_spec(spec_file(tmp_path, 3, reversed_order))
    assert {tp.candidate.location.region for tp in solved.placement.tasks} == {"europe-west4"}
