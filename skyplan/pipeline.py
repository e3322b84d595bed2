"""The compile pipeline as data: spec → catalog → candidates → placement → files on disk.

`compile_plan` is what `skyplan compile` runs and what the apply loop re-runs on failover (with
more exclusions and the previous placement as a hint). Each step is one stage module; this file
only wires them, in the order of DESIGN.md's picture.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from skyplan.backend import Backend
from skyplan.errors import SkyplanError
from skyplan.models import Catalog, Objective, Offering, Placement, Quota, Spec

RUN_STATE_DIR = ".skyplan"
SPEC_COPY = f"{RUN_STATE_DIR}/spec.yaml"
EXCLUSIONS_FILE = f"{RUN_STATE_DIR}/exclusions.json"
SOURCE_FILE = f"{RUN_STATE_DIR}/source.json"  # where the spec came from, relative to DIR

Progress = Callable[[str, float], None]  # (stage name, seconds it took)


@dataclass(frozen=True)
class CompileResult:
    spec: Spec
    catalog: Catalog
    placement: Placement
    out_dir: Path
    plan_doc: dict
    timings: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # Files `force` replaced or removed that skyplan had not written (or that were edited since).
    taken_over: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()  # skyplan's own files no longer generated (a target the plan left)

    @property
    def solver_wall_s(self) -> float:
        """The solver's wall time: for the terminal and `--json` only, never a file under DIR."""
        return self.placement.solver.wall_s


@dataclass(frozen=True)
class CompileOptions:
    """What a compile is asked for beyond the spec: the settings `compile` and `compile --check`
    must agree on for the check to mean anything. (Per-call mechanics — a warm-start hint,
    progress reporting, a spec text in place of the file — stay keyword arguments.)"""

    catalog_dir: str | Path | None = None
    exclusions: tuple[str, ...] = ()
    objective: Objective | None = None
    pareto: bool = False
    explain: bool = False
    backend: Backend | None = None  # remote Terraform state (`--backend`); None: state in DIR/<stack>/


DEFAULT_OPTIONS = CompileOptions()


@dataclass(frozen=True)
class Solved:
    """A placement and everything it was decided from, before anything is written."""

    spec: Spec
    catalog: Catalog
    placement: Placement
    plan_doc: dict
    timings: dict[str, float]


def _targets_extras(spec: Spec) -> tuple[list[Offering], tuple[Quota, ...], dict[str, bool]]:
    """Offerings and capacity quotas that targets add on top of the price catalog."""
    from skyplan.targets import get_target, target_names

    named = set(spec.allowed.clouds or ())
    for task in spec.tasks:
        named.update(task.allowed.clouds or ())
        # A SkyPilot file names its target in resources (`infra: local`), not in `allowed`.
        named.update(option.cloud for option in task.options if option.cloud)
    offerings: list[Offering] = []
    capacity: list[Quota] = []
    enabled: dict[str, bool] = {}
    for name in target_names():
        target = get_target(name)
        extra = target.offerings(spec)
        # A target that is not enabled by default (`local`: at price 0 it would win every CPU
        # task) takes part only when the spec names it.
        enabled[name] = target.enabled_by_default
        if extra and (enabled[name] or name in named):
            offerings.extend(extra)
            capacity.extend(target.capacity(spec))
    return offerings, tuple(capacity), enabled


def check_open_ports(spec: Spec, placement: Placement) -> None:
    """Refuse a cloud task's `ports` without a source to open them to (`ingress_from`).

    A port open to 0.0.0.0/0 is found by scanners within minutes; the user names who may reach it
    (a CI runner, an office, a VPN). Local and ssh tasks open nothing, so their ports pass.

    Raises:
        SpecError: at the task's `ports`, saying what to write."""
    from skyplan.errors import SpecError
    from skyplan.models import SourcePos
    from skyplan.targets import paid_target_names

    paid = paid_target_names()
    for tp in placement.tasks:
        task = spec.task(tp.task)
        cloud = tp.candidate.location.cloud
        ports = sorted({p for opt in task.options for p in opt.ports})
        if cloud not in paid or not ports or task.ingress_from or spec.ingress_from:
            continue
        pos = (spec.where(f"tasks[{task.name}].resources") or task.pos
               or SourcePos(spec.source_file, 0, f"tasks[{task.name}]"))
        shown = ", ".join(str(p) for p in ports[:5]) + (", …" if len(ports) > 5 else "")
        raise SpecError(pos, f"task {task.name} is placed on {cloud} and asks for ports {shown}, but names no "
                             "source to open them to: add `ingress_from: [CIDR, …]` (e.g. your CI runner's or "
                             "office's range, 203.0.113.0/24) to the task or the spec; skyplan never opens a "
                             "port to 0.0.0.0/0 unasked")


