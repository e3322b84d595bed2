"""Property tests: user text reaches HCL, YAML and bash exactly as written (DESIGN.md, "Rules")."""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
import re
import subprocess
import unicodedata
from pathlib import Path

import hcl2
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tools import require_tool, terraform_command

from skyplan.executor import EXECUTOR_PATH, cloud_init, executor_script, task_slug
from skyplan.hcl import cloud_name, hcl_identifier, hcl_string, jinja_filters
from skyplan.models import ResourceOption, Task

# Pieces that break naive escaping in HCL, YAML or bash, mixed with arbitrary text.
TOKENS = [
    '"',
    "'",
    "\\",
    "\\\\",
    "${",
    "%{",
    "$${",
    "%%{",
    "}",
    "{",
    "$",
    "%",
    "$(id -u)",
    "`id -u`",
    "\n",
    "\r",
    "\r\n",
    "\t",
    "EOF",
    "<<EOF\n",
    "<<'EOF'\n",
    "\nEOF\n",
    "<<-EOT\n",
    "\nEOT",
    "#",
    ";",
    "&&",
    "|",
    "*",
    "?",
    "~",
    "!",
    "\\n",
    "\\u0041",
    "$HOME",
    "${HOME}",
    "%{ if true }",
    "é",
    "e\u0301",
    "日本",
    "😀",
    "\x01",
    "\x1b[31m",
    "\x7f",
    "\u2028",
    "\ufeff",
    "\u00a0",
    ": ",
    "- ",
    "---",
    "...",
    "&anchor",
    "*alias",
    "!!python/object",
    "'\"'\"'",
    "\\'",
    "$'x'",
]
nasty = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)), max_size=24).map("".join)
# bash cannot hold NUL (nor can environment variables); the executor refuses it at render time.
nasty_no_nul = nasty.map(lambda s: s.replace("\x00", ""))
# Names the executor itself uses as shell variables are fair game for users too.
INTERNAL_NAMES = [
    "WORK",
    "LOG",
    "STATE",
    "STORAGE",
    "TASK_NAME",
    "TASK_SLUG",
    "OWN_GROUP",
    "USER_ENV",
    "PIDFILE",
    "RCFILE",
    "STAGE_RC",
    "INTERRUPTED",
    "SHUTDOWN",
    "NODE_RANK",
    "HOME",
]
env_name = st.one_of(st.sampled_from(INTERNAL_NAMES), st.from_regex(r"V_[A-Za-z0-9_]{0,8}", fullmatch=True))

MANY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Examples that start bash or shellcheck: fewer, so the suite stays fast.
FEW = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- HCL string literals ---------------------------------------------------------------------


def hcl_decode(literal: str) -> str:
    """The value of an HCL quoted template literal, written from the HCL spec (not from hcl.py).

    Fails on anything Terraform would interpolate or reject in our output: a raw `${`/`%{`,
    a raw quote or line break, an unknown escape."""
    assert literal[0] == literal[-1] == '"' and len(literal) >= 2
    body, out, i = literal[1:-1], [], 0
    simple = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            esc = body[i + 1]
            if esc in simple:
                out.append(simple[esc])
                i += 2
            elif esc == "u":
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
            elif esc == "U":
                out.append(chr(int(body[i + 2 : i + 10], 16)))
                i += 10
            else:
                raise AssertionError(f"unknown escape \\{esc} in {literal!r}")
        elif body.startswith(("$${", "%%{"), i):
            out.append(ch + "{")
            i += 3
        elif body.startswith(("${", "%{"), i):
            raise AssertionError(f"unescaped template marker in {literal!r}")
        elif ch in '"\n\r':
            raise AssertionError(f"raw {ch!r} in {literal!r}")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@MANY
@given(nasty)
def test_hcl_string_round_trips_through_python_hcl2(value):
    literal = hcl_string(value)
    assert hcl_decode(literal) == value
    # python-hcl2 returns string values as their raw literal text. Parsing the literal between
    # two other attributes proves it is exactly one token that ends where we think it ends.
    doc = hcl2.loads(f'before = "a"\nx = {literal}\nafter = "}}z"\n')
    assert doc["x"] == literal
    assert doc["before"] == '"a"' and doc["after"] == '"}z"'


