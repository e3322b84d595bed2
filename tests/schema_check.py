"""Offline `terraform validate`: check generated Terraform against the real provider schemas."""

# No provider can be downloaded here, so this is the proof that a rendered stack is valid. It
# parses every `.tf` file of a root stack (and of every local module it calls) with python-hcl2:
# * `terraform { required_providers }`: each provider is a hashicorp one we hold a schema for,
#   and its version constraint admits the schema's version;
# * every `provider`, `resource` and `data` block: the type exists in the right provider
#   (`provider = google-beta` selects google-beta), required attributes are present, no unknown
#   attribute or block, blocks are blocks and attributes are attributes, nesting mode and
#   min/max items hold, computed-only attributes are not set (meta-arguments are skipped);
# * `module` calls: only declared variables are passed, and every required one is;
# * references: `var.X`, `local.X`, `module.M.OUT`, `data.T.N` and `T.N` name something declared.
# Usage: `problems = check_stack(Path("out/aws"))` gives a sorted list of "file: address: message".

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[1]

# Meta-arguments that are not part of a provider schema.
RESOURCE_META = frozenset({"count", "for_each", "provider", "depends_on", "lifecycle", "provisioner",
                           "connection"})
DATA_META = frozenset({"count", "for_each", "provider", "depends_on", "lifecycle"})
PROVIDER_META = frozenset({"alias", "version"})
MODULE_META = frozenset({"source", "version", "providers", "count", "for_each", "depends_on"})

# source address → schema file (the pins of tests/fixtures/README.md).
SCHEMA_FILES = {
    "hashicorp/aws": "aws.json.gz",
    "hashicorp/google": "google.json.gz",
    "hashicorp/google-beta": "google-beta.json.gz",
    "hashicorp/azurerm": "azurerm.json.gz",
    "hashicorp/kubernetes": "kubernetes.json.gz",
}
SCHEMA_VERSIONS = {
    "hashicorp/aws": (6, 25, 0),
    "hashicorp/google": (6, 50, 0),
    "hashicorp/google-beta": (6, 50, 0),
    "hashicorp/azurerm": (4, 55, 0),
    "hashicorp/kubernetes": (2, 38, 0),
}
# Resource types Terraform itself provides (no provider schema needed).
BUILTIN_TYPES = frozenset({"terraform_data", "null_resource"})


def schemas_root() -> Path:
    """The vendored provider-schemas folder (provenance in tests/fixtures/README.md)."""
    return REPO / "tests" / "fixtures" / "provider-schemas"


@cache
def load_schema(source: str) -> dict[str, Any]:
    """The provider schema document (provider, resource_schemas, data_source_schemas) for a source."""
    with gzip.open(schemas_root() / SCHEMA_FILES[source]) as f:
        doc = json.load(f)
    ((_, schemas),) = doc["provider_schemas"].items()
    return schemas


# ---------------------------------------------------------------------------------------------
# HCL helpers (python-hcl2 8.x: blocks are lists of dicts marked `__is_block__`, labels and
# string literals keep their quotes, expressions are wrapped in "${...}")
# ---------------------------------------------------------------------------------------------


def _unquote(label: str) -> str:
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


def _items(d: dict[str, Any]) -> list[tuple[str, Any]]:
    """Key/value pairs without python-hcl2's `__is_block__` / `__comments__` markers."""
    return [(k, v) for k, v in d.items() if not k.startswith("__")]


def _is_block_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, dict) and v.get("__is_block__") for v in value)


def _literal_fits(value: Any, cty: Any) -> bool:
    """Whether a literal value can convert to a cty type (expressions are not judged).

    Terraform converts between string, number and bool, but never a primitive to a collection
    or a collection to a primitive."""
    if cty is None or (isinstance(value, str) and value.startswith("${")) or value is None:
        return True
    collection = isinstance(cty, list) and cty[0] in ("list", "set", "map", "object", "tuple")
    if isinstance(value, (list, dict)):
        return collection or cty == "dynamic"
    return not collection