def apply_blockers(spec: Spec, placement: Placement) -> tuple[str, ...]:
    """Why this plan, though valid to compile and review, cannot be applied as it stands.

    Compile reports them as warnings (a SkyPilot file must still compile); `skyplan apply`
    refuses to create anything while any remains (exit 2). Instances reach storage through their
    own cloud's identity (IAM role, service account, managed identity), on another cloud through
    federation the stacks set up (skyplan.targets.access) — skyplan never writes a key — except
    for the pairs of `access.UNSUPPORTED`."""
    from skyplan.targets import get_target, paid_target_names
    from skyplan.targets.cloud import chosen_option, container_image

    paid = paid_target_names()
    cloud_tasks = [tp for tp in placement.tasks if tp.candidate.location.cloud in paid]
    used = sorted({tp.candidate.location.cloud for tp in cloud_tasks})
    blockers: list[str] = []
    if cloud_tasks and not spec.storage:
        blockers.append(
            f"no `storage:` in the spec: tasks on {', '.join(used)} could not stage inputs/outputs or report "
            "their exit status; set `storage:` to a bucket on the cloud that runs them"
        )
    elif cloud_tasks:
        from skyplan.storage import cloud_of

        scheme = spec.storage.partition("://")[0].lower()
        storage_cloud = cloud_of(spec.storage)
        if scheme == "az":
            blockers.append(
                f"storage {spec.storage}: write Azure storage as https://<account>.blob.core.windows.net/<container>/…"
            )
        elif storage_cloud not in paid:
            blockers.append(f"storage {spec.storage} is not reachable from cloud machines (use s3://, gs:// or Azure blob)")
        else:
            from skyplan.targets.access import UNSUPPORTED

            for (task_cloud, target_cloud), why in sorted(UNSUPPORTED.items()):
                stuck = sorted(tp.task for tp in cloud_tasks
                               if tp.candidate.location.cloud == task_cloud and storage_cloud == target_cloud)
                if stuck:
                    blockers.append(
                        f"storage {spec.storage} is on {storage_cloud}, but task(s) {', '.join(stuck)} run on "
                        f"{task_cloud}: {why}; put `storage:` on another cloud or keep these tasks off {task_cloud}"
                    )
    for tp in placement.tasks:
        for remote, what in spec.task(tp.task).storage_mounts:
            blockers.append(f"task {tp.task} mounts a bucket at {remote} ({what}): skyplan records it but does not "
                            "mount buckets yet (a COPY mount with a source, or a plain `path: URI`, is copied)")
        git = spec.task(tp.task).workdir_git
        if git:
            blockers.append(f"task {tp.task}'s workdir is the git repository {git[0]}{' at ' + git[1] if git[1] else ''}: "
                            "skyplan records it but does not fetch git workdirs yet; clone it and give the directory")
        image = container_image(chosen_option(spec.task(tp.task), tp.candidate.offering))
        if image:
            blockers.append(f"task {tp.task} runs in container {image} (image_id: docker:…): skyplan records it "
                            "but does not run tasks in containers yet")
    for tp in cloud_tasks:
        blockers.extend(get_target(tp.candidate.location.cloud).apply_blockers(spec, tp))
    return tuple(blockers)


def record_launch_values(doc: dict, spec: Spec) -> None:
    """Give each task of plan.json that needs values at launch `required_at_launch`: the names
    of its secrets and of its null `envs` (SkyPilot's "value required at launch"). Names only:
    `skyplan apply` refuses before it creates anything while one is unset in its environment."""
    for entry in doc["tasks"]:
        task = spec.task(entry["name"])
        if task.secrets:
            entry["required_at_launch"] = sorted(task.secrets)


