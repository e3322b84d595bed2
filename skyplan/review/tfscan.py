"""The resources a rendered Terraform stack declares, read from its `.tf` files without Terraform.

A small lexer, not a full HCL parser: it needs only the top-level `resource "TYPE" "NAME"`,
`data` and `module "NAME"` blocks and, inside each, the `count` / `for_each` gate and a module's
`source`. It understands what can hide a brace or a quote — strings with `${…}` / `%{…}`
templates (nested strings included), heredocs (`<<EOF`, `<<-EOF`), `#`, `//` and `/* */`
comments — so it is exact on any valid HCL, not only on skyplan's templates (tests compare it
with python-hcl2 on every rendered stack). python-hcl2 stays a test dependency: its grammar is
large, slow to load for a PR comment, and this needs a few hundred characters of logic.

Stacks gate each task's resources with `contains(var.active_tasks, "TASK")` (the apply loop
activates tasks in DAG order), so a block with that gate belongs to the task; other gated blocks
(a region's network, shared identity) exist while any task that needs them runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from skyplan.errors import SkyplanError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_HEREDOC = re.compile(r"<<(-?)([A-Za-z_][A-Za-z0-9_-]*)[ \t]*\r?\n")
# Matched against the gate's tokens joined by spaces.
_TASK_GATE = re.compile(r'contains\s*\(\s*var\s*\.\s*active_tasks\s*,\s*("(?:[^"\\]|\\.)*")\s*\)')
_BLOCK_KINDS = frozenset({"resource", "data", "module"})


@dataclass(frozen=True)
class Block:
    """One top-level block of a stack: its Terraform address and what gates it."""

    kind: str  # resource | data | module
    type: str  # the resource type; "" for a module
    name: str
    gate: str | None  # "count" or "for_each" when the block has one
    task: str | None  # the task it belongs to (its gate names it), else None
    source: str | None  # a module's source
    digest: str  # sha256 of the block's text: a changed block has another digest
    members: tuple[str, ...] = field(default=())  # a module's resources (`TYPE.NAME`), when readable

    @property
    def address(self) -> str:
        """`TYPE.NAME`, `data.TYPE.NAME` or `module.NAME`, as Terraform names it."""
        if self.kind == "module":
            return f"module.{self.name}"
        if self.kind == "data":
            return f"data.{self.type}.{self.name}"
        return f"{self.type}.{self.name}"


class _Lexer:
    """Tokens of HCL text: (kind, text, offset); kinds: ident, string, heredoc, punct, nl."""

    def __init__(self, text: str, where: str):
        self.text = text
        self.where = where

    def _fail(self, pos: int, what: str) -> SkyplanError:
        line = self.text.count("\n", 0, pos) + 1
        return SkyplanError(f"{self.where}:{line}: {what}")

    def _string_end(self, i: int) -> int:
        """`i` is just after an opening quote; return the index after the closing one."""
        text, n = self.text, len(self.text)
        while i < n:
            c = text[i]
            if c == "\\":
                i += 2
            elif c == '"':
                return i + 1
            elif c == "\n":
                raise self._fail(i, "a quoted string ends at the end of the line")
            elif text.startswith(("$${", "%%{"), i):
                i += 3  # an escaped template marker is literal text
            elif text.startswith(("${", "%{"), i):
                i = self._template_end(i + 2)
            else:
                i += 1
        raise self._fail(i, "a quoted string is not closed")

    def _template_end(self, i: int) -> int:
        """`i` is just inside `${`; return the index after its closing brace."""
        depth = 1
        text, n = self.text, len(self.text)
        while i < n:
            c = text[i]
            if c == '"':
                i = self._string_end(i + 1)
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        raise self._fail(i, "a ${…} template is not closed")

    def tokens(self) -> Iterator[tuple[str, str, int]]:
        text, n, i = self.text, len(self.text), 0
        while i < n:
            c = text[i]
            if c == "\n":
                yield "nl", c, i
                i += 1
            elif c in " \t\r":
                i += 1
            elif c == "#" or text.startswith("//", i):
                end = text.find("\n", i)
                i = n if end < 0 else end
            elif text.startswith("/*", i):
                end = text.find("*/", i + 2)
                if end < 0:
                    raise self._fail(i, "a /* comment is not closed")
                i = end + 2
            elif c == '"':
                end = self._string_end(i + 1)
                yield "string", text[i:end], i
                i = end
            elif c == "<" and (m := _HEREDOC.match(text, i)):
                marker, j = m.group(2), m.end()
                while True:
                    eol = text.find("\n", j)
                    line = text[j:] if eol < 0 else text[j:eol]
                    if line.strip() == marker:
                        i = n if eol < 0 else eol
                        break
                    if eol < 0:
                        raise self._fail(i, f"the heredoc <<{marker} is not closed")
                    j = eol + 1
                yield "heredoc", text[m.start():i], m.start()
            elif m := _IDENT.match(text, i):
                yield "ident", m.group(), i
                i = m.end()
            else:
                yield "punct", c, i
                i += 1


def _unquote(literal: str) -> str:
    """The value of a plain HCL string literal (its escapes are JSON's, plus `$${` and `%%{`)."""
    try:
        value = json.loads(literal)
    except ValueError:
        value = literal.strip('"')
    return value.replace("$${", "${").replace("%%{", "%{")


class _Unbalanced(Exception):
    def __init__(self, pos: int, bracket: str):
        super().__init__(bracket)
        self.pos, self.bracket = pos, bracket


def scan_text(text: str, where: str = "<text>") -> list[Block]:
    """The top-level resource, data and module blocks of one `.tf` file's text, in file order.

    Text that is not HCL (an unclosed string, bracket or heredoc) is a `SkyplanError` naming
    `where` and the line."""
    lexer = _Lexer(text, where)
    try:
        return _scan(text, list(lexer.tokens()))
    except _Unbalanced as exc:
        raise lexer._fail(exc.pos, f"this {exc.bracket} is never closed") from None


def _scan(text: str, toks: list[tuple[str, str, int]]) -> list[Block]:
    blocks: list[Block] = []
    i, n = 0, len(toks)
    at_line_start = True
    while i < n:
        kind, value, pos = toks[i]
        if kind == "nl":
            at_line_start = True
            i += 1
            continue
        if at_line_start and kind == "ident" and value in _BLOCK_KINDS:
            labels, j = [], i + 1
            while j < n and toks[j][0] in ("string", "ident") and len(labels) < 2:
                labels.append(_unquote(toks[j][1]) if toks[j][0] == "string" else toks[j][1])
                j += 1
            if j < n and toks[j][1] == "{" and len(labels) == (1 if value == "module" else 2):
                end = _matching(toks, j)
                body = toks[j + 1:end]
                attrs = _attributes(body)
                gate = "count" if "count" in attrs else "for_each" if "for_each" in attrs else None
                task = None
                if gate:
                    found = _TASK_GATE.search(attrs[gate])
                    task = _unquote(found.group(1)) if found else None
                source = attrs.get("source")
                end_pos = toks[end][2] + 1
                blocks.append(Block(
                    kind=value,
                    type="" if value == "module" else labels[0],
                    name=labels[-1],
                    gate=gate,
                    task=task,
                    source=_unquote(source) if source and source.startswith('"') else source,
                    digest=hashlib.sha256(text[pos:end_pos].encode()).hexdigest(),
                ))
                i, at_line_start = end + 1, False
                continue
        if kind == "punct" and value in "{([":
            i = _matching(toks, i) + 1  # any other block or expression: skip it whole
        else:
            i += 1
        at_line_start = False
    return blocks


_CLOSE = {"{": "}", "(": ")", "[": "]"}


def _matching(toks: list[tuple[str, str, int]], i: int) -> int:
    """Index of the token closing the bracket at `i`."""
    stack = []
    for j in range(i, len(toks)):
        value = toks[j][1] if toks[j][0] == "punct" else None
        if value in _CLOSE:
            stack.append(_CLOSE[value])
        elif value and stack and value == stack[-1]:
            stack.pop()
            if not stack:
                return j
    raise _Unbalanced(toks[i][2], toks[i][1])


def _attributes(body: list[tuple[str, str, int]]) -> dict[str, str]:
    """`name = expression` at the top of a block body: name → the expression's token text."""
    attrs: dict[str, str] = {}
    i, n, line_start = 0, len(body), True
    while i < n:
        kind, value, _ = body[i]
        if kind == "nl":
            line_start, i = True, i + 1
            continue
        if line_start and kind == "ident" and i + 1 < n and body[i + 1][1] == "=" and (
                i + 2 >= n or body[i + 2][1] != "="):
            j, parts = i + 2, []
            while j < n and body[j][0] != "nl":
                if body[j][0] == "punct" and body[j][1] in _CLOSE:
                    end = _matching(body, j)
                    parts.extend(t[1] for t in body[j:end + 1])
                    j = end + 1
                else:
                    parts.append(body[j][1])
                    j += 1
            attrs[value] = " ".join(parts)
            i, line_start = j, False
            continue
        if kind == "punct" and value in _CLOSE:
            i = _matching(body, i) + 1  # a nested block: its attributes are not the block's
        else:
            i += 1
        line_start = False
    return attrs


def scan_stack(stack_dir: str | Path, *, root: str | Path | None = None) -> list[Block]:
    """Every top-level block of the `.tf` files in `stack_dir`, sorted by address; a module whose
    `source` is a local path under `root` (the plan directory) lists its own resources."""
    stack_dir = Path(stack_dir)
    blocks: list[Block] = []
    for path in sorted(stack_dir.glob("*.tf")):
        blocks.extend(scan_text(path.read_text(encoding="utf-8"), str(path)))
    out = []
    for block in blocks:
        if block.kind == "module" and block.source and block.source.startswith(("./", "../")):
            module_dir = (stack_dir / block.source).resolve()
            inside = root is None or Path(root).resolve() in module_dir.parents
            if inside and module_dir.is_dir():
                members = [b for p in sorted(module_dir.glob("*.tf"))
                           for b in scan_text(p.read_text(encoding="utf-8"), str(p)) if b.kind == "resource"]
                digest = hashlib.sha256((block.digest + "".join(b.digest for b in members)).encode()).hexdigest()
                block = Block(kind=block.kind, type=block.type, name=block.name, gate=block.gate, task=block.task,
                              source=block.source, digest=digest, members=tuple(sorted(b.address for b in members)))
        out.append(block)
    return sorted(out, key=lambda b: b.address)
