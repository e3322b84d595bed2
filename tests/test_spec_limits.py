"""Every number of the spec has a range; values outside it (or NaN, inf, booleans) fail with
file:line:key, and README's table says the same as the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from skyplan.errors import EXIT_BAD_INPUT, SpecError
from skyplan.models import SourcePos
from skyplan.spec import load_spec
from skyplan.spec._ranges import TABLE

KNOWN = ("A100", "V100", "H100")
TASK = "name: x\ntasks:\n  - name: a\n"
README = Path(__file__).parent.parent / "README.md"

# (spec text, line, key, text the message must contain)
OUT_OF_RANGE = [
    (TASK + "    hours: 1e308\n", 4, "tasks[a].hours", "> 0 and ≤ 10,000 h, got '1e308'"),
    (TASK + "    hours: 1e999\n", 4, "tasks[a].hours", "got '1e999'"),
    (TASK + "    hours: .nan\n", 4, "tasks[a].hours", "got '.nan'"),
    (TASK + "    hours: .inf\n", 4, "tasks[a].hours", "got '.inf'"),
    (TASK + "    hours: -3\n", 4, "tasks[a].hours", "got -3"),
    (TASK + "    hours: true\n", 4, "tasks[a].hours", "got 'true'"),
    (TASK + "    hours: 20000h\n", 4, "tasks[a].hours", "≤ 10,000 h, got '20000h'"),
    (TASK + "    resources: {accelerators: {A100: 8}}\n    hours: {A100: 1e5}\n", 5, "tasks[a].hours.A100",
     "≤ 10,000 h"),
    (TASK + "    resources: {accelerators: {A100: 8}}\n    hours: {default: .nan}\n", 5, "tasks[a].hours.default",
     "got '.nan'"),
    ("name: x\ndeadline: 1e9\ntasks: [{name: a}]\n", 2, "deadline", "> 0 and ≤ 100,000 h"),
    ("name: x\nbudget: 1000000000000\ntasks: [{name: a}]\n", 2, "budget", "> 0 and ≤ 1,000,000,000 USD"),
    ("name: x\nbudget: $99,999,999,999\ntasks: [{name: a}]\n", 2, "budget", "≤ 1,000,000,000 USD"),
    ("name: x\nbudget: -5\ntasks: [{name: a}]\n", 2, "budget", "expected an amount of US dollars"),
    ("name: x\nbudget: .nan\ntasks: [{name: a}]\n", 2, "budget", "expected an amount of US dollars"),
    (TASK + "    outputs_gb: 99999999999999\n", 4, "tasks[a].outputs_gb", "0 to 1,000,000 GB"),
    (TASK + "    outputs_gb: -1\n", 4, "tasks[a].outputs_gb", "expected a size in GB"),
    (TASK + "    outputs_gb: false\n", 4, "tasks[a].outputs_gb", "expected a size in GB"),
    (TASK + "    outputs: {s3://b/x: 900TB, s3://b/y: 900TB}\n", 4, "tasks[a].outputs", "in all: 0 to 1,000,000 GB"),
    (TASK + "    inputs: [{uri: s3://b/x, size_gb: 10000000}]\n", 4, "tasks[a].inputs[0].size_gb", "0 to 1,000,000 GB"),
    (TASK + "    inputs: {s3://b/x: 5000TB}\n", 4, "tasks[a].inputs.s3://b/x", "0 to 1,000,000 GB"),
    (TASK + "    resources: {cpus: 100000}\n", 4, "tasks[a].resources.cpus", "> 0 and ≤ 10,000"),
    (TASK + "    resources: {memory: 1000TB+}\n", 4, "tasks[a].resources.memory", "≤ 100,000 GiB"),
    (TASK + "    resources: {disk: 1000000}\n", 4, "tasks[a].resources.disk", "1 to 100,000 GB"),
    (TASK + "    resources: {disk: 1.5}\n", 4, "tasks[a].resources.disk", "a whole number 1 to 100,000 GB"),
    (TASK + "    num_nodes: 1001\n", 4, "tasks[a].num_nodes", "a whole number 1 to 1,000"),
    (TASK + "    num_nodes: 1e308\n", 4, "tasks[a].num_nodes", "a whole number 1 to 1,000"),
    (TASK + "    num_nodes: .inf\n", 4, "tasks[a].num_nodes", "expected a number of nodes, got"),
    (TASK + "    num_nodes: yes\n", 4, "tasks[a].num_nodes", "expected a number of nodes, got"),
    (TASK + "    resources: {accelerators: 'A100:2000'}\n", 4, "tasks[a].resources.accelerators", "1 to 1,000"),
    (TASK + "    resources: {accelerators: {A100: 1e9}}\n", 4, "tasks[a].resources.accelerators.A100", "1 to 1,000"),
    (TASK + "    resources: {accelerators: {A100: .nan}}\n", 4, "tasks[a].resources.accelerators.A100",
     "expected a number of accelerators"),
    (TASK + "    resources: {ports: 0}\n", 4, "tasks[a].resources.ports", "expected a port (1-65535)"),
    ("name: x\nquotas: [{cloud: aws, vcpus: 1e12}]\ntasks: [{name: a}]\n", 2, "quotas[0].vcpus",
     "0 to 10,000,000"),
    ("name: x\nquotas: [{cloud: aws, accelerators: -1}]\ntasks: [{name: a}]\n", 2, "quotas[0].accelerators",
     "0 to 1,000,000"),
    ("name: x\nquotas: [{cloud: aws, nodes: .nan}]\ntasks: [{name: a}]\n", 2, "quotas[0].nodes",
     "expected a limit on nodes"),
    ("name: x\nquotas: [{cloud: aws, nodes: true}]\ntasks: [{name: a}]\n", 2, "quotas[0].nodes",
     "expected a limit on nodes"),
    ("name: x\npools: [{name: p, user: u, hourly_cost: 1e9, hosts: [{address: h}]}]\ntasks: [{name: a}]\n", 2,
     "pools[0].hourly_cost", "0 to 10,000 USD/h"),
    ("name: x\npools: [{name: p, user: u, hosts: [{address: h, cpus: 0}]}]\ntasks: [{name: a}]\n", 2,
     "pools[0].hosts[0].cpus", "> 0 and ≤ 10,000"),
    ("name: x\npools: [{name: p, user: u, hosts: [{address: h, memory: 1e7}]}]\ntasks: [{name: a}]\n", 2,
     "pools[0].hosts[0].memory", "≤ 100,000 GiB"),
    ("name: x\npools: [{name: p, user: u, hosts: [{address: h, port: 70000}]}]\ntasks: [{name: a}]\n", 2,
     "pools[0].hosts[0].port", "a whole number 1 to 65,535"),
    ("name: x\npools: [{name: p, user: u, hosts: [{address: h, accelerators: 'A100:5000'}]}]\ntasks: [{name: a}]\n",
     2, "pools[0].hosts[0].accelerators", "1 to 1,000"),
]


@pytest.mark.parametrize(("text", "line", "key", "message"), OUT_OF_RANGE,
                         ids=[f"{i}:{case[2]}" for i, case in enumerate(OUT_OF_RANGE)])
def test_numbers_outside_their_range_name_file_line_and_key(text, line, key, message):
    with pytest.raises(SpecError) as caught:
        load_spec("bad.yaml", text=text, known_accelerators=KNOWN)
    assert caught.value.pos == SourcePos("bad.yaml", line, key)
    assert message in caught.value.detail
    assert caught.value.exit_code == EXIT_BAD_INPUT


def test_the_maxima_themselves_are_accepted():
    spec = load_spec("ok.yaml", known_accelerators=KNOWN, text=(
        "name: x\ndeadline: 100000\nbudget: 1000000000\n"
        "quotas: [{cloud: aws, vcpus: 10000000}]\n"
        "tasks:\n  - name: a\n    hours: 10000\n    num_nodes: 1000\n    outputs_gb: 1000000\n"
        "    resources: {cpus: 10000, memory: 100000, disk: 100000}\n"
        "    inputs: [{uri: s3://b/x, size_gb: 1000000}]\n"
        "  - name: b\n    resources: {accelerators: 'A100:1000'}\n"))
    a, b = spec.tasks
    assert (a.hours, a.num_nodes, a.outputs_gb, a.inputs[0].size_gb) == (10000, 1000, 1e6, 1e6)
    assert (a.options[0].cpus.value, a.options[0].memory_gib.value, a.options[0].disk_gb) == (1e4, 1e5, 100000)
    assert b.options[0].accelerator.count == 1000
    assert (spec.deadline_hours, spec.budget, spec.quotas[0].limit) == (1e5, 1e9, 1e7)


def test_readme_documents_every_range():
    """The README table is the user's copy of `TABLE`: each row's key and range text appear in it."""
    text = README.read_text()
    rows = {m.group(1).strip(): m.group(2).strip()
            for m in re.finditer(r"^\| `?([^|]+?)`? \| ([^|]+) \|$", text, re.MULTILINE)}
    for key, limits in TABLE:
        assert rows.get(key.replace("`", "")) == limits.text(), key


@pytest.mark.parametrize(("task", "error"), [
    ("    hours: 1e308\n", "5: tasks[a].hours: expected a number of hours like 36h or 12: > 0 and ≤ 10,000 h, got '1e308'"),
    ("    outputs_gb: 99999999999999\n  - {name: b, depends_on: a}\n",
     "5: tasks[a].outputs_gb: expected a size in GB like 50: 0 to 1,000,000 GB, got '99999999999999'"),
], ids=["hours", "outputs_gb"])
def test_compile_refuses_the_reported_overflows_in_one_line(tmp_path, task, error):
    spec = tmp_path / "h.yaml"
    spec.write_text("name: q\nallowed: {clouds: [aws]}\ntasks:\n  - name: a\n" + task)
    done = subprocess.run([sys.executable, "-m", "skyplan.cli", "compile", str(spec), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr == f"error: {spec}:{error}\n"
