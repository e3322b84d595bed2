"""Infeasibility and exclusion errors lead with the file:line:key (or the flag) that causes them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from skyplan.errors import EXIT_BAD_INPUT, EXIT_INFEASIBLE, CatalogError, InfeasibleError, SpecError
from skyplan.pipeline import solve_spec


def solve(tmp_path, text: str, **kwargs):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path, lambda: solve_spec(path, **kwargs)


def failure(tmp_path, text: str, error=InfeasibleError, **kwargs) -> tuple[str, str]:
    path, run = solve(tmp_path, text, **kwargs)
    with pytest.raises(error) as caught:
        run()
    assert "\n" not in caught.value.message
    return str(path), caught.value.message


def test_budget_points_at_budget(tmp_path):
    path, message = failure(tmp_path, "name: b\nbudget: 1\nallowed: {clouds: [aws]}\ntasks:\n"
                                      "  - {name: a, resources: {cpus: 8+}, hours: 100}\n")
    assert message.startswith(f"{path}:2: budget: cheapest plan costs $")
    assert message.endswith(" > budget $1.00")


def test_deadline_points_at_deadline(tmp_path):
    path, message = failure(tmp_path, "name: d\n\ndeadline: 2h\ntasks:\n  - {name: a, hours: 10}\n")
    assert message == f"{path}:3: deadline: fastest plan takes 10 h > deadline 2 h"


def test_deadline_and_budget_conflict_names_both(tmp_path):
    # Either alone is met (T4 is cheap and slow, A100 fast and dear); together they are not.
    path, message = failure(tmp_path, (
        "name: both\ndeadline: 12h\nbudget: $15\nallowed: {clouds: [gcp]}\ntasks:\n  - name: a\n"
        "    resources: {accelerators: {T4: 1, A100: 1}}\n    hours: {T4: 20, A100: 10}\n"))
    assert message.startswith(f"{path}:2: deadline: deadline 12 h and budget $15.00 ({path}:3: budget) conflict: ")


def test_quota_conflict_points_at_the_quota_limit(tmp_path):
    path, message = failure(tmp_path, (
        "name: q\ndeadline: 3h\nallowed: {clouds: [aws], regions: [us-east-1]}\nquotas:\n"
        "  - {name: gpus, cloud: aws, accelerators: 8}\ntasks:\n"
        "  - {name: a, resources: {accelerators: A100:8}, hours: 2}\n"
        "  - {name: b, resources: {accelerators: A100:8}, hours: 2}\n"))
    assert message.startswith(f"{path}:2: deadline: deadline 3 h and quota gpus "
                              f"(8 accelerators; {path}:5: quotas[0].accelerators) conflict")


def test_quota_too_small_for_a_task_points_at_the_quota(tmp_path):
    path, message = failure(tmp_path, (
        "name: q\nallowed: {clouds: [aws]}\nquotas:\n  - name: small\n    cloud: aws\n    vcpus: 4\n"
        "tasks:\n  - {name: a, resources: {cpus: 8+}}\n"))
    assert message == f"{path}:6: quotas[0].vcpus: quota small (4 vCPUs) cannot hold task 'a' (8 vCPUs) at any time"


def test_accelerator_count_points_at_the_accelerator(tmp_path):
    path, message = failure(tmp_path, "name: c\ntasks:\n  - name: train\n    resources:\n"
                                      "      accelerators: H100:3\n")
    assert message == (f"{path}:5: tasks[train].resources.accelerators: task 'train': "
                       "H100 comes in counts 1, 2, 4, 8, not 3")


def test_each_accelerator_choice_points_at_itself(tmp_path):
    path, message = failure(tmp_path, "name: c\ntasks:\n  - name: t\n    resources:\n      accelerators:\n"
                                      "        - H100:3\n        - A100:5\n")
    assert message.startswith(f"{path}:6: tasks[t].resources.accelerators[0]: task 't': H100 comes in counts")
    assert message.endswith(f"A100 comes in counts 1, 2, 4, 8, 16, not 5 ({path}:7: tasks[t].resources.accelerators[1])")


@pytest.mark.parametrize(("text", "line", "key"), [
    ("name: r\nallowed:\n  regions: [mars-*]\ntasks:\n  - name: a\n", 3, "allowed.regions"),
    ("name: r\ntasks:\n  - name: a\n    allowed: {regions: [mars-*]}\n", 4, "tasks[a].allowed.regions"),
    ("name: r\nallowed: {regions: [us-*], clouds: [aws]}\ntasks:\n  - {name: a, allowed: {regions: [mars-*]}}\n",
     4, "tasks[a].allowed.regions"),
    ("name: r\nallowed: {clouds: [local]}\ntasks:\n  - name: a\n    resources: {accelerators: A100:8}\n",
     2, "allowed.clouds"),
])
def test_allowed_keys_that_match_nothing_are_pointed_at(tmp_path, text, line, key):
    path, message = failure(tmp_path, text)
    assert message.startswith(f"{path}:{line}: {key}: task 'a': no offering of ")


def test_all_regions_in_the_spec_excluded_points_at_exclude_zones(tmp_path):
    path, message = failure(tmp_path, "name: e\nallowed: {clouds: [aws], regions: [us-east-1]}\n"
                                      "exclude_zones: [use1-az1, us-east-1]\ntasks:\n  - name: a\n")
    assert message.startswith(f"{path}:3: exclude_zones[1]: task 'a': no offering of cpus 2+ ")


def test_all_regions_excluded_by_the_flag_names_the_flag(tmp_path):
    _, message = failure(tmp_path, "name: e\nallowed: {clouds: [aws], regions: [us-east-1]}\ntasks:\n  - name: a\n",
                         exclusions=["us-east-1"])
    assert message.startswith("--exclude-zone us-east-1: task 'a': no offering of cpus 2+ ")


def test_exclude_zones_typo_in_the_spec_is_a_spec_error(tmp_path):
    path, message = failure(tmp_path, "name: e\nexclude_zones:\n  - use1-az1\n  - use1-az9\ntasks:\n  - name: a\n",
                            error=SpecError)
    assert message.startswith(f"{path}:4: exclude_zones[1]: 'use1-az9': no such zone, region or cloud in the "
                              "catalog; did you mean use1-az")


def test_exclude_zone_flag_typo_names_the_flag(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: e\ntasks:\n  - name: a\n")
    done = subprocess.run([sys.executable, "-m", "skyplan.cli", "compile", str(spec), "-o", str(tmp_path / "out"),
                           "--exclude-zone", "use1-az9"], capture_output=True, text=True)
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr == ("error: --exclude-zone use1-az9: no such zone, region or cloud in the catalog; "
                                  "did you mean use1-az1, use1-az2, use1-az3 or use1-az4?\n")
    assert done.stderr.count("\n") == 1
    with pytest.raises(CatalogError, match="^--exclude-zone aw:use1-az1: unknown cloud 'aw'"):
        solve_spec(spec, exclusions=["aw:use1-az1"])


def test_infeasible_exits_3_with_the_location(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: d\ndeadline: 2h\ntasks:\n  - {name: a, hours: 10}\n")
    done = subprocess.run([sys.executable, "-m", "skyplan.cli", "compile", str(spec), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert done.returncode == EXIT_INFEASIBLE
    assert done.stderr.startswith(f"error: {spec}:2: deadline: fastest plan takes 10 h > deadline 2 h")


def test_a_long_error_stays_one_line_on_the_terminal(tmp_path):
    # The message runs past the console's 200 columns: it must not be folded.
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: r\nallowed:\n  regions: [mars-*]\ntasks:\n  - name: a\n")
    done = subprocess.run([sys.executable, "-m", "skyplan.cli", "compile", str(spec), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert done.returncode == EXIT_INFEASIBLE
    assert len(done.stderr) > 250 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: {spec}:3: allowed.regions: task 'a': no offering of cpus 2+ in regions mars-*")
