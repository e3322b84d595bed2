"""Hostile or broken YAML gives one SpecError line (exit 2), never a Python traceback."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyplan.errors import EXIT_BAD_INPUT, SpecError
from skyplan.spec import MAX_SPEC_BYTES, load_quotas, load_spec
from skyplan.spec._nodes import MAX_DEPTH

KNOWN = ("A100", "V100")


def fails(text: str, **kwargs) -> SpecError:
    with pytest.raises(SpecError) as caught:
        load_spec("hostile.yaml", text=text, known_accelerators=KNOWN, **kwargs)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert "\n" not in str(caught.value)
    return caught.value


@pytest.mark.parametrize("text", [
    "name: q\ntasks:\n  - name: a\n    envs: " + "[" * 500 + "]" * 500 + "\n",
    "name: q\ntasks:\n  - name: a\n    envs: " + "{a: " * 500 + "1" + "}" * 500 + "\n",
    "name: q\ntasks:\n" + "".join("  " * i + "- a:\n" for i in range(1, 500)),
], ids=["flow-lists", "flow-maps", "block"])
def test_yaml_nested_500_deep_is_refused_with_its_line(text):
    error = fails(text)
    assert error.detail == f"nested too deep (limit {MAX_DEPTH} levels)"
    assert error.pos.key == "(yaml)" and error.pos.line > 0


def test_nesting_to_the_limit_is_still_read_as_yaml():
    # MAX_DEPTH - 4 levels below `envs` (document, tasks, the task, envs itself): the spec
    # check, not the depth limit, refuses it.
    depth = MAX_DEPTH - 4
    error = fails("name: q\ntasks:\n  - name: a\n    envs: " + "[" * depth + "]" * depth + "\n")
    assert "expected a mapping of environment variables" in error.detail


def test_billion_laughs_is_refused_at_once():
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    assert "unknown key" in fails("name: q\n" + "\n".join(levels) + "\ntasks: [{name: t, envs: *i}]\n").detail
    bomb = "name: q\ntasks:\n  - name: t\n    depends_on: &a [" + ", ".join(["x"] * 9) + "]\n" + "".join(
        f"  - {{name: t{i}, depends_on: &{c} [" + ", ".join([f"*{p}"] * 9) + "]}\n"
        for i, (p, c) in enumerate(zip("abcdefgh", "bcdefghi", strict=True)))
    assert "expected a task name or a list of task names, got a list" in fails(bomb).detail


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: q\ntasks:\n  - name: caf\xe9\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value) == f"{path}:3: (file): the file is not UTF-8 text"
    path.write_bytes("name: q\ntasks: [{name: a}]\n".encode("utf-16"))
    with pytest.raises(SpecError, match="not UTF-8 text"):
        load_spec(path)


def test_text_with_a_lone_surrogate_is_not_utf8():
    error = fails("name: q\ntasks:\n  - name: caf\udce9\n")
    assert (error.pos.line, error.detail) == (3, "the file is not UTF-8 text")


@pytest.mark.parametrize(("text", "line", "message"), [
    ("name: q\ntasks:\n\t- name: a\n", 3, "found character '\\t' that cannot start any token"),
    ("name: q\ntasks:\n  - name: a\n    hours: 1\n    hours: 2\n", 5, "`hours` is given twice"),
    ("name: q\x00\ntasks: []\n", 1, "control character U+0000"),
    ("name: q\ntasks:\n  - name: a\n    hours: !!int abc\n", 4, "got 'abc'"),
    ("name: q\ntasks:\n  - name: a\n    hours: !!float abc\n", 4, "got 'abc'"),
    ("name: q\ntasks:\n  - name: a\n    resources: {use_spot: !!bool abc}\n", 4, "expected true, false or auto"),
    ("name: q\ntasks:\n  - name: a\n    hours: " + "1" * 5000 + "\n", 4, "… (5,000 characters)"),
    ("name: q\ntasks:\n  - name: a\n    num_nodes: " + "9" * 5000 + "\n", 4, "… (5,000 characters)"),
    ("name: q\ntasks:\n  - name: a\n    resources: {ports: " + "8" * 5000 + "}\n", 4, "… (5,000 characters)"),
    ("name: q\ntasks:\n  - name: a\n    ? [a, b]\n    : 1\n", 4, "expected a plain key, got a list"),
    # An alias is reported where its anchor's value is written.
    ("name: q\ntasks: &t\n  - name: a\n    envs: *t\n", 2, "expected a mapping of environment variables"),
    ("name: q\ntasks:\n  - name: a\n    envs: *nowhere\n", 4, "found undefined alias"),
])
def test_hostile_scalars_and_structures_are_one_line(text, line, message):
    error = fails(text)
    assert error.pos.line == line
    assert message in error.detail


def test_a_huge_file_is_refused_without_parsing_it(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"name: q\ntasks:\n  - name: a\n    run: |\n" + b"      echo x\n" * (MAX_SPEC_BYTES // 12 + 1))
    with pytest.raises(SpecError, match=r"huge.yaml: \(file\): the file is larger than 16 MiB"):
        load_spec(path)
    with pytest.raises(SpecError, match="larger than 16 MiB"):
        load_quotas(path)


# -- fuzzing ---------------------------------------------------------------------------------------

# Pieces of spec-shaped YAML: keys skyplan reads, values of every kind, YAML punctuation, anchors,
# tags and odd characters; random sequences of these reach most of the parser's branches.
_PIECES = [
    "name: ", "tasks:", "\n", "\n  ", "\n    ", "- ", "  - name: a", "resources: ", "accelerators: ",
    "hours: ", "num_nodes: ", "outputs_gb: ", "inputs: ", "size_gb: ", "cpus: ", "memory: ", "disk: ",
    "ports: ", "deadline: ", "budget: ", "quotas: ", "pools: ", "vcpus: ", "hosts: ", "envs: ",
    "depends_on: ", "allowed: ", "regions: ", "any_of: ", "ordered: ", "use_spot: ", "exclude_zones: ",
    "{", "}", "[", "]", ", ", ": ", "? ", "---\n", "&a ", "*a", "<<: ", "!!int ", "!!float ", "!!bool ",
    "!!str ", "!!binary ", "!foo ", "'", '"', "|\n", ">\n", "#", "1", "0", "-1", "1e308", "1e999", ".nan",
    ".inf", "-.inf", "true", "no", "~", "null", "16+", "1TB", "A100:8", "A100:0.5", "V100", "$5", "2h30m",
    "8000-8010", "99999999999999", "\t", "\x00", "\x85", "\u2028", "\ufeff", "é", "%YAML 1.1\n", "%TAG ",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES) | st.text(string.printable, max_size=4) | st.text(max_size=2), max_size=40))
def test_random_yaml_only_ever_raises_spec_errors(pieces):
    try:
        load_spec("fuzz.yaml", text="".join(pieces), known_accelerators=KNOWN)
    except SpecError as exc:
        assert exc.exit_code == EXIT_BAD_INPUT


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_spec_errors(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "spec.yaml"
    path.write_bytes(data)
    try:
        load_spec(path, known_accelerators=KNOWN)
    except SpecError as exc:
        assert exc.exit_code == EXIT_BAD_INPUT


_KEYS = ["name", "tasks", "resources", "accelerators", "hours", "num_nodes", "outputs_gb", "outputs", "inputs",
         "size_gb", "uri", "cpus", "memory", "disk", "ports", "deadline", "budget", "quotas", "pools", "vcpus",
         "nodes", "hosts", "address", "user", "port", "hourly_cost", "envs", "depends_on", "allowed", "regions",
         "clouds", "any_of", "ordered", "use_spot", "exclude_zones", "cloud", "region", "infra", "per", "default",
         "A100", "V100", "secrets", "file_mounts", "workdir", "run", "setup", "objective", "storage"]
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
            | st.sampled_from(["A100:8", "16+", "1TB", "2h", "aws", "us-*", "region", "auto", "$5", "1e999", "a"]))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=6),
       st.lists(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=6), max_size=3))
def test_random_spec_shaped_documents_only_ever_raise_spec_errors(top, tasks):
    import yaml

    document = {"name": "fuzz", **top, "tasks": [{"name": f"t{i}", **task} for i, task in enumerate(tasks)]}
    try:
        load_spec("fuzz.yaml", text=yaml.safe_dump(document), known_accelerators=KNOWN)
    except SpecError as exc:
        assert exc.exit_code == EXIT_BAD_INPUT