def test_hcl_string_examples():
    assert hcl_string("") == '""'
    assert hcl_string('say "hi"\n') == '"say \\"hi\\"\\n"'
    assert hcl_string("${HOME} %{if}") == '"$${HOME} %%{if}"'
    assert hcl_string("${") == '"\\u0024{"'  # no `}` follows: an escape python-hcl2 can lex
    assert hcl_string("a\\b\tc\x01") == '"a\\\\b\\tc\\u0001"'
    assert hcl_string("😀\U000e0001") == '"😀\\U000e0001"'


# Fixed strings every HCL escaper gets wrong somewhere; the Terraform test adds random ones.
TERRAFORM_CASES = [
    "",
    "plain",
    '"',
    "\\",
    '\\"',
    "${x}",
    "$${x}",
    "$$${x}",
    "${",
    "$${",
    "%{x}",
    "%%{x}",
    "%{",
    "$",
    "$$",
    "%",
    "%%",
    "}",
    "{",
    "a\nb",
    "a\r\nb",
    "\t",
    "\x00",
    "\x01",
    "\x7f",
    "\u2028",
    "\ufeff",
    "é",
    "e\u0301",
    "😀",
    "\U000e0001",
    "<<EOF\nx\nEOF",
    "it's",
    "`id`",
    "$(id)",
    "\\u0041",
    "\\n",
    "${HOME}${",
    "%{ if true }yes%{ endif }",
]


