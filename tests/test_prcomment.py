"""`skyplan diff OLD NEW`: the PR comment (markdown, folded under GitHub's limit) and its JSON;
the `.tf` scanner against python-hcl2; Terraform plan JSON from a real `terraform plan`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest

from skyplan.review.comment import MAX_COMMENT_CHARS, comment_markdown, diff_document, marker
from skyplan.review.tfplan import read_plan_changes
from skyplan.review.tfscan import scan_stack, scan_text

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

# The documented (README "PR comments") top-level keys of `skyplan diff --json`.
DIFF_KEYS = {"diff_format", "format_version", "skyplan_version", "name", "marker", "status", "old", "new",
             "total_cost_delta", "total_cost_delta_percent", "compute_cost_delta", "egress_cost_delta",
             "makespan_delta_hours", "excluded_zones", "backend", "changes", "terraform", "terraform_plan"}


def skyplan(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "skyplan", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture(scope="module")
def ml_plans(tmp_path_factory) -> tuple[Path, Path]:
    """ml-pipeline, and the same with its training cloud excluded (another region of the same
    cloud costs the same: the data's path through the bucket does not depend on it)."""
    root = tmp_path_factory.mktemp("ml")
    old, new = root / "old", root / "new"
    assert skyplan("compile", str(EXAMPLES / "ml-pipeline.yaml"), "-o", str(old)).returncode == 0
    train = next(t for t in json.loads((old / "plan.json").read_text())["tasks"] if t["name"] == "train")
    res = skyplan("compile", str(EXAMPLES / "ml-pipeline.yaml"), "-o", str(new), "--exclude-zone", train["cloud"])
    assert res.returncode == 0, res.stderr
    return old, new


def test_markdown_comment_has_what_reviewers_expect(ml_plans):
    old, new = ml_plans
    res = skyplan("diff", str(old), str(new), "--format", "markdown")
    assert res.returncode == 0, res.stderr
    md = res.stdout
    lines = md.splitlines()
    assert lines[0] == "<!-- skyplan-diff:ml-pipeline -->"
    assert lines[1].startswith("### skyplan · ml-pipeline: per-run cost ") and "%" in lines[1]
    assert "| plan | before | after | change |" in md
    for row in ("| cost per run |", "| egress |", "| makespan |"):
        assert row in md
    assert "<details><summary>Tasks:" in md and "| `train` | moved |" in md
    doc = json.loads(skyplan("diff", str(old), str(new), "--json").stdout)
    moved = {c["task"] for c in doc["changes"] if c["action"] == "move"}
    assert "train" in moved
    # The stack the tasks left loses its regional network, the one they moved to gains blocks.
    train_change = next(c for c in doc["changes"] if c["task"] == "train")
    train_old, train_new = train_change["old"], train_change["new"]
    left = doc["terraform"][train_old["cloud"]]
    assert any(train_old["region"].replace("-", "_") in e["address"] for e in left["removed"])
    gained = doc["terraform"][train_new["cloud"]]
    assert gained["added"] and f"<details><summary>{train_new['cloud']}: +{len(gained['added'])}" in md
    assert f"Newly excluded: {train_old['cloud']}\n" in md
    assert len(md) < MAX_COMMENT_CHARS and "more" not in md


def test_json_has_the_documented_keys_and_is_deterministic(ml_plans):
    old, new = ml_plans
    first = skyplan("diff", str(old), str(new), "--json")
    second = skyplan("diff", str(old), str(new), "--format", "json")
    assert first.returncode == second.returncode == 0 and first.stdout == second.stdout
    doc = json.loads(first.stdout)
    assert set(doc) == DIFF_KEYS
    assert doc["status"] == "changed" and doc["diff_format"] == "1"
    assert set(doc["old"]) == {"name", "total_cost", "compute_cost", "egress_cost", "makespan_hours", "tasks"}
    assert doc["total_cost_delta"] == pytest.approx(doc["new"]["total_cost"] - doc["old"]["total_cost"], abs=1e-6)
    for stack in doc["terraform"].values():
        assert set(stack) == {"added", "removed", "changed", "old_resources", "new_resources"}
    readme = (REPO / "README.md").read_text()
    for key in DIFF_KEYS:
        assert f"`{key}`" in readme, f"{key} is not documented in README"


def test_same_plan_is_unchanged(ml_plans):
    old, _new = ml_plans
    doc = json.loads(skyplan("diff", str(old), str(old), "--json").stdout)
    assert doc["status"] == "unchanged" and doc["changes"] == []
    assert all(not (s["added"] or s["removed"] or s["changed"]) for s in doc["terraform"].values())
    md = skyplan("diff", str(old), str(old)).stdout
    assert "(no change)" in md.splitlines()[1] and "No task moved." in md


def test_a_pr_that_adds_a_plan(ml_plans, tmp_path):
    _old, new = ml_plans
    res = skyplan("diff", str(tmp_path / "not-on-main"), str(new), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "added" and doc["old"] is None and doc["total_cost_delta_percent"] is None
    assert {c["action"] for c in doc["changes"]} == {"add"} and len(doc["changes"]) == doc["new"]["tasks"]
    for name, stack in doc["terraform"].items():
        blocks = [b for b in scan_stack(new / name, root=new) if b.kind != "data"]
        assert len(stack["added"]) == len(blocks) and stack["removed"] == [] and stack["old_resources"] == 0
    md = skyplan("diff", str(tmp_path / "not-on-main"), str(new)).stdout
    assert ": new plan, per-run cost **$" in md.splitlines()[1]
    (tmp_path / "empty").mkdir()
    assert json.loads(skyplan("diff", str(tmp_path / "empty"), str(new), "--json").stdout)["status"] == "added"
    # NEW is what the PR compiled: a mistyped path fails rather than reading as "all removed".
    gone = skyplan("diff", str(new), str(tmp_path / "deleted"), "--json")
    assert gone.returncode == 2 and "no plan here" in json.loads(gone.stdout)["error"]


def test_bad_input_exits_2(ml_plans, tmp_path):
    old, new = ml_plans
    assert skyplan("diff", str(tmp_path / "a"), str(tmp_path / "b")).returncode == 2
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    res = skyplan("diff", str(tmp_path / "junk"), str(new))
    assert res.returncode == 2 and "not a plan directory" in res.stderr
    for bad in ("aws", "nostack=x.json", f"aws={tmp_path / 'missing.json'}"):
        res = skyplan("diff", str(old), str(new), "--tf-plan", bad, "--json")
        assert res.returncode == 2 and json.loads(res.stdout)["exit_code"] == 2, bad
    (tmp_path / "bad.json").write_text("not json\n")
    res = skyplan("diff", str(old), str(new), "--tf-plan", f"aws={tmp_path / 'bad.json'}")
    assert res.returncode == 2 and "bad.json:1" in res.stderr and "Traceback" not in res.stderr


def test_marker_name():
    assert marker("ml-pipeline") == "<!-- skyplan-diff:ml-pipeline -->"
    assert marker("a --> b") == "<!-- skyplan-diff:a-b -->"
    assert marker("?") == "<!-- skyplan-diff:plan -->"


# ---------------------------------------------------------------------------------------------
# folding: a 2,000-task diff stays under GitHub's limit
# ---------------------------------------------------------------------------------------------


def _synthetic_plan(directory: Path, region: str, n: int, price: float) -> None:
    """A plan directory of `n` tasks in `region` with an aws stack of one module per task."""
    tasks = [{"name": f"task-{i:04d}", "cloud": "aws", "region": region, "zone": f"{region}a",
              "instance_type": "m6i.4xlarge", "accelerator": None, "accelerator_count": 0, "num_nodes": 1,
              "spot": False, "hours": 1.0, "hours_given": True, "hourly_price": price,
              "compute_cost": round(price * (1 + i / n), 6), "egress_cost": 0.0, "start_hours": 0.0,
              "end_hours": 1.0, "depends_on": []} for i in range(n)]
    doc = {"format_version": "1.1", "name": "big", "objective": "cost", "tasks": tasks,
           "total_cost": round(sum(t["compute_cost"] for t in tasks), 6), "makespan_hours": 1.0,
           "excluded_zones": []}
    (directory / "aws").mkdir(parents=True)
    (directory / "plan.json").write_text(json.dumps(doc))
    key = region.replace("-", "_")
    tf = [f'resource "aws_security_group" "{key}" {{\n  count = 1\n}}\n']
    tf += [f'module "task-{i:04d}" {{\n  source = "../modules/aws-node"\n'
           f'  count  = contains(var.active_tasks, "task-{i:04d}") ? 1 : 0\n  region = "{region}"\n}}\n'
           for i in range(n)]
    (directory / "aws" / "main.tf").write_text("\n".join(tf))


def test_a_2000_task_diff_is_folded_under_the_limit(tmp_path):
    _synthetic_plan(tmp_path / "old", "us-east-1", 2000, 0.768)
    _synthetic_plan(tmp_path / "new", "us-west-2", 2000, 0.70)
    res = skyplan("diff", str(tmp_path / "old"), str(tmp_path / "new"))
    assert res.returncode == 0, res.stderr
    md = res.stdout
    assert len(md.encode("utf-16-le")) // 2 <= MAX_COMMENT_CHARS
    shown = md.count("| moved |")
    assert 50 < shown < 2000
    assert f"…and {2000 - shown} more task change(s)" in md
    # Largest cost change first: the last task (the most expensive) is shown, the first is folded.
    assert "`task-1999`" in md and "| `task-0000` |" not in md
    row = next(line for line in md.splitlines() if line.startswith("| `task-1999` |"))
    assert row.endswith("| −$0.14 |") and "us-east-1 → **us-west-2**" in row
    doc = diff_document(tmp_path / "old", tmp_path / "new")
    assert md.splitlines()[1].endswith(f"(−${-doc['total_cost_delta']:,.2f}, "
                                       f"−{-doc['total_cost_delta_percent']:.3g}%)")
    # The Terraform list is folded too, and its summary still counts every block.
    tf_shown = md.count("| ~ | `module.task-")
    assert 0 < tf_shown < 2000 and f"…and {2000 - tf_shown} more resource change(s)" and "| + | `aws_security_group.us_west_2`" in md in md
    assert "| aws | 2001 → 2001 | 1 | 1 | 2000 |" in md
    # Folding is a pure function of the document and the limit.
    small = comment_markdown(doc, limit=6000)
    assert len(small) <= 6000 and small.splitlines()[0] == "<!-- skyplan-diff:big -->"
    assert "| cost per run |" in small and "more task change(s)" in small
    assert comment_markdown(doc) == md


# ---------------------------------------------------------------------------------------------
# tfscan against python-hcl2
# ---------------------------------------------------------------------------------------------


def _hcl2_addresses(path: Path) -> set[str]:
    """Top-level resource / data / module addresses of one .tf file, as python-hcl2 reads them."""
    doc = hcl2.load(path.open())
    out = set()
    for kind in ("resource", "data"):
        for entry in doc.get(kind, []):
            for rtype, named in entry.items():
                for name in named:
                    if name.startswith("__"):
                        continue
                    prefix = "data." if kind == "data" else ""
                    out.add(f"{prefix}{rtype.strip(chr(34))}.{name.strip(chr(34))}")
    for entry in doc.get("module", []):
        out.update(f"module.{name.strip(chr(34))}" for name in entry if not name.startswith("__"))
    return out


def test_scanner_agrees_with_python_hcl2_on_every_rendered_stack(ml_plans, tmp_path):
    dirs = list(ml_plans)
    for example in ("eu-residency.yaml", "quickstart.yaml"):
        out = tmp_path / example
        assert skyplan("compile", str(EXAMPLES / example), "-o", str(out)).returncode == 0
        dirs.append(out)
    checked = 0
    for directory in dirs:
        for path in sorted(directory.glob("*/*.tf")) + sorted(directory.glob("modules/*/*.tf")):
            ours = {b.address for b in scan_text(path.read_text(), str(path))}
            assert ours == _hcl2_addresses(path), path
            checked += 1
    assert checked > 20


def test_scanner_is_not_fooled_by_strings_heredocs_and_comments():
    text = '''
# resource "fake" "in_comment" {
/* module "fake" {
} */
locals {
  s = "a } brace and ${format("%s}", "b")} and $${literal} \\" quote"
}
resource "aws_instance" "real" {
  user_data = <<-EOT
    resource "fake" "in_heredoc" {
    }
  EOT
  count = contains(var.active_tasks, "t\\"1") ? 1 : 0
  tags  = { Name = "x" }
}
data "aws_ami" "img" {
  filter { name = "n" }
}
module "m" {
  source   = "../modules/aws-node"
  for_each = contains(var.active_tasks, "job") ? toset(["22"]) : toset([])
}
'''
    blocks = {b.address: b for b in scan_text(text)}
    assert set(blocks) == {"aws_instance.real", "data.aws_ami.img", "module.m"}
    assert blocks["aws_instance.real"].task == 't"1' and blocks["aws_instance.real"].gate == "count"
    assert blocks["module.m"].gate == "for_each" and blocks["module.m"].task == "job"
    assert blocks["module.m"].source == "../modules/aws-node"


def test_scanner_names_the_line_of_broken_hcl(ml_plans, tmp_path):
    from skyplan.errors import SkyplanError

    with pytest.raises(SkyplanError, match=r"x\.tf:3: this \{ is never closed"):
        scan_text('locals {}\n\nresource "a" "b" {\n  x = 1\n', "x.tf")
    with pytest.raises(SkyplanError, match=r"x\.tf:2: a quoted string"):
        scan_text('resource "a" "b" {\n  x = "open\n}\n', "x.tf")
    _old, new = ml_plans
    broken = tmp_path / "broken"
    shutil.copytree(new, broken)
    stack = next(p for p in sorted(broken.iterdir()) if (p / "main.tf").is_file())
    (stack / "main.tf").write_text((stack / "main.tf").read_text() + 'resource "x" "y" {\n')
    res = skyplan("diff", str(new), str(broken))
    assert res.returncode == 2 and "main.tf:" in res.stderr and "never closed" in res.stderr


# ---------------------------------------------------------------------------------------------
# terraform plan JSON, from a real terraform plan of the quickstart's local stack
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_terraform_plan_json_of_a_real_plan(tmp_path):
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH")
    out = tmp_path / "quick"
    assert skyplan("compile", str(EXAMPLES / "quickstart.yaml"), "-o", str(out)).returncode == 0
    tasks = sorted(t["name"] for t in json.loads((out / "plan.json").read_text())["tasks"])
    stack = out / "local"
    env = dict(os.environ, TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")

    def tf(*args: str) -> str:
        res = subprocess.run(["terraform", *args], cwd=stack, capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stderr
        return res.stdout

    tf("init", "-input=false", "-no-color")
    active = "active_tasks=" + json.dumps(tasks)
    tf("plan", "-input=false", "-no-color", "-out=review.tfplan", "-var", active)
    (tmp_path / "show.json").write_text(tf("show", "-json", "review.tfplan"))
    (tmp_path / "stream.json").write_text(tf("plan", "-input=false", "-json", "-var", active))
    shown = read_plan_changes(tmp_path / "show.json")
    streamed = read_plan_changes(tmp_path / "stream.json")
    assert shown == streamed
    assert shown["create"] == sorted(f"module.{t}[0].terraform_data.node[0]" for t in tasks)
    assert shown["delete"] == shown["update"] == shown["replace"] == []
    res = skyplan("diff", str(tmp_path / "base"), str(out), "--tf-plan", f"local={tmp_path / 'show.json'}")
    assert res.returncode == 0, res.stderr
    assert f"| local | 0 → {len(tasks)} | {len(tasks)} | 0 | 0 | {len(tasks)} to create, 0 to update" in res.stdout
    assert f"| + create | `module.{tasks[0]}[0].terraform_data.node[0]` |" in res.stdout
    doc = json.loads(skyplan("diff", str(tmp_path / "base"), str(out), "--json",
                             "--tf-plan", f"local={tmp_path / 'stream.json'}").stdout)
    assert doc["terraform_plan"]["local"]["create"] == shown["create"]