def record_machine_extras(doc: dict, spec: Spec, placement: Placement) -> None:
    """Give each task of plan.json what its shape asks of the machine beyond the offering:
    `container` for `image_id: docker:<image>` (recorded; apply refuses until containers run), and
    for a `disk_tier` its boot `disk`: the tier as written, the cloud's disk type and provisioned
    IOPS (`skyplan.targets.disks`). Disks are not priced in the plan yet, tiered or default."""
    from skyplan.targets.cloud import chosen_option, container_image
    from skyplan.targets.disks import disk_for

    placed = {tp.task: tp.candidate.offering for tp in placement.tasks}
    for entry in doc["tasks"]:
        offering = placed[entry["name"]]
        option = chosen_option(spec.task(entry["name"]), offering)
        if container_image(option):
            entry["container"] = container_image(option)
        if spec.task(entry["name"]).storage_mounts:
            entry["storage_mounts"] = dict(spec.task(entry["name"]).storage_mounts)
        git = spec.task(entry["name"]).workdir_git
        if git:
            entry["workdir_git"] = {"url": git[0], "ref": git[1] or None}
        if option.disk_tier is None:
            continue
        disk = disk_for(offering.cloud, offering.instance_type, option.disk_tier)
        entry["disk"] = {"tier": option.disk_tier, "size_gb": option.disk_gb,
                         "type": disk.type if disk else None, "iops": disk.iops if disk else None}


def spot_warnings(placement: Placement) -> tuple[str, ...]:
    """A warning per task placed on spot where spot is not cheaper than on-demand.

    The optimizer takes such spot only when told to (`use_spot: true`) or when on-demand is out
    of reach (quotas): it costs the same or more and can be preempted, so a reviewer should know."""
    from skyplan import fmt
    from skyplan.catalog import spot_note

    out = []
    for tp in sorted(placement.tasks, key=lambda tp: tp.task):
        off = tp.candidate.offering
        if tp.candidate.spot and spot_note(off):
            out.append(
                f"task {tp.task} runs on spot {off.instance_type} in {off.location.key} at ${fmt.rate(off.spot_price)}/h, "
                f"not below its on-demand price ${fmt.rate(off.price)}/h: it can be preempted for no saving "
                "(`use_spot: auto` lets skyplan choose on-demand there)"
            )
    return tuple(out)


def solve_spec(
    spec_path: str | Path,
    *,
    catalog_dir: str | Path | None = None,
    exclusions: Sequence[str] = (),
    objective: Objective | None = None,
    hint: Placement | None = None,
    pareto: bool = False,
    explain: bool = False,
    progress: Progress | None = None,
    spec_text: str | None = None,
    previous_plan: dict | None = None,
) -> Solved:
    """Parse, load, prune and solve; return the placement and its plan document (no I/O beyond reads).

    With `spec_text`, that text is parsed as if it were the file `spec_path` (which need not
    exist): files the spec names (quotas, pools) still resolve relative to `spec_path`."""
    from skyplan.candidates import SPOT_OVERHEAD, build_candidates, parse_exclusions, quota_limits
    from skyplan.catalog import known_accelerators, load_catalog
    from skyplan.optimizer import solve
    from skyplan.planfile import plan_document
    from skyplan.spec import load_spec
    from skyplan.transfers import storage_bucket

    timings: dict[str, float] = {}

    def step(name: str, started: float) -> None:
        timings[name] = time.perf_counter() - started
        if progress:
            progress(name, timings[name])

    t0 = time.perf_counter()
    catalog = load_catalog(catalog_dir)
    step("catalog", t0)

    t0 = time.perf_counter()
    spec = load_spec(spec_path, known_accelerators=known_accelerators(catalog), text=spec_text)
    extra_offerings, capacity, enabled = _targets_extras(spec)
    if capacity:
        spec = dataclasses.replace(spec, quotas=spec.quotas + capacity)
    step("spec", t0)

    t0 = time.perf_counter()
    all_exclusions = tuple(dict.fromkeys([*spec.exclude_zones, *exclusions]))
    parsed = parse_exclusions(all_exclusions, catalog, extra_offerings, spec=spec)
    candidates = build_candidates(
        spec, catalog, exclusions=parsed, extra_offerings=extra_offerings, enabled_by_default=enabled
    )
    limits = quota_limits(spec, catalog, extra_offerings)
    step("candidates", t0)

    if hint is None and previous_plan is not None:
        hint = _hint_from_plan(previous_plan, spec, candidates)
    t0 = time.perf_counter()
    placement = solve(
        spec,
        candidates,
        catalog,
        objective=objective,
        limits=limits,
        excluded_zones=all_exclusions,
        hint=hint,
        pareto=pareto,
        explain=explain,
    )
    step("optimize", t0)
    check_open_ports(spec, placement)

    bw = catalog.bandwidth
    storage = storage_bucket(spec)
    assumptions = {
        "spot_overhead": SPOT_OVERHEAD,
        "bandwidth_gbps": {"same_zone": bw.same_zone, "cross_zone": bw.cross_zone,
                           "inter_region": bw.inter_region, "internet": bw.internet},
        "default_hours": 1.0,
        # Where egress is priced through: every edge's data is written there and read back.
        "egress_storage": {"cloud": storage.cloud, "region": storage.region},
    }
    doc = plan_document(spec, placement, catalog.info, assumptions)
    doc["apply_blockers"] = sorted(apply_blockers(spec, placement))
    record_launch_values(doc, spec)
    record_machine_extras(doc, spec, placement)
    return Solved(spec=spec, catalog=catalog, placement=placement, plan_doc=doc, timings=timings)


