"""Safe HCL string literals, Terraform identifiers and cloud resource names for user-written strings."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable

from skyplan.errors import RenderError

# Escapes HCL defines for quoted templates (hclsyntax spec, "Template Literals"); everything else
# printable is written as is, everything non-printable as \uNNNN / \UNNNNNNNN.
_SIMPLE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}

# Longest identifier or cloud name we produce by default; short enough for Azure VM names
# (64), GCP instance names (63) and AWS tag values after a plan prefix.
_MAX_ID_LEN = 40
_HASH_LEN = 8
# A name that already ends like one of our hash suffixes is treated as changed (it gets its own
# suffix), so an untouched name can never equal the slug of a different, rewritten name.
_LOOKS_HASHED = re.compile(rf"-[0-9a-f]{{{_HASH_LEN}}}\Z")
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_-]*\Z")
_CLOUD_NAME = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?\Z")


def hcl_string(value: str) -> str:
    """Return a complete HCL quoted string literal (with quotes) whose value is exactly `value`.

    Escapes `\\`, `"`, newline, CR and tab, every non-printable character (`\\uNNNN`, or
    `\\UNNNNNNNN` outside the BMP), and the template markers `${` → `$${` and `%{` → `%%{`
    (`\\u0024{` / `\\u0025{` when no `}` follows), so Terraform never interpolates user text.
    Terraform itself stores strings in Unicode NFC (cty normalises every string value), so a
    value that is not NFC comes back NFC-normalised; keep byte-exact payloads (commands, env
    values) out of HCL strings, or base64 them first.

    >>> hcl_string('echo "${HOME}"')
    '"echo \\\\"$${HOME}\\\\""'

    Raises:
        RenderError: `value` holds a lone surrogate (it has no UTF-8 encoding).
    """
    out: list[str] = ['"']
    n = len(value)
    last_close = value.rfind("}")
    for i, ch in enumerate(value):
        nxt = value[i + 1] if i + 1 < n else ""
        if ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif ch in "$%" and nxt == "{":
            # `$${` is HCL's literal `${` (likewise `%%{`); a run like `$$${` works too because the
            # scanner pairs the doubled marker with the brace (checked against terraform). When no
            # `}` follows, python-hcl2 (our offline schema checker) cannot lex `$${`, so we write
            # the marker as an escape instead: `\u0024{` is the same literal `${` to Terraform.
            out.append(ch + ch if last_close > i + 1 else f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise RenderError(f"string {value[:40]!r} contains a lone surrogate U+{ord(ch):04X}")
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _short_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]


def _ascii_fold(value: str) -> str:
    # "Café Ü" → "cafe u": keep what a reader recognises instead of dropping accented letters.
    return unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii").lower()


def _slug(value: str, *, max_len: int, allowed: str, sep: str, valid: re.Pattern[str]) -> str:
    if max_len < _HASH_LEN + 2:
        raise ValueError(f"max_len must be at least {_HASH_LEN + 2}, got {max_len}")
    if valid.match(value) and len(value) <= max_len and not _LOOKS_HASHED.search(value):
        return value
    body = re.sub(f"[^{allowed}]+", sep, _ascii_fold(value)).strip("-_")
    if not body[:1].isalpha():
        body = "x" + (sep + body if body else "")
    body = body[: max_len - _HASH_LEN - 1].rstrip("-_")
    return f"{body}-{_short_hash(value)}"


def hcl_identifier(value: str) -> str:
    """Return a stable, unique Terraform identifier (`[a-z][a-z0-9_-]*`, ≤ 40 chars) for `value`.

    A value that is already such an identifier comes back unchanged; anything else is folded to
    ASCII, lower-cased, has unsafe runs replaced by `_`, is truncated, and gets `-<8 hex>` of its
    sha256, so two different inputs never share an identifier (short of a hash collision).

    >>> hcl_identifier("train"), hcl_identifier("Train Model")
    ('train', 'train_model-bd149af6')
    """
    return _slug(value, max_len=_MAX_ID_LEN, allowed="a-z0-9_-", sep="_", valid=_IDENTIFIER)


def cloud_name(value: str, *, max_len: int = _MAX_ID_LEN) -> str:
    """Return a name valid for GCP and Azure resources: `[a-z]([-a-z0-9]*[a-z0-9])?`, ≤ `max_len`.

    Same rules as `hcl_identifier` (unchanged when already valid, else slug + `-<8 hex>`), with
    `-` as the only separator. Also used for the storage key of a task's outputs.

    >>> cloud_name("my_task.v2")
    'my-task-v2-1422619a'
    """
    return _slug(value, max_len=max_len, allowed="a-z0-9", sep="-", valid=_CLOUD_NAME)


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=True)


def jinja_filters() -> dict[str, Callable]:
    """Filters every template environment registers: `hcl`, `hcl_id`, `cloud_name`, `json`."""
    return {"hcl": hcl_string, "hcl_id": hcl_identifier, "cloud_name": cloud_name, "json": _json}
