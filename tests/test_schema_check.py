"""The offline schema check must catch what `terraform validate` would, or it proves nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from schema_check import _admits, check_module_dir, check_stack  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

AWS = """
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.25"
    }
  }
}
"""
GOOGLE = """
terraform {
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.50"
    }
  }
}
"""


def check(tmp_path: Path, body: str, head: str = AWS) -> list[str]:
    return check_stack(tmp_path, {"main.tf": head + body})


def test_a_valid_instance_passes(tmp_path: Path) -> None:
    body = """
resource "aws_instance" "x" {
  count         = 1
  instance_type = "m6i.large"
  user_data     = "x"
  instance_market_options {
    market_type = "spot"
    spot_options {
      instance_interruption_behavior = "terminate"
    }
  }
  lifecycle {
    ignore_changes = [ami]
  }
}
"""
    assert check(tmp_path, body) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('resource "aws_instance" "x" {\n  instance_typo = "m6i.large"\n}\n',
         "unknown attribute or block 'instance_typo'"),
        ('resource "aws_iam_role_policy" "x" {\n  role = "r"\n}\n',
         "required attribute 'policy' is missing"),
        ('resource "aws_instance" "x" {\n  instance_market_options = { market_type = "spot" }\n}\n',
         "'instance_market_options' is a block, written as an attribute"),
        ('resource "aws_instance" "x" {\n  tags {\n    a = "b"\n  }\n}\n',
         "'tags' is an attribute, written as a block"),
        ('resource "aws_instance" "x" {\n  root_block_device {\n    volume_size = 1\n  }\n'
         '  root_block_device {\n    volume_size = 2\n  }\n}\n',
         "block 'root_block_device' allows at most 1, given 2"),
        ('resource "aws_instance" "x" {\n  public_ip = "1.2.3.4"\n}\n',
         "'public_ip' is computed-only and cannot be set"),
        ('resource "aws_instance" "x" {\n  instance_market_options {\n    spot_options {\n'
         '      max_prize = "1"\n    }\n  }\n}\n',
         "unknown attribute or block 'max_prize'"),
        ('resource "aws_instance" "x" {\n  dynamic "instance_market_option" {\n    for_each = []\n'
         '    content {}\n  }\n}\n',
         "dynamic block 'instance_market_option' is not a block of this type"),
        ('resource "aws_instanze" "x" {\n}\n', "resource type 'aws_instanze' does not exist in hashicorp/aws"),
        ('data "aws_subnets" "x" {\n  filter {\n    name = "vpc-id"\n  }\n}\n',
         "required attribute 'values' is missing"),
        ('resource "aws_instance" "x" {\n  ami = data.aws_ami.missing.id\n}\n',
         "reference to undeclared data.aws_ami.missing"),
        ('resource "aws_instance" "x" {\n  ami = var.nope\n}\n', "reference to undeclared variable var.nope"),
        ('provider "aws" {\n  regio = "us-east-1"\n}\n', "unknown attribute or block 'regio'"),
        ('resource "aws_instance" "x" {\n  vpc_security_group_ids = "sg-1"\n}\n',
         "'vpc_security_group_ids' expects [\"set\", \"string\"]"),
        ('resource "aws_instance" "x" {\n  instance_type = ["m6i.large"]\n}\n', "'instance_type' expects \"string\""),
        ('resource "google_compute_instance" "x" {\n  name = "a"\n  machine_type = "n1"\n}\n',
         "provider 'google' is not in required_providers"),
    ],
)
def test_a_broken_snippet_is_caught(tmp_path: Path, body: str, expected: str) -> None:
    problems = check(tmp_path, body)
    assert any(expected in p for p in problems), problems


def test_required_blocks_and_nesting_of_google_instance(tmp_path: Path) -> None:
    body = 'resource "google_compute_instance" "x" {\n  name = "a"\n  machine_type = "n1-standard-1"\n}\n'
    problems = check(tmp_path, body, GOOGLE)
    assert any("block 'boot_disk' is required" in p for p in problems), problems
    assert any("block 'network_interface' is required" in p for p in problems), problems


def test_azurerm_needs_its_features_block(tmp_path: Path) -> None:
    head = AWS.replace("aws = {", "azurerm = {").replace("hashicorp/aws", "hashicorp/azurerm").replace("6.25", "4.55")
    assert check(tmp_path, 'provider "azurerm" {\n  features {}\n}\n', head) == []
    problems = check(tmp_path, 'provider "azurerm" {\n}\n', head)
    assert any("block 'features' is required" in p for p in problems), problems


def test_tpu_vm_exists_only_in_google_beta(tmp_path: Path) -> None:
    tpu = ('resource "google_tpu_v2_vm" "x" {\n  %s\n  name = "t"\n  runtime_version = "tpu-ubuntu2204-base"\n}\n')
    assert check(tmp_path, tpu % "provider = google-beta", GOOGLE) == []
    problems = check(tmp_path, tpu % "", GOOGLE)
    assert any("'google_tpu_v2_vm' does not exist in hashicorp/google" in p for p in problems), problems


def test_provider_version_must_admit_the_schema(tmp_path: Path) -> None:
    head = AWS.replace("~> 6.25", "~> 5.0")
    problems = check(tmp_path, "", head)
    assert any("does not admit the schema version 6.25.0" in p for p in problems), problems


@pytest.mark.parametrize(
    ("constraint", "ok"),
    [("~> 6.25", True), ("~> 6.0", True), ("~> 6.26", False), ("~> 6.25.0", True), ("~> 6.25.1", False),
     (">= 6.0, < 7.0", True), ("= 6.25.0", True), ("6.25.0", True), ("< 6.25", False), ("~> 5.0", False)],
)
def test_version_constraints(constraint: str, ok: bool) -> None:
    assert _admits(constraint, (6, 25, 0)) is ok


def test_module_calls_pass_only_declared_and_all_required_variables(tmp_path: Path) -> None:
    mod = tmp_path / "modules" / "m"
    mod.mkdir(parents=True)
    (mod / "variables.tf").write_text(
        'variable "needed" {\n  type = string\n}\n\nvariable "optional" {\n  type    = string\n  default = "x"\n}\n'
    )
    (mod / "outputs.tf").write_text('output "ids" {\n  value = []\n}\n')
    root = tmp_path / "root"
    root.mkdir()
    body = ('module "a" {\n  source = "../modules/m"\n  count = 1\n  optional = "y"\n  extra = 1\n}\n'
            'output "o" {\n  value = module.a[0].idz\n}\n')
    problems = check_stack(root, {"main.tf": AWS + body})
    assert any("passes 'extra', which the module does not declare" in p for p in problems), problems
    assert any("required variable 'needed' is not passed" in p for p in problems), problems
    assert any("module.a has no output 'idz'" in p for p in problems), problems


def test_string_literals_are_not_mistaken_for_references(tmp_path: Path) -> None:
    body = ('resource "aws_instance" "x" {\n  user_data = "var.nope data.aws_ami.x.id $${var.nope}"\n'
            '  tags = { "var.x" = "local.y" }\n}\n')
    assert check(tmp_path, body) == []


@pytest.mark.parametrize("module", ["aws-node", "gcp-node", "gcp-node/tpu", "azure-node"])
def test_shipped_modules_are_schema_valid(module: str) -> None:
    assert check_module_dir(REPO / "modules" / module) == []