def build_files(
    spec_path: str | Path,
    out_dir: str | Path,
    options: CompileOptions = DEFAULT_OPTIONS,
    *,
    hint: Placement | None = None,
    progress: Progress | None = None,
    spec_text: str | None = None,
    previous_plan: dict | None = None,
) -> tuple[Solved, dict[str, bytes], tuple[str, ...], float]:
    """Everything `compile_plan` would write into `out_dir` (relative path → bytes), without
    writing: the solved plan, the files, the compile warnings and when rendering started
    (`time.perf_counter()`). `skyplan compile --check` compares these with a committed DIR."""
    from skyplan.backend import backend_files
    from skyplan.planfile import dumps, summary_markdown
    from skyplan.render import render

    spec_path = Path(spec_path)
    out = Path(out_dir)
    solved = solve_spec(
        spec_path,
        catalog_dir=options.catalog_dir,
        exclusions=options.exclusions,
        objective=options.objective,
        hint=hint,
        pareto=options.pareto,
        explain=options.explain,
        progress=progress,
        spec_text=spec_text,
        previous_plan=previous_plan,
    )
    t0 = time.perf_counter()
    if options.backend is not None:
        solved.plan_doc["backend"] = options.backend.to_doc()
    source = solved.plan_doc["catalog"]["source"]
    if os.path.isabs(source):
        # A `--catalog DIR` is recorded relative to the plan, like the spec's origin: an absolute
        # path would make the same plan differ between two checkouts (its content is in the hash).
        solved.plan_doc["catalog"]["source"] = os.path.relpath(source, out.resolve())
    plan_json = dumps(solved.plan_doc)
    warnings = (*solved.spec.warnings, *spot_warnings(solved.placement),
                *(f"apply will refuse: {b}" for b in solved.plan_doc["apply_blockers"]))
    plan_md = summary_markdown(solved.plan_doc, spec_warnings=warnings)
    files = dict(render(solved.spec, solved.placement, plan_json=plan_json, plan_md=plan_md))
    stacks = sorted({rel.split("/", 1)[0] for rel in files if rel.endswith("/terraform.tf")})
    files.update(backend_files(options.backend, stacks))
    # The spec and the exclusions travel with the plan so that apply can recompile on failover
    # without the original checkout (CI may run apply on the committed DIR alone).
    files[SPEC_COPY] = spec_text.encode() if spec_text is not None else spec_path.read_bytes()
    # Relative, so a committed DIR still finds the spec's workdir/quotas files in another checkout.
    origin = os.path.relpath(spec_path.resolve().parent, out.resolve())
    files[SOURCE_FILE] = (json.dumps({"spec_dir": origin, "spec_name": spec_path.name}, indent=2) + "\n").encode()
    files[EXCLUSIONS_FILE] = (
        json.dumps(sorted(set(solved.placement.excluded_zones)), indent=2) + "\n"
    ).encode()
    return solved, files, warnings, t0


def compile_plan(
    spec_path: str | Path,
    out_dir: str | Path,
    options: CompileOptions = DEFAULT_OPTIONS,
    *,
    hint: Placement | None = None,
    progress: Progress | None = None,
    spec_text: str | None = None,
    replace_live: bool = False,
    previous_plan: dict | None = None,
    force: bool = False,
) -> CompileResult:
    """Solve `spec_path` and write the reviewable output directory (DESIGN.md "Output layout").

    `spec_text` replaces reading `spec_path` (see `solve_spec`); `recompile` uses it. A DIR whose
    stacks still hold resources, or that a run holds, is refused: rewriting its stacks would orphan
    those machines. Only the apply loop itself (`replace_live`, under its lock) recompiles a live DIR.
    A DIR holding files skyplan did not write, where it writes, is refused (`outdir.FilesInTheWay`)
    unless `force`; the apply loop's recompile keeps such files and writes around them."""
    from skyplan.outdir import files_in_the_way, read_manifest, write_output

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SkyplanError(f"{out}: exists and is not a directory")
    solved, files, warnings, t0 = build_files(
        spec_path,
        out,
        options,
        hint=hint,
        progress=progress,
        spec_text=spec_text,
        previous_plan=previous_plan,
    )
    if replace_live:
        written = write_output(files, out, check=False)
    else:
        from skyplan.outdir import FilesInTheWay
        from skyplan.runstate import RunLock

        # Refuse before the lock creates DIR/.skyplan/: a refused compile leaves nothing behind.
        if out.is_dir() and not force:
            manifest = read_manifest(out)
            in_the_way = files_in_the_way(files, out, manifest)
            if in_the_way:
                raise FilesInTheWay(out, in_the_way, plan_dir=manifest is not None)
        with RunLock(out, "compile"):
            _refuse_live_state(out)
            written = write_output(files, out, force=force)
    timings = dict(solved.timings)
    timings["render"] = time.perf_counter() - t0
    if progress:
        progress("render", timings["render"])
    return CompileResult(
        spec=solved.spec,
        catalog=solved.catalog,
        placement=solved.placement,
        out_dir=out,
        plan_doc=solved.plan_doc,
        timings=timings,
        warnings=warnings,
        taken_over=written.taken_over,
        removed=written.removed,
    )


