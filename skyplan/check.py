"""`skyplan compile SPEC --check DIR`: is a committed plan directory what compiling SPEC now writes?

The check compiles in memory (`pipeline.build_files`, the same code `compile` runs) and compares
every generated file, byte for byte, with DIR, the manifest included. It writes nothing to DIR —
not even the run lock — so it is safe on a checkout CI is about to apply, and run state
(`events.jsonl`, `.skyplan/`, Terraform state, …; see `outdir.is_run_state`) never counts.

A stale DIR is explained, not only detected: plan.json records the hashes of what the placement
was decided from (`inputs`), so the check names which of the spec, the catalog, the exclusions,
the objective or skyplan itself changed. When none did and files still differ, they were edited
by hand or rendered by other templates. Files beside the plan (a README next to plan.json) are
neither generated nor compared; a file in one of skyplan's folders (`<target>/`, `cloud-init/`,
`modules/`) that compile would not write is extra, since it would become part of a stack.

The `--json` document (`CHECK_FORMAT`) is stable:

    {"check_format": "1", "out_dir": str, "current": bool, "exit_code": 0 | 1,
     "reasons": [{"code": str, "message": str, "old": any, "new": any}],
     "files": {"differ": [path], "missing": [path], "extra": [path]},
     "compared": int}

`code` is one of `no_plan`, `spec_changed`, `catalog_changed`, `exclusions_changed`,
`objective_changed`, `backend_changed`, `skyplan_changed`, `plan_differs`, `files_edited`. Paths are relative to DIR
and sorted. Errors in the input (a bad spec, an unknown catalog) exit 2, as `compile` does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from skyplan.outdir import (
    GENERATED_ROOTS,
    MANIFEST_FILE,
    _existing,
    is_run_state,
    manifest_text,
    read_manifest,
)
from skyplan.planfile import PLAN_FILE

if TYPE_CHECKING:
    from skyplan.pipeline import CompileOptions

CHECK_FORMAT = "1"
_LISTED = 20  # paths per kind on the terminal; --json lists them all


@dataclass(frozen=True)
class Reason:
    """Why DIR is not what compile writes now: a stable `code`, a sentence, and the two values."""

    code: str
    message: str
    old: Any = None
    new: Any = None


@dataclass(frozen=True)
class CheckResult:
    """The outcome of `check_plan`: current or not, why, and which generated files differ."""

    out_dir: Path
    reasons: tuple[Reason, ...]
    differ: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    compared: int  # generated files compared (the manifest included)

    @property
    def current(self) -> bool:
        """True when DIR holds exactly what compiling the spec now writes."""
        return not (self.differ or self.missing or self.extra)

    @property
    def exit_code(self) -> int:
        """0 when current, 1 when stale."""
        return 0 if self.current else 1

    def to_json(self) -> dict[str, Any]:
        """The documented `--json` document (see the module docstring)."""
        return {
            "check_format": CHECK_FORMAT,
            "out_dir": str(self.out_dir),
            "current": self.current,
            "exit_code": self.exit_code,
            "reasons": [{"code": r.code, "message": r.message, "old": r.old, "new": r.new} for r in self.reasons],
            "files": {"differ": list(self.differ), "missing": list(self.missing), "extra": list(self.extra)},
            "compared": self.compared,
        }

    def summary_lines(self) -> list[str]:
        """The terminal report: a headline, one line per reason, then the files by kind."""
        if self.current:
            return [f"{self.out_dir}: current ({self.compared} generated files match what compile writes now)"]
        counts = ", ".join(f"{len(paths)} {kind}" for kind, paths in
                           (("differ", self.differ), ("missing", self.missing), ("extra", self.extra)) if paths)
        lines = [f"{self.out_dir}: stale plan ({counts}); run `skyplan compile` and commit the result"]
        lines += [f"  {r.message}" for r in self.reasons]
        for kind, paths in (("differs", self.differ), ("missing", self.missing), ("extra", self.extra)):
            for rel in paths[:_LISTED]:
                lines.append(f"  {kind}: {rel}")
            if len(paths) > _LISTED:
                lines.append(f"  … and {len(paths) - _LISTED} more {kind}")
        return lines


def check_plan(
    spec_path: str | Path,
    out_dir: str | Path,
    options: CompileOptions | None = None,
) -> CheckResult:
    """Compare DIR with what `skyplan compile SPEC -o DIR` (same options) would write; write nothing."""
    from skyplan.pipeline import DEFAULT_OPTIONS, build_files

    out = Path(out_dir)
    solved, files, _warnings, _t0 = build_files(spec_path, out, options or DEFAULT_OPTIONS)
    expected = {rel: data for rel, data in files.items() if not is_run_state(rel)}
    expected[MANIFEST_FILE] = manifest_text(files)
    differ, missing, extra = _compare(expected, out)
    old_doc = _read_doc(out)
    reasons = _reasons(old_doc, solved.plan_doc, plan_differs=PLAN_FILE in differ or PLAN_FILE in missing)
    if not (differ or missing or extra):
        reasons = []  # inputs recorded differently but identical output: nothing to act on
    return CheckResult(out_dir=out, reasons=tuple(reasons), differ=tuple(differ), missing=tuple(missing),
                       extra=tuple(extra), compared=len(expected))


def _compare(expected: Mapping[str, bytes], out: Path) -> tuple[list[str], list[str], list[str]]:
    differ, missing = [], []
    for rel, data in sorted(expected.items()):
        path = out / rel
        if path.is_symlink() or not path.is_file():
            # skyplan never writes links: a link (or a folder) at a generated path is not its file.
            (differ if path.is_symlink() or path.exists() else missing).append(rel)
        elif path.read_bytes() != data:
            differ.append(rel)
    extra = []
    if out.is_dir():
        listed = read_manifest(out, strict=False) or {}
        for rel, _path in _existing(out):
            if rel in expected:
                continue
            # Generated elsewhere: in one of skyplan's folders, or listed in DIR's own manifest.
            if PurePosixPath(rel).parts[0] in GENERATED_ROOTS or rel in listed:
                extra.append(rel)
    return differ, missing, extra


def _read_doc(out: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((out / PLAN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _short(digest: Any) -> str:
    return f"{digest[:12]}…" if isinstance(digest, str) else str(digest)


def _reasons(old: Mapping[str, Any] | None, new: Mapping[str, Any], *, plan_differs: bool) -> list[Reason]:
    """Why the plan changed, from the inputs plan.json records (old: DIR's, new: compiled now)."""
    if old is None:
        return [Reason("no_plan", f"no readable {PLAN_FILE} in the directory: it was never compiled, "
                                  "or the plan was deleted or damaged")]
    reasons = []
    old_in, new_in = old.get("inputs") or {}, new["inputs"]
    if old_in.get("spec_sha256") != new_in["spec_sha256"]:
        reasons.append(Reason("spec_changed", f"spec changed (sha256 {_short(old_in.get('spec_sha256'))} → "
                                              f"{_short(new_in['spec_sha256'])})",
                              old_in.get("spec_sha256"), new_in["spec_sha256"]))
    old_cat, new_cat = old.get("catalog") or {}, new["catalog"]
    # The same prices read from another place (`--catalog` given or not) also change plan.json.
    if old_in.get("catalog_sha256") != new_in["catalog_sha256"] or old_cat.get("source") != new_cat["source"]:
        reasons.append(Reason("catalog_changed", f"catalog changed ({old_cat.get('source')} dated "
                                                 f"{old_cat.get('date')} → {new_cat['source']} dated {new_cat['date']}, "
                                                 f"sha256 {_short(old_in.get('catalog_sha256'))} → "
                                                 f"{_short(new_in['catalog_sha256'])})",
                              old_in.get("catalog_sha256"), new_in["catalog_sha256"]))
    if old_in.get("exclusions_sha256") != new_in["exclusions_sha256"]:
        was, now = sorted(old.get("excluded_zones") or []), sorted(new["excluded_zones"])
        added, dropped = sorted(set(now) - set(was)), sorted(set(was) - set(now))
        parts = ([f"now excluded: {', '.join(added)}"] if added else []) + (
            [f"no longer excluded: {', '.join(dropped)}"] if dropped else [])
        reasons.append(Reason("exclusions_changed", f"exclusions changed ({'; '.join(parts) or 'recorded differently'})",
                              was, now))
    old_backend = (old.get("backend") or {}).get("uri")
    new_backend = (new.get("backend") or {}).get("uri")
    if old_backend != new_backend:
        reasons.append(Reason("backend_changed", f"state backend changed ({old_backend or 'local state'} → "
                                                 f"{new_backend or 'local state'})", old_backend, new_backend))
    if old.get("objective") != new["objective"]:
        reasons.append(Reason("objective_changed", f"objective changed ({old.get('objective')} → {new['objective']})",
                              old.get("objective"), new["objective"]))
    old_version = (old.get("skyplan_version"), old.get("format_version"))
    new_version = (new["skyplan_version"], new["format_version"])
    if old_version != new_version:
        reasons.append(Reason("skyplan_changed", f"compiled by skyplan {old_version[0]} (plan format {old_version[1]}), "
                                                 f"this is {new_version[0]} (format {new_version[1]})",
                              old.get("skyplan_version"), new["skyplan_version"]))
    if not reasons and plan_differs:
        reasons.append(Reason("plan_differs", f"{PLAN_FILE} differs though its recorded inputs are the same: compiled "
                                              "with other --pareto/--explain flags, by another solver build, or edited"))
    if not reasons:
        reasons.append(Reason("files_edited", "the inputs are the same: generated files were edited, deleted or "
                                              "added by hand, or rendered by other templates"))
    return reasons
