"""Issue 9 item 8: the output a new user reads (durations and money for humans, `status` of a
never-applied plan, `catalog show` with nothing matched or spot not cheaper, `diff --json`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from skyplan import fmt

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def skyplan(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "skyplan", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.parametrize(("hours", "text"), [
    (0, "0 min"), (0.0001, "<1 s"), (0.0002, "1 s"), (0.01, "36 s"), (0.0306, "2 min"),
    (0.5, "30 min"), (0.999, "1 h"), (1, "1 h"), (2.0833, "2 h 5 min"), (11.5, "11 h 30 min"),
    (16.0622, "16 h 4 min"), (36, "36 h"), (99.999, "100 h"), (167.6, "168 h"), (-0.25, "−15 min"),
])
def test_duration(hours, text):
    assert fmt.duration(hours) == text


@pytest.mark.parametrize(("amount", "text"), [
    (None, "—"), (0, "$0.00"), (1e-9, "$0.00"), (0.0041, "<$0.01"), (0.005, "$0.01"), (0.5, "$0.50"),
    (1234.567, "$1,234.57"), (-2, "−$2.00"), (-0.001, "−<$0.01"),
])
def test_money(amount, text):
    assert fmt.money(amount) == text


def test_deltas_and_rates():
    assert [fmt.money_delta(x) for x in (0, 0.001, 1.2, -3.5)] == ["$0.00", "+<$0.01", "+$1.20", "−$3.50"]
    assert [fmt.duration_delta(h) for h in (0, 1.0833, -1 / 3)] == ["no change", "+1 h 5 min", "−20 min"]
    assert [fmt.rate(x) for x in (None, 0, 0.0042, 0.0416, 1.2345, 32.7726)] == ["—", "0", "0.0042", "0.0416",
                                                                                  "1.234", "32.77"]
    assert [fmt.percent(x) for x in (0, 1e-6, 0.338)] == ["0%", "<0.01%", "33.8%"]
    assert [fmt.seconds(x) for x in (0.001, 0.42, 12.34, 65)] == ["<0.01 s", "0.42 s", "12.3 s", "1 min 5 s"]


# Figures the trial saw: more than two decimals of hours, four decimals of dollars, "+$0.00".
RAW = re.compile(r"\d+\.\d{3,} h|\$\d+\.\d{3,}|[+−-]\$0\.00\b")


def test_plan_md_terminal_and_diff_read_for_humans(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    res = skyplan("compile", str(EXAMPLES / "ml-pipeline.yaml"), "-o", str(old), "--explain", "--pareto")
    assert res.returncode == 0, res.stderr
    assert skyplan("compile", str(EXAMPLES / "ml-pipeline.yaml"), "-o", str(new), "--objective", "time").returncode == 0
    doc = json.loads((old / "plan.json").read_text())
    md = (old / "PLAN.md").read_text()
    for text in (md, res.stdout):
        assert not RAW.search(text), RAW.search(text)
        assert f"makespan **{fmt.duration(doc['makespan_hours'])}**" in md
        assert fmt.money(doc["total_cost"]) in text
    assert re.search(r"makespan \*\*\d+ h( \d+ min)?\*\*", md)
    assert "| time |" in md and "h" in md.split("## Placement")[1].splitlines()[4]
    # Exact numbers stay in plan.json.
    assert isinstance(doc["makespan_hours"], float) and len(str(doc["makespan_hours"]).split(".")[1]) > 1
    diff = skyplan("diff", str(old), str(new))
    assert diff.returncode == 0
    assert not RAW.search(diff.stdout), diff.stdout
    assert re.search(r"\| makespan \| \d+ h \d+ min \| \d+ h( \d+ min)? \| −\d+ h( \d+ min)? \|", diff.stdout), diff.stdout
    assert re.search(r"^### .*per-run cost \$[\d,.]+ → \*\*\$[\d,.]+\*\* \(\+\$[\d,.]+, \+[\d.]+%\)$", diff.stdout,
                     re.MULTILINE), diff.stdout
    same = skyplan("diff", str(old), str(old))
    assert "(no change)" in same.stdout.splitlines()[1] and "| makespan |" in same.stdout
    assert re.search(r"\| makespan \| ([^|]+) \| \1 \| no change \|", same.stdout) and "$0.00 →" not in same.stdout


def test_diff_takes_json_like_every_command(tmp_path):
    out = tmp_path / "q"
    assert skyplan("compile", str(EXAMPLES / "quickstart.yaml"), "-o", str(out)).returncode == 0
    by_flag = skyplan("diff", str(out), str(out), "--json")
    by_format = skyplan("diff", str(out), str(out), "--format", "json")
    assert by_flag.returncode == 0 and by_flag.stdout == by_format.stdout
    assert json.loads(by_flag.stdout)["changes"] == []
    missing = skyplan("diff", str(out), str(tmp_path / "nope"), "--json")
    assert missing.returncode == 2 and "no plan here" in json.loads(missing.stdout)["error"]


def test_status_of_a_never_applied_plan_names_every_place(tmp_path):
    out = tmp_path / "ml"
    assert skyplan("compile", str(EXAMPLES / "ml-pipeline.yaml"), "-o", str(out)).returncode == 0
    doc = json.loads((out / "plan.json").read_text())
    azure = [t for t in doc["tasks"] if t["cloud"] == "azure"]
    assert azure and all(t["zone"] is None for t in azure)  # the case the trial saw
    res = skyplan("status", str(out))
    assert res.returncode == 0, res.stderr
    assert "None" not in res.stdout
    assert f"azure:{azure[0]['region']}" in res.stdout
    assert "$0.00" in res.stdout and "$0.0000" not in res.stdout


def test_catalog_show_says_when_nothing_matched():
    res = skyplan("catalog", "show", "--region", "mars-*")
    assert res.returncode == 2
    assert "no region matches" in res.stderr and "us-east-1" not in res.stderr.split("regions:")[0]
    assert "regions: " in res.stderr and "Traceback" not in res.stderr
    typo = skyplan("catalog", "show", "--cloud", "aws", "--region", "us-eest-1", "--json")
    assert typo.returncode == 2
    assert "did you mean" in json.loads(typo.stdout)["error"] and "us-east-1" in json.loads(typo.stdout)["error"]
    none_there = skyplan("catalog", "show", "--accelerator", "tpu-v5p-8", "--region", "eu-*")
    assert none_there.returncode == 2 and "offered in: europe-west" in none_there.stderr


def test_catalog_show_notes_spot_not_below_on_demand():
    res = skyplan("catalog", "show", "--cloud", "aws", "--region", "ap-northeast-2", "--accelerator", "A10G",
                  "--json", "--limit", "0")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["offerings"]
    flagged = [o for o in rows if o["note"]]
    assert flagged and all(o["spot_price"] >= o["price"] for o in flagged)
    assert all(o["spot_price"] is None or o["spot_price"] < o["price"] for o in rows if not o["note"])
    table = skyplan("catalog", "show", "--cloud", "aws", "--region", "ap-northeast-2", "--accelerator", "A10G",
                    "--limit", "0")
    assert "spot = on-demand" in table.stdout or "spot > on-demand" in table.stdout
    assert "not below on-demand" in table.stdout
    plain = skyplan("catalog", "show", "--limit", "3")
    assert "note" not in plain.stdout  # no empty column when no row needs a note


def test_compile_says_when_it_places_spot_that_is_not_cheaper(tmp_path):
    spec = tmp_path / "spot.yaml"
    spec.write_text("name: spoty\nallowed: {clouds: [aws], regions: [ap-northeast-2]}\ntasks:\n  - name: a\n"
                    "    resources: {accelerators: A10G:1, use_spot: true, cpus: 4, memory: 16}\n    hours: 1\n")
    out = tmp_path / "plan"
    # Only the zone whose spot price equals on-demand is left.
    zones = ["apne2-az1", "apne2-az2", "apne2-az4"]
    res = skyplan("compile", str(spec), "-o", str(out), *[f"--exclude-zone={z}" for z in zones])
    assert res.returncode == 0, res.stderr
    assert "not below its on-demand price" in res.stderr
    assert "not below its on-demand price" in (out / "PLAN.md").read_text()
    auto = tmp_path / "auto.yaml"
    auto.write_text(spec.read_text().replace("use_spot: true", "use_spot: auto"))
    res = skyplan("compile", str(auto), "-o", str(tmp_path / "auto"), *[f"--exclude-zone={z}" for z in zones])
    assert res.returncode == 0 and "not below its on-demand price" not in res.stderr
    assert json.loads((tmp_path / "auto" / "plan.json").read_text())["tasks"][0]["spot"] is False