def test_terraform_reads_back_every_value(tmp_path):
    """Ask real Terraform for the value of each literal; compare byte for byte (after NFC)."""
    rng = random.Random(20261123)
    alphabet = TOKENS + ["a", "b", " ", "ü", "\x00", "\x0b"]
    values = TERRAFORM_CASES + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(200)
    ]
    body = ",\n".join(f"    {hcl_string(v)}" for v in values)
    (tmp_path / "main.tf").write_text(f'output "values" {{\n  value = [\n{body},\n  ]\n}}\n')
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "TF_IN_AUTOMATION": "1"}
    run = subprocess.run(
        [*terraform_command(), "apply", "-auto-approve", "-input=false", "-no-color"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    out = subprocess.run(
        [*terraform_command(), "output", "-json", "values"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout)
    assert len(got) == len(values)
    for want, have in zip(values, got, strict=True):
        # Terraform (cty) keeps every string in Unicode NFC; that is the only change allowed.
        assert have == unicodedata.normalize("NFC", want), (want, have)
    # The one NFC case, stated plainly so nobody mistakes it for an escaping bug:
    assert got[TERRAFORM_CASES.index("e\u0301")] == "\u00e9"


# --- identifiers and cloud names -------------------------------------------------------------

IDENT = re.compile(r"[a-z][a-z0-9_-]*\Z")
CLOUD = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?\Z")


@MANY
@given(nasty, nasty)
def test_identifiers_are_valid_stable_and_unique(a, b):
    for fn, pattern, limit in ((hcl_identifier, IDENT, 40), (cloud_name, CLOUD, 40)):
        ida, idb = fn(a), fn(b)
        assert pattern.match(ida) and len(ida) <= limit, ida
        assert fn(a) == ida  # stable
        if ida == a:
            assert fn(ida) == ida  # a valid name is kept as is
        else:
            assert re.search(r"-[0-9a-f]{8}\Z", ida)  # a rewritten one always says so
        if a != b:
            assert ida != idb, (a, b)
    short = cloud_name(a, max_len=12)
    assert CLOUD.match(short) and len(short) <= 12


def test_identifier_uniqueness_edge_cases():
    # An untouched name can never equal the hashed slug of another name.
    hashed = cloud_name("Train")
    assert hashed != "train" and cloud_name(hashed) != hashed
    assert cloud_name("train-0123abcd") != "train-0123abcd"  # looks hashed ⇒ gets its own suffix
    assert cloud_name("a" * 41) != cloud_name("a" * 42)
    assert hcl_identifier("") != hcl_identifier("_")
    with pytest.raises(ValueError):
        cloud_name("x", max_len=5)


def test_terraform_accepts_identifiers_as_resource_names(tmp_path):
    names = ["train", "Train Model", "9lives", "", "日本", "a" * 80, "x-y_z", "__init__", "-lead", "é"]
    blocks = "".join(f'resource "terraform_data" "{hcl_identifier(n)}" {{}}\n' for n in names)
    (tmp_path / "main.tf").write_text(blocks)
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull}
    subprocess.run(
        [*terraform_command(), "init", "-input=false", "-no-color"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=True,
    )
    run = subprocess.run(
        [*terraform_command(), "validate", "-no-color"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_jinja_filters_escape():
    import jinja2

    env = jinja2.Environment(autoescape=False)
    env.filters.update(jinja_filters())
    value = 'a"${b}'
    out = env.from_string("{{ v | hcl }}|{{ v | hcl_id }}|{{ v | cloud_name }}|{{ v | json }}").render(
        v=value
    )
    assert out.split("|") == ['"a\\"$${b}"', hcl_identifier(value), cloud_name(value), '"a\\"${b}"']


# --- cloud-init and bash ---------------------------------------------------------------------


def make_task(name: str, **kw) -> Task:
    return Task(name=name, options=(ResourceOption(),), **kw)


@MANY
@given(name=nasty_no_nul, setup=nasty_no_nul, run=nasty_no_nul, value=nasty_no_nul)
def test_cloud_init_yaml_carries_the_exact_script(name, setup, run, value):
    task = make_task(name, setup=setup, run=run, envs=(("V", value),))
    script = executor_script(task, plan_name=name, upstream=[name])
    text = cloud_init(script, task_name=name, plan_name=name, storage="gs://b/p")
    assert text.isascii()
    doc = yaml.safe_load(text)
    assert set(doc) == {"write_files", "runcmd", "power_state"}
    (entry,) = [f for f in doc["write_files"] if f["path"] == EXECUTOR_PATH]
    assert gzip.decompress(base64.b64decode(entry["content"])).decode("utf-8") == script


def _env(storage: Path, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKYPLAN_", "SKYPILOT_"))}
    env.update(SKYPLAN_STORAGE=f"file://{storage}", SKYPLAN_WORK_DIR=str(work), SKYPLAN_SHUTDOWN="0")
    return env


@FEW
@given(name=nasty_no_nul, setup=nasty_no_nul, run=nasty_no_nul)
def test_executor_writes_commands_byte_for_byte(tmp_path_factory, name, setup, run):
    """The files bash runs are exactly what the user wrote (heredocs, quotes, CRs and all)."""
    tmp = tmp_path_factory.mktemp("ex")
    # `exit 0` on the first line: bash stops there, so arbitrary text is written but not run.
    setup_text, run_text = "exit 0\n" + setup, "exit 0\n" + run
    task = make_task(name, setup=setup_text, run=run_text)
    script = tmp / "x.sh"
    script.write_text(executor_script(task, plan_name="p", upstream=[]))
    result = subprocess.run(
        ["bash", str(script)], env=_env(tmp / "s", tmp / "w"), capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert (tmp / "w" / "setup.sh").read_bytes() == setup_text.encode()
    assert (tmp / "w" / "run.sh").read_bytes() == run_text.encode()
    status = json.loads((tmp / "s" / task_slug(name) / "status.json").read_text())
    assert status["task"] == name and status["exit_code"] == 0


@FEW
@given(name=nasty_no_nul, values=st.dictionaries(env_name, nasty_no_nul, min_size=1, max_size=4))
def test_env_values_and_task_name_arrive_byte_for_byte(tmp_path_factory, name, values):
    # The loop variable must not be one of the generated env names, or the loop overwrites it.
    assume("skyplan_loop_var" not in values)
    tmp = tmp_path_factory.mktemp("env")
    run = (
        "for skyplan_loop_var in SKYPLAN_TASK "
        + " ".join(values)
        + '; do printf %s "${!skyplan_loop_var}" > "$SKYPLAN_OUTPUT_DIR/$skyplan_loop_var"; done'
    )
    task = make_task(name, run=run, envs=tuple(sorted(values.items())))
    script = tmp / "x.sh"
    script.write_text(executor_script(task, plan_name="p", upstream=[]))
    result = subprocess.run(
        ["bash", str(script)], env=_env(tmp / "s", tmp / "w"), capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    out = tmp / "s" / task_slug(name) / "outputs"
    for key, value in values.items():
        assert (out / key).read_bytes() == value.encode(), key
    assert (out / "SKYPLAN_TASK").read_bytes() == name.encode()


@FEW
@given(name=nasty_no_nul, setup=nasty_no_nul, run=nasty_no_nul, value=nasty_no_nul, secret=env_name)
def test_shellcheck_passes_on_any_user_text(tmp_path_factory, name, setup, run, value, secret):
    require_tool("shellcheck")
    task = make_task(name, setup=setup, run=run, envs=(("V", value),), secrets=(secret,))
    script = tmp_path_factory.mktemp("sc") / "x.sh"
    script.write_text(executor_script(task, plan_name=name, upstream=[name, "other"]))
    result = subprocess.run(["shellcheck", "--shell=bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
