"""Typed reads of composed YAML nodes that fail as SpecError naming the file, the line and the key."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from skyplan.errors import SpecError
from skyplan.models import SourcePos

_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_STR_TAG = "tag:yaml.org,2002:str"
# YAML 1.1 reads `1e3` as a string; people writing a size mean the number.
_LOOSE_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


# Deeper than any spec needs, and far below Python's recursion limit (PyYAML composes recursively).
MAX_DEPTH = 64


class _TooDeep(Exception):
    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops at MAX_DEPTH nested collections instead of exhausting the stack."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 - PyYAML's signature
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


@dataclass
class Source:
    """One file being read: its name (as the user gave it), the catalog's accelerator names
    (lower-case → canonical spelling; empty ⇒ names are kept as written) and the warnings so far."""

    file: str
    base_dir: Path
    accelerators: Mapping[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # Where constraining keys are written (`Spec.origin`), filled while parsing.
    origin: dict[str, SourcePos] = field(default_factory=dict)

    @classmethod
    def for_file(cls, file: str, known_accelerators: Collection[str] = ()) -> Source:
        return cls(
            file=file,
            base_dir=Path(file).parent,
            accelerators={name.lower(): name for name in known_accelerators},
        )

    def compose_all(self, text: str) -> list[Node]:
        """Every YAML document of `text` as a located node; syntax errors become SpecError."""
        try:
            documents = list(yaml.compose_all(text, Loader=_Loader))
        except _TooDeep as exc:
            raise SpecError(SourcePos(self.file, exc.line, "(yaml)"),
                            f"nested too deep (limit {MAX_DEPTH} levels)") from None
        except RecursionError:  # a stack smaller than MAX_DEPTH needs (never seen; a safety net)
            raise SpecError(SourcePos(self.file, 0, "(yaml)"), "nested too deep") from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 0
            problem = exc.problem or exc.context or "unreadable"
            raise SpecError(SourcePos(self.file, line, "(yaml)"), f"invalid YAML: {problem}") from None
        except yaml.reader.ReaderError as exc:
            line = text[: exc.position].count("\n") + 1
            raise SpecError(SourcePos(self.file, line, "(yaml)"),
                            f"invalid YAML: control character {_codepoint(exc.character)} is not allowed") from None
        except yaml.YAMLError as exc:
            raise SpecError(SourcePos(self.file, 0, "(yaml)"), f"invalid YAML: {exc}") from None
        # An empty document (a trailing `---`) holds nothing; SkyPilot skips it too.
        nodes = [Node(self, doc, "") for doc in documents if doc is not None]
        return [node for node in nodes if not node.is_null]


def _codepoint(character: int | str | bytes) -> str:
    code = character if isinstance(character, int) else ord(character)
    return f"U+{code:04X}"


def describe(node: yaml.Node) -> str:
    """How a value looks to the user, for "expected …, got …" messages."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping" if node.value else "an empty mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list" if node.value else "an empty list"
    if node.tag == _NULL_TAG:
        return "nothing (null)"
    return shown(node.value)