def _expr(value: Any) -> str:
    """The raw expression text of an attribute value (for provider references)."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    return str(value)


_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')


def _expressions(value: Any) -> list[str]:
    """Every expression inside a parsed value, with string literals blanked out."""
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if not k.startswith("__"):
                out.extend(_expressions(k))
                out.extend(_expressions(v))
    elif isinstance(value, list):
        for v in value:
            out.extend(_expressions(v))
    elif isinstance(value, str):
        text = value
        if text.startswith('"') and "${" not in text:
            return out  # a plain string literal
        # Interpolations inside quoted literals stay; the literal text around them goes.
        # `$${` is an escaped, literal "${" (not an interpolation).
        inner = re.findall(r"(?<!\$)\$\{(.*?)\}", text) if text.startswith('"') else [_expr(text)]
        for expr in inner:
            out.append(_STRING_LITERAL.sub('""', expr))
    return out


@dataclass
class Module:
    """One parsed configuration directory."""

    path: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def blocks(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """(file name, block mapping) for every top-level block of one kind."""
        return [(name, b) for name, doc in sorted(self.files.items()) for b in doc.get(kind, [])]

    def labelled(self, kind: str) -> dict[str, dict[str, Any]]:
        """Single-label blocks (variable, output, module, provider) by label."""
        out: dict[str, dict[str, Any]] = {}
        for _, b in self.blocks(kind):
            for label, body in b.items():
                if not label.startswith("__"):
                    out[_unquote(label)] = body
        return out


def parse_module(path: Path, texts: dict[str, str] | None = None) -> Module:
    """Parse every `.tf` file of a directory (or the given name → text mapping)."""
    if texts is None:
        texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(path.glob("*.tf"))}
        return _parse_cached(path, tuple(sorted(texts.items())))
    return _parse(path, texts)


@cache
def _parse_cached(path: Path, items: tuple[tuple[str, str], ...]) -> Module:
    # A stack calls the same node module once per task: parse each distinct directory once.
    return _parse(path, dict(items))


def _parse(path: Path, texts: dict[str, str]) -> Module:
    mod = Module(path)
    for name, text in sorted(texts.items()):
        mod.files[name] = hcl2.loads(text)
    return mod


# ---------------------------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------------------------


def _admits(constraint: str, version: tuple[int, int, int]) -> bool:
    """Whether a Terraform version constraint ("~> 6.25", ">= 1.0, < 7") admits `version`."""
    for part in constraint.split(","):
        m = re.fullmatch(r"\s*(~>|>=|<=|!=|=|>|<)?\s*(\d+(?:\.\d+){0,2})\s*", part)
        if not m:
            return False
        op, raw = m.group(1) or "=", m.group(2)
        nums = tuple(int(x) for x in raw.split("."))
        want = nums + (0,) * (3 - len(nums))
        if op == "~>":
            # "~> 6.25" means >= 6.25, < 7.0; "~> 6.25.1" means >= 6.25.1, < 6.26.
            upper = list(nums[:-1]) if len(nums) > 1 else list(nums)
            upper[-1] += 1
            top = tuple(upper) + (0,) * (3 - len(upper))
            if not (version >= want and version < top):
                return False
        elif not {"=": version == want, "!=": version != want, ">": version > want,
                  ">=": version >= want, "<": version < want, "<=": version <= want}[op]:
            return False
    return True


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    # -- blocks ---------------------------------------------------------------------------------

    def check_body(self, body: dict[str, Any], schema: dict[str, Any], where: str,
                   meta: frozenset[str] = frozenset()) -> None:
        """Check one block body against a schema block (recursively)."""
        attrs = schema.get("attributes", {})
        blocks = schema.get("block_types", {})
        dynamic: set[str] = set()
        for key, value in body.items():
            if key.startswith("__") or key in meta:  # __is_block__, __comments__ markers
                continue
            if key == "dynamic" and "dynamic" not in blocks and isinstance(value, list):
                for dyn in value:
                    for label, dbody in dyn.items():
                        if label.startswith("__"):
                            continue
                        name = _unquote(label)
                        dynamic.add(name)
                        if name not in blocks:
                            self.add(where, f"dynamic block {name!r} is not a block of this type")
                            continue
                        for content in dbody.get("content", []) if isinstance(dbody, dict) else []:
                            self.check_body(content, blocks[name]["block"], f"{where}.{name}")
                continue
            if key in attrs:
                spec = attrs[key]
                if _is_block_list(value):
                    self.add(where, f"{key!r} is an attribute, written as a block")
                elif not _literal_fits(value, spec.get("type")):
                    self.add(where, f"{key!r} expects {json.dumps(spec.get('type'))}, got {value!r}")
                if spec.get("computed") and not spec.get("optional") and not spec.get("required"):
                    self.add(where, f"{key!r} is computed-only and cannot be set")
                if spec.get("deprecated"):
                    self.add(where, f"{key!r} is deprecated")
            elif key in blocks:
                bt = blocks[key]
                if not _is_block_list(value):
                    self.add(where, f"{key!r} is a block, written as an attribute")
                    continue
                mode = bt["nesting_mode"]
                n = len(value)
                if mode == "single" and n > 1:
                    self.add(where, f"block {key!r} (nesting single) given {n} times")
                if bt.get("max_items") and n > bt["max_items"]:
                    self.add(where, f"block {key!r} allows at most {bt['max_items']}, given {n}")
                for item in value:
                    if mode == "map":
                        for label, inner in item.items():
                            if not label.startswith("__"):
                                self.check_body(inner, bt["block"], f"{where}.{key}[{label}]")
                    else:
                        self.check_body(item, bt["block"], f"{where}.{key}")
            else:
                self.add(where, f"unknown attribute or block {key!r}")
        for name, spec in sorted(attrs.items()):
            if spec.get("required") and name not in body:
                self.add(where, f"required attribute {name!r} is missing")
        for name, bt in sorted(blocks.items()):
            if bt.get("min_items") and name not in body and name not in dynamic:
                self.add(where, f"block {name!r} is required (min_items {bt['min_items']})")

    # -- one configuration directory ------------------------------------------------------------

    def check_module(self, mod: Module, seen: set[Path]) -> None:
        rel = mod.path.name
        sources = self._required_providers(mod, rel)
        for fname, block in mod.blocks("provider"):
            for label, body in _items(block):
                name = _unquote(label)
                where = f"{rel}/{fname}: provider.{name}"
                source = sources.get(name)
                if source is None:
                    self.add(where, "provider is not in required_providers")
                    continue
                self.check_body(body, load_schema(source)["provider"]["block"], where, PROVIDER_META)
        for kind, section, meta in (("resource", "resource_schemas", RESOURCE_META),
                                    ("data", "data_source_schemas", DATA_META)):
            for fname, block in mod.blocks(kind):
                for rtype_q, named in _items(block):
                    rtype = _unquote(rtype_q)
                    for rname_q, body in _items(named):
                        where = f"{rel}/{fname}: {'data.' if kind == 'data' else ''}{rtype}.{_unquote(rname_q)}"
                        if rtype in BUILTIN_TYPES and kind == "resource":
                            continue
                        local = _expr(body.get("provider", rtype.split("_")[0])).split(".")[0]
                        source = sources.get(local)
                        if source is None:
                            self.add(where, f"provider {local!r} is not in required_providers")
                            continue
                        schemas = load_schema(source)[section]
                        if rtype not in schemas:
                            self.add(where, f"{kind} type {rtype!r} does not exist in {source}")
                            continue
                        self.check_body(body, schemas[rtype]["block"], where, meta)
        self._check_module_calls(mod, rel, seen)
        self._check_references(mod, rel)

    def _required_providers(self, mod: Module, rel: str) -> dict[str, str]:
        sources: dict[str, str] = {}
        for fname, tf in mod.blocks("terraform"):
            for rp in tf.get("required_providers", []):
                for name, req in rp.items():
                    if name.startswith("__"):
                        continue
                    where = f"{rel}/{fname}: required_providers.{name}"
                    if not isinstance(req, dict) or "source" not in req:
                        self.add(where, "needs an object with source and version")
                        continue
                    source = _unquote(str(req["source"])).removeprefix("registry.terraform.io/")
                    if source not in SCHEMA_FILES:
                        self.add(where, f"no schema is held for {source!r}")
                        continue
                    version = _unquote(str(req.get("version", "")))
                    if not version:
                        self.add(where, "provider version is not pinned")
                    elif not _admits(version, SCHEMA_VERSIONS[source]):
                        want = ".".join(map(str, SCHEMA_VERSIONS[source]))
                        self.add(where, f"constraint {version!r} does not admit the schema version {want}")
                    sources[name] = source
        return sources

    def _check_module_calls(self, mod: Module, rel: str, seen: set[Path]) -> None:
        for fname, block in mod.blocks("module"):
            for label, body in _items(block):
                where = f"{rel}/{fname}: module.{_unquote(label)}"
                src = _unquote(str(body.get("source", "")))
                if not src.startswith(("./", "../")):
                    self.add(where, f"module source {src!r} is not a local path")
                    continue
                child_path = (mod.path / src).resolve()
                if not child_path.is_dir():
                    self.add(where, f"module source {src!r} does not exist")
                    continue
                child = parse_module(child_path)
                variables = child.labelled("variable")
                for key in body:
                    if key not in MODULE_META and not key.startswith("__") and key not in variables:
                        self.add(where, f"passes {key!r}, which the module does not declare")
                for name, var in sorted(variables.items()):
                    if "default" not in var and name not in body:
                        self.add(where, f"required variable {name!r} is not passed")
                if child_path not in seen:
                    seen.add(child_path)
                    self.check_module(child, seen)

    def _check_references(self, mod: Module, rel: str) -> None:
        variables = set(mod.labelled("variable"))
        locals_ = {k for _, b in mod.blocks("locals") for k in b if not k.startswith("__")}
        modules = mod.labelled("module")
        resources = {(_unquote(t), _unquote(n)) for _, b in mod.blocks("resource") for t, ns in _items(b)
                     for n, _ in _items(ns)}
        datas = {(_unquote(t), _unquote(n)) for _, b in mod.blocks("data") for t, ns in _items(b)
                 for n, _ in _items(ns)}
        module_outputs: dict[str, set[str]] = {}
        for name, body in modules.items():
            src = _unquote(str(body.get("source", "")))
            path = (mod.path / src).resolve()
            module_outputs[name] = set(parse_module(path).labelled("output")) if path.is_dir() else set()
        for fname, doc in sorted(mod.files.items()):
            for expr in _expressions(doc):
                for m in re.finditer(r"(?<![\w.])var\.([A-Za-z_][\w-]*)", expr):
                    if m.group(1) not in variables:
                        self.add(f"{rel}/{fname}", f"reference to undeclared variable var.{m.group(1)}")
                for m in re.finditer(r"(?<![\w.])local\.([A-Za-z_][\w-]*)", expr):
                    if m.group(1) not in locals_:
                        self.add(f"{rel}/{fname}", f"reference to undeclared local.{m.group(1)}")
                for m in re.finditer(r"(?<![\w.])module\.([A-Za-z_][\w-]*)(?:\[[^\]]*\])?(?:\.([A-Za-z_][\w-]*))?",
                                     expr):
                    name, out = m.group(1), m.group(2)
                    if name not in modules:
                        self.add(f"{rel}/{fname}", f"reference to undeclared module.{name}")
                    elif out and out not in module_outputs[name]:
                        self.add(f"{rel}/{fname}", f"module.{name} has no output {out!r}")
                for m in re.finditer(r"(?<![\w.])data\.([a-z][\w]*)\.([A-Za-z_][\w-]*)", expr):
                    if (m.group(1), m.group(2)) not in datas:
                        self.add(f"{rel}/{fname}", f"reference to undeclared data.{m.group(1)}.{m.group(2)}")
                for m in re.finditer(r"(?<![\w.])((?:aws|google|azurerm)_[\w]+)\.([A-Za-z_][\w-]*)", expr):
                    if (m.group(1), m.group(2)) not in resources:
                        self.add(f"{rel}/{fname}", f"reference to undeclared resource {m.group(1)}.{m.group(2)}")


def check_stack(path: Path, texts: dict[str, str] | None = None) -> list[str]:
    """Check a root stack directory (and every local module it calls); return the problems found.

    `texts` (file name → HCL) replaces reading `path/*.tf`, so snippets can be checked in memory;
    module sources are still resolved relative to `path`."""
    checker = _Checker()
    checker.check_module(parse_module(path, texts), set())
    return sorted(set(checker.problems))


def check_module_dir(path: Path) -> list[str]:
    """Check a module directory on its own (e.g. `modules/aws-node`)."""
    return check_stack(path)
