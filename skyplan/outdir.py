"""The output directory and who owns its files: skyplan never deletes or overwrites what it did not write.

`DIR/MANIFEST.sha256` lists every file compile generated, one `<sha256>  <path>` line each, sorted
(the format of `sha256sum`, so `sha256sum -c MANIFEST.sha256` checks a committed plan). It is
generated output like the rest: deterministic and committed with the plan, and it is the record
of ownership, so it does not live under `DIR/.skyplan/` (run state, not committed).

A compile into DIR sorts every file already there into one of:

* **skyplan's**: listed in the manifest with the hash it has now, or byte-identical to what this
  compile writes at that path. Replaced when the plan changes, removed when no longer generated
  (a stack of a target the plan stopped using, a cloud-init of a removed task).
* **run state**: what `apply` and Terraform write (`events.jsonl`, `.skyplan/`,
  `.skyplan-storage/`, `<target>/terraform.tfstate*`, `.terraform/`, `skyplan.tfvars.json`, plan
  files, …). Never generated, never removed here, never in the way.
* **in the way**: a file skyplan did not write, or one it wrote that was edited since (its hash no
  longer matches the manifest), at a path compile writes or inside a folder compile owns
  (`<target>/`, `cloud-init/`, `modules/`). Compile refuses (exit 2, listing them) unless
  `force`, which replaces or removes them.
* **beside the plan**: any other file (a README next to plan.json). Left alone, once DIR is a plan
  directory (it has a manifest). A DIR without a manifest that holds any file skyplan did not
  write is not known to be a plan directory (`-o .` by mistake), so those files are in the way.

Writes are atomic (temp file beside the target, fsync, rename) and skipped when the bytes are
unchanged, so recompiling an unchanged plan touches nothing. The manifest is written first as
the union of the old and the new files (a path may then list two hashes), and last as the new
set: a compile killed half-way leaves every file it wrote recognisable as skyplan's.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from skyplan.errors import RenderError, SkyplanError
from skyplan.targets import target_names

ALL_TARGETS = target_names()  # the registry's (skyplan/targets/__init__.py)

MANIFEST_FILE = "MANIFEST.sha256"
CLOUD_INIT_DIR = "cloud-init"
MODULES_DIR = "modules"
# Top-level folders whose every file compile generates: a foreign file there would become part
# of a Terraform stack or module (or sit among the executors) without review.
GENERATED_ROOTS = frozenset({*ALL_TARGETS, CLOUD_INIT_DIR, MODULES_DIR})

# Run state (written by apply, staging, the targets and Terraform). At the top of DIR:
_RUN_STATE_TOP_DIRS = frozenset({".skyplan", ".skyplan-storage"})
_RUN_STATE_TOP_FILES = re.compile(r"^events\.jsonl(\..+)?$")  # the event log (and any rotation of it)
# Directly in a target's stack folder: Terraform state, its backups and lock info, errored.tfstate,
# the provider lock file, apply's variable file, plan files, Terraform's crash log (plus the
# provider cache `.terraform/` at any depth below it).
_RUN_STATE_STACK_FILES = re.compile(
    r"^(terraform\.tfstate.*|.+\.tfstate|.+\.tfstate\.backup|.+\.tfplan|\.terraform.*|skyplan\.tfvars\.json|crash\.log)$"
)
# Anywhere: an atomic write killed before its rename leaves `.<name>.<random>.tmp` (ours and apply's).
_TEMP_FILE = re.compile(r"^\..+\.tmp$")
_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")
_LISTED = 5  # files named in the one-line refusal; the reasons that follow list up to _REASONS
_REASONS = 50


class FilesInTheWay(SkyplanError):
    """DIR holds files compile would overwrite or remove that skyplan did not write (exit 2)."""

    def __init__(self, out: Path, entries: list[tuple[str, str]], *, plan_dir: bool = True):
        names = ", ".join(rel for rel, _ in entries[:_LISTED])
        more = f" and {len(entries) - _LISTED} more" if len(entries) > _LISTED else ""
        if plan_dir:
            message = (f"{out}: {len(entries)} file(s) skyplan did not write or that were changed since "
                       f"({names}{more}); compiling would overwrite or remove them. Move them out of the "
                       "directory, compile into another one, or pass --force to let skyplan replace them")
        else:
            message = (f"{out}: not a skyplan plan directory (no {MANIFEST_FILE}), and it holds {len(entries)} "
                       f"file(s) skyplan did not write ({names}{more}). Compile into a new or empty directory, "
                       "or pass --force to compile into it anyway (files in skyplan's folders and at its paths "
                       "are replaced, the others kept)")
        super().__init__(message)
        self.reasons = tuple(f"{rel}: {why}" for rel, why in entries[:_REASONS])
        if len(entries) > _REASONS:
            self.reasons += (f"… and {len(entries) - _REASONS} more",)
        self.paths = tuple(rel for rel, _ in entries)


@dataclass(frozen=True)
class Written:
    """What `write_output` changed beyond writing the new files."""

    removed: tuple[str, ...]  # skyplan's files no longer generated
    taken_over: tuple[str, ...]  # files in the way that `force` replaced or removed


def is_run_state(rel: str | PurePosixPath) -> bool:
    """Whether `rel` (relative to DIR) is run state: neither generated output nor a foreign file.

    >>> [is_run_state(p) for p in ("events.jsonl", "aws/terraform.tfstate.backup", "aws/.terraform/x",
    ...                            ".skyplan/lock", "aws/main.tf", "PLAN.md")]
    [True, True, True, True, False, False]
    """
    parts = PurePosixPath(rel).parts
    if not parts:
        return False
    if _TEMP_FILE.match(parts[-1]):
        return True
    if len(parts) == 1:
        return parts[0] in _RUN_STATE_TOP_DIRS or bool(_RUN_STATE_TOP_FILES.match(parts[0]))
    if parts[0] in _RUN_STATE_TOP_DIRS:
        return True
    if parts[0] in ALL_TARGETS:
        return ".terraform" in parts[1:] or (len(parts) == 2 and bool(_RUN_STATE_STACK_FILES.match(parts[1])))
    return False


def manifest_text(files: Mapping[str, bytes]) -> bytes:
    """The manifest of `files` (generated files only; run-state paths are left out), sorted by path."""
    lines = []
    for rel in sorted(files):
        if is_run_state(rel) or rel == MANIFEST_FILE:
            continue
        if "\n" in rel or "\\" in rel:
            raise RenderError(f"cannot record the file name {rel!r} in {MANIFEST_FILE}")
        lines.append(f"{_sha256(files[rel])}  {rel}\n")
    return "".join(lines).encode()


def read_manifest(out_dir: Path, *, strict: bool = True) -> dict[str, frozenset[str]] | None:
    """Path → the hashes skyplan wrote there, from `DIR/MANIFEST.sha256`; None when there is none.

    A malformed line is an error when `strict` (the ownership record must not be guessed at);
    otherwise the manifest counts as absent."""
    path = Path(out_dir) / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, IsADirectoryError):
        if strict:
            raise SkyplanError(f"{path}: not a manifest written by skyplan; restore it (e.g. from git) "
                               "or compile with --force") from None
        return None
    entries: dict[str, set[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _LINE.match(line)
        if not match:
            if strict:
                raise SkyplanError(f"{path}:{number}: not a '<sha256>  <path>' line; restore the file "
                                   "(e.g. from git) or compile with --force")
            return None
        entries.setdefault(match.group(2), set()).add(match.group(1))
    return {rel: frozenset(hashes) for rel, hashes in entries.items()}


def files_in_the_way(files: Mapping[str, bytes], out_dir: Path,
                     manifest: dict[str, frozenset[str]] | None) -> list[tuple[str, str]]:
    """(path, why) for each file in DIR that compiling `files` would overwrite or remove and
    that skyplan did not write (or that changed since it did), sorted by path."""
    entries = []
    for rel, path in _existing(out_dir):
        generated_here = rel in files or PurePosixPath(rel).parts[0] in GENERATED_ROOTS
        if manifest is not None and not generated_here:
            continue  # beside the plan: compile neither writes nor removes it (nor reads it)
        # Without a manifest, a file compile does not write there is foreign whatever it holds:
        # no need to read it (`-o ~` by mistake must not hash a home directory).
        if generated_here and not path.is_symlink():  # skyplan never writes links
            digest = _sha256(path.read_bytes())
            if manifest and digest in manifest.get(rel, ()):
                continue
            if rel in files and digest == _sha256(files[rel]):
                continue  # it already holds exactly what compile writes: nothing is lost
        if manifest is not None and rel in manifest:
            why = "changed since skyplan wrote it"
        elif manifest is None and generated_here:
            why = f"not written by skyplan (no {MANIFEST_FILE} here: a directory compiled by an older skyplan?)"
        else:
            why = "not written by skyplan"
        entries.append((rel, why))
    return entries


def write_output(files: Mapping[str, bytes], out_dir: Path, *, force: bool = False,
                 check: bool = True) -> Written:
    """Write `files` (relative path → bytes) under `out_dir`, with their manifest.

    With `check` (every user-facing compile), files in the way (see the module docstring) are
    refused with `FilesInTheWay`, or with `force` replaced / removed. Without it (the apply loop
    recompiling its own DIR on failover, under its lock), generated paths are written and files
    skyplan did not write are kept. Either way only skyplan's own files are removed as stale."""
    out_dir = Path(out_dir)
    for rel in files:
        if PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts or rel == MANIFEST_FILE:
            raise RenderError(f"refusing to write {rel!r} in {out_dir}")
    # Only a checked compile may stop on a damaged manifest; the apply loop's recompile must not.
    old = read_manifest(out_dir, strict=check and not force) if out_dir.is_dir() else None
    in_the_way = files_in_the_way(files, out_dir, old) if check and out_dir.is_dir() else []
    if in_the_way and not force:
        raise FilesInTheWay(out_dir, in_the_way, plan_dir=old is not None)
    new_manifest = manifest_text(files)
    out_dir.mkdir(parents=True, exist_ok=True)
    # First the union, so that a kill half-way leaves every file written so far recognisable.
    union = dict.fromkeys(new_manifest.decode().splitlines(keepends=True))
    for rel, hashes in (old or {}).items():
        for digest in sorted(hashes):
            union.setdefault(f"{digest}  {rel}\n")
    _write_file(out_dir / MANIFEST_FILE, "".join(sorted(union, key=lambda line: (line[66:], line))).encode())

    for rel, data in sorted(files.items()):
        path = out_dir / rel
        if path.is_symlink():
            path.unlink()  # in the way and forced: replace the link, never write through it
        _write_file(path, data)

    removed, taken_over = [], []
    for rel, hashes in sorted((old or {}).items()):
        path = out_dir / rel
        if rel in files or is_run_state(rel) or not path.is_file() or path.is_symlink():
            continue
        if _sha256(path.read_bytes()) in hashes:
            path.unlink()
            removed.append(rel)
            _prune_empty_parents(path.parent, out_dir)
    for rel, _why in in_the_way:
        if rel in files:
            taken_over.append(rel)  # already replaced above
            continue
        if PurePosixPath(rel).parts[0] not in GENERATED_ROOTS:
            continue  # a foreign directory's own files (first compile): compile never removes those
        taken_over.append(rel)
        path = out_dir / rel
        if path.is_file() or path.is_symlink():
            path.unlink()
            _prune_empty_parents(path.parent, out_dir)
    _write_file(out_dir / MANIFEST_FILE, new_manifest)
    return Written(removed=tuple(removed), taken_over=tuple(taken_over))