def needs_compile(spec_path: str | Path, out_dir: str | Path) -> bool:
    """Whether `skyplan apply SPEC -o DIR` compiles before it runs: DIR holds no plan compiled
    from exactly this spec text (re-applying the same spec resumes the run in DIR instead)."""
    spec_path, out = Path(spec_path), Path(out_dir)
    copy = out / SPEC_COPY
    try:
        return not ((out / "plan.json").is_file() and copy.read_bytes() == spec_path.read_bytes())
    except FileNotFoundError:
        return True


def _hint_from_plan(doc: dict, spec: Spec, candidates) -> Placement | None:
    """A warm start rebuilt from a plan.json: each task's candidate at the same location,
    instance type and spot flag, where it still exists. Lets the first failover of a DIR that
    was compiled by an earlier process keep unaffected tasks in place, like later ones do."""
    from skyplan.models import SolverStats, TaskPlacement

    placed = []
    for task in doc.get("tasks", []):
        key = (task["cloud"], task["region"], task.get("zone"), task["instance_type"], task["spot"])
        for cand in candidates.get(task["name"], ()):
            loc = cand.location
            if (loc.cloud, loc.region, loc.zone, cand.offering.instance_type, cand.spot) == key:
                placed.append(TaskPlacement(task["name"], cand, 0.0, 0.0, 0.0))
                break
    if not placed:
        return None
    return Placement(name=spec.name, objective=spec.objective, tasks=tuple(placed), total_cost=0.0,
                     makespan_hours=0.0, excluded_zones=(), solver=SolverStats(status="HINT", objective=0.0,
                                                                                wall_s=0.0))


def _refuse_live_state(out: Path) -> None:
    from skyplan.targets import target_names

    for target in target_names():
        state = out / target / "terraform.tfstate"
        try:
            resources = json.loads(state.read_text()).get("resources") or []
        except (OSError, ValueError):
            continue
        live = [r for r in resources if r.get("instances")]
        if live:
            raise SkyplanError(
                f"{out}: the {target} stack still has {len(live)} resource(s) from a run "
                f"(terraform state); run `skyplan destroy {out}` first, or compile into another directory"
            )


def spec_origin(out_dir: str | Path) -> Path:
    """The path the spec of a compiled DIR was compiled from (it may no longer exist).

    Relative paths in the spec (workdir, file_mounts, quotas and pools files) resolve against
    its directory. DIRs written before `source.json` existed fall back to the copy in DIR."""
    out = Path(out_dir)
    try:
        source = json.loads((out / SOURCE_FILE).read_text())
        return (out / source["spec_dir"] / source["spec_name"]).resolve()
    except (OSError, ValueError, KeyError, TypeError):
        return (out / SPEC_COPY).resolve()


def recompile(
    out_dir: str | Path,
    *,
    catalog_dir: str | Path | None = None,
    exclusions: Sequence[str] = (),
    hint: Placement | None = None,
) -> CompileResult:
    """Compile a DIR again from the spec copy it carries (failover: more exclusions, a hint).

    The backend plan.json records is kept: a failover never moves the state."""
    from skyplan.backend import from_doc
    from skyplan.planfile import read_plan

    out = Path(out_dir)
    text = (out / SPEC_COPY).read_text()
    previous = read_plan(out)
    options = CompileOptions(catalog_dir=catalog_dir, exclusions=tuple(exclusions),
                             backend=from_doc(previous.get("backend")))
    return compile_plan(spec_origin(out), out, options, spec_text=text, replace_live=True, hint=hint,
                        previous_plan=previous if hint is None else None)