def shown(value: str, limit: int = 60) -> str:
    """`value` quoted for a message, cut short when long (an error stays one readable line)."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value):,} characters)"


class Node:
    """A YAML node, the file it came from and its key path (`tasks[train].resources.cpus`)."""

    def __init__(self, source: Source, node: yaml.Node, key: str):
        self.source = source
        self.yaml = node
        self.key = key

    @property
    def line(self) -> int:
        return self.yaml.start_mark.line + 1

    def pos(self, key: str | None = None) -> SourcePos:
        return SourcePos(self.source.file, self.line, key if key is not None else (self.key or "(top level)"))

    def fail(self, message: str) -> NoReturn:
        raise SpecError(self.pos(), message)

    def warn(self, message: str) -> None:
        """Record a compile warning about this node (`key (line N): message`, no file path: the
        warnings reach PLAN.md, which must not depend on where the checkout is)."""
        self.source.warnings.append(f"{self.key or '(top level)'} (line {self.line}): {message}")

    def expected(self, what: str) -> NoReturn:
        self.fail(f"expected {what}, got {describe(self.yaml)}")

    def child_key(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    # -- shape ------------------------------------------------------------------------------

    @property
    def is_null(self) -> bool:
        return isinstance(self.yaml, yaml.ScalarNode) and self.yaml.tag == _NULL_TAG

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.yaml, yaml.MappingNode)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.yaml, yaml.SequenceNode)

    @property
    def is_scalar(self) -> bool:
        return isinstance(self.yaml, yaml.ScalarNode) and not self.is_null

    def entries(self, what: str = "a mapping") -> Iterator[tuple[Node, Node]]:
        """(key node, value node) pairs of a mapping, merge keys (`<<: *anchor`) applied.

        A key written twice is an error: PyYAML would silently keep the last one."""
        if not self.is_mapping:
            self.expected(what)
        try:
            SafeConstructor().flatten_mapping(self.yaml)
        except ConstructorError as exc:
            self.fail(f"invalid merge key: {exc.problem}")
        seen: set[str] = set()
        for key_node, value_node in self.yaml.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL_TAG:
                Node(self.source, key_node, self.key).fail(f"expected a plain key, got {describe(key_node)}")
            name = key_node.value
            key = Node(self.source, key_node, self.child_key(name))
            if name in seen:
                key.fail(f"`{name}` is given twice")
            seen.add(name)
            yield key, Node(self.source, value_node, self.child_key(name))

    def fields(
        self,
        known: Collection[str],
        *,
        refused: Mapping[str, str] | None = None,
        hints: Mapping[str, str] | None = None,
        what: str = "a mapping",
    ) -> dict[str, Node]:
        """A mapping whose keys must be among `known`; returns key → value node, in file order.

        `refused` keys are recognised but cannot be honoured (message says why); `hints` explain
        a key that belongs elsewhere. Any other key is refused with a "did you mean" suggestion."""
        refused = refused or {}
        hints = hints or {}
        result: dict[str, Node] = {}
        for key, value in self.entries(what):
            name = key.yaml.value
            if name in known:
                result[name] = value
            elif name in refused:
                key.fail(f"skyplan cannot honour `{name}` yet ({refused[name]}); remove it")
            elif name in hints:
                key.fail(f"`{name}` is not allowed here: {hints[name]}")
            else:
                key.fail(unknown_key_message(name, known))
        return result

    def items(self, what: str = "a list") -> list[Node]:
        if not self.is_sequence:
            self.expected(what)
        return [Node(self.source, item, f"{self.key}[{i}]") for i, item in enumerate(self.yaml.value)]

    # -- scalars ----------------------------------------------------------------------------

    def text(self, what: str = "a string") -> str:
        """The scalar exactly as written (after YAML quoting rules): `10` → "10", `yes` → "yes"."""
        if not self.is_scalar:
            self.expected(what)
        return self.yaml.value

    def optional_text(self, what: str = "a string") -> str | None:
        return None if self.is_null else self.text(what)

    def string(self, what: str = "a string") -> str:
        """A non-empty scalar as written."""
        value = self.text(what)
        if not value.strip():
            self.expected(what)
        return value

    def number(self, what: str = "a number") -> float:
        if self.is_scalar and self.yaml.tag in (_INT_TAG, _FLOAT_TAG):
            value = self._construct()
            if isinstance(value, (int, float)) and math.isfinite(value):
                return float(value)
        if self.is_scalar and self.yaml.tag == _STR_TAG and _LOOSE_NUMBER.fullmatch(self.yaml.value.strip()):
            value = float(self.yaml.value)
            if math.isfinite(value):  # `1e999` reads as inf
                return value
        self.expected(what)

    def boolean(self, what: str = "true or false") -> bool:
        if self.is_scalar and self.yaml.tag == _BOOL_TAG and isinstance(self._construct(), bool):
            return bool(self._construct())
        if self.is_scalar and self.yaml.value.strip().lower() in ("true", "false"):
            return self.yaml.value.strip().lower() == "true"
        self.expected(what)

    def _construct(self) -> object:
        """The scalar's value as PyYAML's safe constructor reads it; None when it cannot (an
        explicit tag on a value that does not fit it, `!!int abc`, or an integer of more than
        the 4,300 digits Python converts)."""
        try:
            return SafeConstructor().construct_object(self.yaml)
        except (ValueError, KeyError, TypeError, yaml.YAMLError):
            return None

    def strings(self, what: str = "a list of strings") -> tuple[str, ...]:
        """A list of non-empty strings; a single string is a one-item list."""
        if self.is_scalar:
            return (self.string(what),)
        return tuple(item.string(what) for item in self.items(what))

    def is_bool(self) -> bool:
        return self.is_scalar and self.yaml.tag == _BOOL_TAG


def unknown_key_message(name: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if close:
        return f"unknown key `{name}`; did you mean `{close[0]}`?"
    return f"unknown key `{name}`; expected one of: {', '.join(sorted(known))}"