def _existing(out_dir: Path) -> Iterator[tuple[str, Path]]:
    """Every file (or link) under `out_dir` that is not run state nor the manifest, sorted by path."""
    found = []
    for root, dirs, names in os.walk(out_dir):
        base = Path(root)
        rel_root = base.relative_to(out_dir)
        descend = []
        for name in sorted(dirs):
            rel = (rel_root / name).as_posix()
            if is_run_state(rel):
                continue  # never descend into run state: a run's storage can be large
            if (base / name).is_symlink():
                found.append((rel, base / name))  # a link to a folder is one foreign entry, not followed
            else:
                descend.append(name)
        dirs[:] = descend
        for name in names:
            rel = (rel_root / name).as_posix()
            if rel != MANIFEST_FILE and not is_run_state(rel):
                found.append((rel, base / name))
    yield from sorted(found)


def _prune_empty_parents(folder: Path, out_dir: Path) -> None:
    """Remove `folder` and its parents up to `out_dir` while they are empty (a removed stack's
    folder goes; one that still holds its Terraform state stays)."""
    out_dir = out_dir.resolve()
    folder = folder.resolve()
    while folder != out_dir and out_dir in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty
            return
        folder = folder.parent


def _write_file(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, unless it already holds exactly that."""
    if path.is_file() and not path.is_symlink() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; these are meant to be read (and scripts run) by others.
        os.chmod(tmp, 0o755 if data.startswith(b"#!") else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
