"""`ports` open only to the sources a user names (`ingress_from`), never to 0.0.0.0/0 (issue 11.3)."""

from __future__ import annotations

from pathlib import Path

import hcl2
import pytest

from skyplan.errors import SpecError
from skyplan.pipeline import compile_plan
from skyplan.spec import load_spec

SPEC = """\
name: web
{spec_extra}tasks:
  - name: serve
    hours: 1
    allowed: {{clouds: [{cloud}]}}
{task_extra}    resources: {{cpus: 2, ports: [8080, 8443]}}
    run: echo serving
"""


def write(tmp_path: Path, *, cloud: str = "aws", spec_extra: str = "", task_extra: str = "") -> Path:
    path = tmp_path / "web.yaml"
    path.write_text(SPEC.format(cloud=cloud, spec_extra=spec_extra, task_extra=task_extra))
    return path


def test_cloud_ports_without_a_source_are_refused_at_compile(tmp_path: Path):
    with pytest.raises(SpecError) as err:
        compile_plan(write(tmp_path), tmp_path / "out")
    message = str(err.value)
    assert "web.yaml:6: tasks[serve].resources" in message  # the line of `resources: {… ports …}`
    assert "ingress_from" in message and "aws" in message and "8080, 8443" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
@pytest.mark.parametrize("where", ["spec", "task"])
def test_ports_open_to_the_named_sources_only(tmp_path: Path, cloud: str, where: str):
    line = "ingress_from: [203.0.113.0/24, 198.51.100.7/32]\n"
    spec = write(tmp_path, cloud=cloud, **({"spec_extra": line} if where == "spec" else {"task_extra": "    " + line}))
    compile_plan(spec, tmp_path / "out")
    text = (tmp_path / "out" / cloud / "main.tf").read_text()
    doc = hcl2.loads(text)
    rules = [(rtype.strip('"'), body) for block in doc.get("resource", []) for rtype, named in block.items()
             for name, body in named.items()
             if name.strip('"').endswith("_ports") and rtype.strip('"') != "aws_security_group"]
    assert rules, text
    for _rtype, body in rules:
        shown = repr(body)
        assert "198.51.100.7/32" in shown and "203.0.113.0/24" in shown, shown
        assert "0.0.0.0/0" not in shown, shown
        assert not [key for key, value in body.items() if key.startswith("source") and key != "source_port_range" and "*" in repr(value)], shown
    assert "8443" in text


def test_local_ports_need_no_source(tmp_path: Path):
    compile_plan(write(tmp_path, cloud="local"), tmp_path / "out")  # a local task opens nothing
    assert (tmp_path / "out" / "plan.json").exists()


@pytest.mark.parametrize("value, expected", [
    ("0.0.0.0/0", "ingress_from"),  # allowed when named: the user chose it
    ("10.0.0.1/8", "has host bits set"),
    ("2001:db8::/32", "only IPv4"),
    ("office", "not an IPv4 CIDR"),
    ("[]", "at least one CIDR"),
])
def test_ingress_from_values(tmp_path: Path, value: str, expected: str):
    spec = write(tmp_path, spec_extra=f"ingress_from: {value}\n")
    if value == "0.0.0.0/0":
        assert load_spec(spec).ingress_from == ("0.0.0.0/0",)
        return
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert expected in str(err.value) and "web.yaml:2" in str(err.value), str(err.value)


def test_ingress_from_is_normalised_and_sorted(tmp_path: Path):
    spec = load_spec(write(tmp_path, task_extra="    ingress_from: [203.0.113.0/24, 198.51.100.7/32, 198.51.100.7/32]\n"))
    assert spec.tasks[0].ingress_from == ("198.51.100.7/32", "203.0.113.0/24")
