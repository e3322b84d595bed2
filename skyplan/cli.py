"""The `skyplan` command line: compile, apply, status, destroy, catalog, diff.

Commands import their stage modules lazily so `skyplan --help` starts fast. Every user error is a
`SkyplanError` carrying its exit code (DESIGN.md "CLI"); none prints a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from skyplan import __version__, fmt
from skyplan.errors import SkyplanError
from skyplan.targets import price_refreshed_names


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output (CI logs) has no width; 80 columns would fold the placement table.
    width = None if stream.isatty() else 200
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def _fail(exc: SkyplanError, as_json: bool) -> NoReturn:
    if as_json:
        doc: dict[str, Any] = {"error": exc.message, "exit_code": exc.exit_code}
        reasons = getattr(exc, "reasons", ())
        if reasons:
            doc["reasons"] = list(reasons)
        click.echo(json.dumps(doc, sort_keys=True))
    else:
        from rich.markup import escape

        # Messages quote user text such as `tasks[train]`: never let rich read it as markup.
        # soft_wrap: an error is one line however long, for logs and editors that jump to file:line.
        _console(stderr=True).print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
        for reason in getattr(exc, "reasons", ()) or ():
            if reason not in exc.message:
                _console(stderr=True).print(f"  - {reason}", markup=False)
    sys.exit(exc.exit_code)


def _guard(as_json: bool, fn: Callable[[], int | None]) -> None:
    try:
        code = fn()
    except SkyplanError as exc:
        _fail(exc, as_json)
    except KeyboardInterrupt:
        _console(stderr=True).print("interrupted")
        sys.exit(130)
    except OSError as exc:
        # A path the user gave cannot be read or written: their input, not our bug.
        from skyplan.atomicfile import describe_os_error

        _fail(SkyplanError(describe_os_error(exc)), as_json)  # a full disk says so
    sys.exit(code or 0)


class _Group(click.Group):
    """Suggests the closest command for a typo, like pip does."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else None
        if name and name not in self.commands and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, list(self.commands), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            ctx.fail(f"unknown command '{name}'{hint}")
        return super().resolve_command(ctx, args)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="skyplan")
def main() -> None:
    """Place batch job DAGs across clouds; compile the placement to reviewable Terraform."""


# ---------------------------------------------------------------------------------------------
# compile
# ---------------------------------------------------------------------------------------------


def default_out_dir(spec_path: str | Path) -> Path:
    """`skyplan-out/<spec file stem>`: where compile writes when `-o` is not given."""
    return Path("skyplan-out") / Path(spec_path).stem


def print_placement(doc: dict[str, Any], *, solver_wall_s: float | None = None) -> None:
    """The PLAN.md placement table, on the terminal (with the solver's wall time, which PLAN.md omits)."""
    from rich.markup import escape
    from rich.table import Table

    from skyplan.planfile import NUMERIC_HEADERS, PLACEMENT_HEADERS, placement_rows

    table = Table(title=escape(f"plan {doc['name']}"), title_justify="left")
    for header in PLACEMENT_HEADERS:
        table.add_column(header, justify="right" if header in NUMERIC_HEADERS else "left")
    for row in placement_rows(doc):
        table.add_row(*(escape(cell) for cell in row))
    console = _console()
    console.print(table)
    compute = sum(t["compute_cost"] for t in doc["tasks"])
    egress = sum(t["egress_cost"] for t in doc["tasks"])
    took = f" in {fmt.seconds(solver_wall_s)}" if solver_wall_s is not None else ""
    console.print(
        f"total [bold]{fmt.money(doc['total_cost'])}[/] (compute {fmt.money(compute)} + egress {fmt.money(egress)}), "
        f"makespan [bold]{fmt.duration(doc['makespan_hours'])}[/], solver {doc['solver']['status']}{took}"
    )
    base = doc.get("baseline_single_region")
    if base and base["total_cost"] - doc["total_cost"] > 0.005:
        saved = base["total_cost"] - doc["total_cost"]
        console.print(f"saves {fmt.money(saved)} against the best single-region plan ({escape(base['location'])})")
    if any(not t.get("hours_given", True) for t in doc["tasks"]):
        console.print("* no hours given: planned as 1 hour (SkyPilot's default estimate)")


def _print_explain(doc: dict[str, Any], solver_wall_s: float) -> None:
    from rich.table import Table

    console = _console()
    if doc.get("runners_up"):
        table = Table(title="runner-up per task (everything else re-optimized)", title_justify="left")
        for header in ("task", "location", "instance", "plan total", "Δ", "makespan"):
            table.add_column(header)
        for r in doc["runners_up"]:
            where = " / ".join(x for x in (r["cloud"], r["region"], r["zone"]) if x)
            table.add_row(
                r["task"],
                where,
                r["instance_type"] + (" spot" if r["spot"] else ""),
                fmt.money(r["total_cost"]),
                fmt.money_delta(r["total_cost"] - doc["total_cost"]),
                fmt.duration(r["makespan_hours"]),
            )
        console.print(table)
    tight = doc["constraints"].get("tight") or []
    console.print(f"binding constraints: {', '.join(tight) if tight else 'none'}")
    s = doc["solver"]
    console.print(
        f"solver: {s['status']}, gap {fmt.percent(s['gap'])}, {fmt.seconds(solver_wall_s)}, {s['variables']} variables, "
        f"{s['constraints']} constraints, candidates {s['candidates_before_pruning']} → "
        f"{s['candidates_after_pruning']}, {s['workers']} workers, seed {s['seed']}"
    )


def _print_pareto(doc: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="cost / makespan frontier", title_justify="left")
    table.add_column("makespan", justify="right")
    table.add_column("total cost", justify="right")
    for p in doc.get("pareto", []):
        table.add_row(fmt.duration(p["makespan_hours"]), fmt.money(p["total_cost"]))
    _console().print(table)


@main.command("compile")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), help="Output directory [skyplan-out/<spec>].")
@click.option("--catalog", "catalog_dir", type=click.Path(file_okay=False), help="Use this price catalog directory.")
@click.option("--exclude-zone", "exclusions", multiple=True, metavar="Z", help="Zone, region or cloud to avoid (repeatable).")
@click.option("--objective", type=click.Choice(["cost", "time"]), help="Override the spec's objective.")
@click.option("--pareto", is_flag=True, help="Also compute the cost/makespan frontier.")
@click.option("--explain", is_flag=True, help="Show runner-up placements, binding constraints and solver statistics.")
@click.option("--force", is_flag=True,
              help="Replace files in DIR that skyplan did not write (or that were edited since) instead of refusing.")
@click.option("--check", "check_dir", is_flag=False, flag_value="", default=None, metavar="DIR",
              help="Write nothing: exit 0 if DIR (or -o) is exactly what this compile would write, "
                   "else 1 with why (spec, catalog, exclusions changed) and the files that differ.")
@click.option("--backend", "backend_uri", metavar="URI",
              help="Keep each stack's Terraform state remotely: s3://BUCKET/PREFIX?region=R, gs://BUCKET/PREFIX "
                   "or azurerm://ACCOUNT/CONTAINER/PREFIX (credentials come from the environment).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (the plan) instead of tables.")
def compile_cmd(spec, out_dir, catalog_dir, exclusions, objective, pareto, explain, force, check_dir,
                backend_uri, as_json) -> None:
    """Solve SPEC and write the Terraform stacks, cloud-init executors, plan.json and PLAN.md.

    DIR keeps MANIFEST.sha256, the files skyplan wrote: a recompile replaces or removes only
    those, and refuses (exit 2) a DIR holding other files where it writes, unless --force."""

    def run() -> int:
        from skyplan.backend import parse_backend
        from skyplan.models import Objective
        from skyplan.pipeline import CompileOptions, compile_plan

        options = CompileOptions(catalog_dir=catalog_dir, exclusions=tuple(exclusions),
                                 objective=Objective(objective) if objective else None, pareto=pareto,
                                 explain=explain, backend=parse_backend(backend_uri) if backend_uri else None)
        if check_dir is not None:
            return _check(spec, check_dir, out_dir, options, force, as_json)
        out = Path(out_dir) if out_dir else default_out_dir(spec)
        status = None
        if not as_json and sys.stderr.isatty():
            status = _console(stderr=True).status("solving…")
            status.start()
        try:
            result = compile_plan(spec, out, options, force=force)
        finally:
            if status:
                status.stop()
        doc = result.plan_doc
        if as_json:
            # Wall-clock figures go here and to the terminal, never into a file under DIR.
            timings = {k: round(v, 3) for k, v in result.timings.items()}
            timings["solver"] = round(result.solver_wall_s, 3)
            click.echo(json.dumps({"out_dir": str(out), "plan": doc, "warnings": list(result.warnings),
                                   "timings_s": timings, "replaced": list(result.taken_over),
                                   "removed": list(result.removed)}, sort_keys=True, indent=2))
            return 0
        print_placement(doc, solver_wall_s=result.solver_wall_s)
        if pareto:
            _print_pareto(doc)
        if explain:
            _print_explain(doc, result.solver_wall_s)
        from rich.markup import escape

        err = _console(stderr=True)
        for warning in result.warnings:
            err.print(f"[yellow]warning:[/] {escape(warning)}")
        for rel in result.taken_over:
            err.print(f"[yellow]--force:[/] replaced or removed {escape(rel)} (skyplan had not written it)")
        written = sorted({t["cloud"] for t in doc["tasks"]})
        if (out / "cloud-init").is_dir():
            written.append("cloud-init")
        _console().print(
            escape(f"wrote {out}/ (plan.json, PLAN.md, {', '.join(d + '/' for d in written)}) "
                   f"in {fmt.seconds(sum(result.timings.values()))}")
            + (escape(f"; removed {len(result.removed)} file(s) no longer generated") if result.removed else "")
        )
        return 0

    _guard(as_json, run)


def _check(spec, check_dir, out_dir, options, force, as_json) -> int:
    """`compile --check`: compare DIR with what compile would write; exit 0 current, 1 stale."""
    from skyplan.check import check_plan

    if force:
        raise SkyplanError("--check writes nothing, so --force does not apply to it")
    if check_dir and out_dir and Path(check_dir) != Path(out_dir):
        raise SkyplanError(f"--check {check_dir} and -o {out_dir} name two directories; give one")
    out = Path(check_dir or out_dir or default_out_dir(spec))
    if out.exists() and not out.is_dir():
        raise SkyplanError(f"{out}: exists and is not a directory")
    result = check_plan(spec, out, options)
    if as_json:
        click.echo(json.dumps(result.to_json(), sort_keys=True, indent=2))
    else:
        click.echo("\n".join(result.summary_lines()))
    return result.exit_code


# ---------------------------------------------------------------------------------------------
# apply / status / destroy
# ---------------------------------------------------------------------------------------------


@main.command("apply")
@click.argument("target", type=click.Path())
@click.argument("tasks", nargs=-1)
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), help="Output directory when TARGET is a spec.")
@click.option("--catalog", "catalog_dir", type=click.Path(file_okay=False), help="Price catalog for (re)compiles.")
@click.option("--auto-approve", is_flag=True, help="Do not ask before creating paid cloud resources.")
@click.option("--max-attempts", default=3, show_default=True, type=click.IntRange(1, 100), help="Failover attempts.")
@click.option("--rerun", is_flag=True,
              help="Run TASKS (and everything downstream of them) again, or every task when none is named, "
                   "even where a result with the same identity is in storage.")
@click.option("--force", is_flag=True, help="When SPEC is compiled: replace files in DIR that skyplan did not write.")
@click.option("--env", "envs", multiple=True, metavar="NAME[=VALUE]",
              help="A value for an env the spec writes without one (SkyPilot's `NAME:`); NAME alone takes it "
                   "from this environment. Repeatable.")
@click.option("--secret", "secrets", multiple=True, metavar="NAME[=VALUE]",
              help="A secret's value; NAME alone takes it from this environment (preferred: a value on the "
                   "command line is visible to other users in `ps`). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (one event per line).")
def apply_cmd(target, tasks, out_dir, catalog_dir, auto_approve, max_attempts, rerun, force, envs, secrets,
              as_json) -> None:
    """Compile SPEC (or take a compiled DIR), run it through Terraform in DAG order, fail over, tear down.

    A task whose result in storage has the identity it would get now (same definition, inputs,
    workdir content, offering class and upstream results) is reused, not run again."""

    def run() -> int:
        from skyplan import apply as apply_mod

        if tasks and not rerun:
            raise SkyplanError(f"task names ({' '.join(tasks)}) are only taken with --rerun: "
                               f"skyplan apply --rerun {target} {' '.join(tasks)}")

        path = Path(target)
        if path.is_dir():
            directory = path
        elif path.is_file():
            directory = Path(out_dir) if out_dir else default_out_dir(path)
            from skyplan.pipeline import CompileOptions, compile_plan, needs_compile

            if force and needs_compile(path, directory):
                # Compile here, taking DIR over; apply then finds the plan of this spec and runs it.
                compile_plan(path, directory, CompileOptions(catalog_dir=catalog_dir), force=True)
        else:
            raise SkyplanError(f"{target}: no such spec file or plan directory")
        return apply_mod.run_cli(
            path,
            directory,
            catalog_dir=catalog_dir,
            auto_approve=auto_approve,
            max_attempts=max_attempts,
            as_json=as_json,
            interactive=sys.stdin.isatty() and not as_json,
            rerun=(list(tasks) or True) if rerun else (),
            launch=[(flag, *_name_value(item)) for flag, items in (("env", envs), ("secret", secrets))
                    for item in items],
        )

    _guard(as_json, run)


def _name_value(item: str) -> tuple[str, str | None]:
    """`NAME=VALUE` → (NAME, VALUE); `NAME` → (NAME, None): taken from the environment."""
    name, sep, value = item.partition("=")
    return name, value if sep else None


@main.command("status")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def status_cmd(directory, as_json) -> None:
    """Show each task's state, zone, attempt and cost so far."""

    def run() -> int:
        from skyplan import apply as apply_mod

        return apply_mod.status_cli(Path(directory), as_json=as_json)

    _guard(as_json, run)


@main.command("destroy")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def destroy_cmd(directory, as_json) -> None:
    """Remove everything a run in DIRECTORY created."""

    def run() -> int:
        from skyplan import apply as apply_mod

        return apply_mod.destroy_cli(Path(directory), as_json=as_json)

    _guard(as_json, run)


# ---------------------------------------------------------------------------------------------
# catalog
# ---------------------------------------------------------------------------------------------


@main.group("catalog")
def catalog_group() -> None:
    """Query or rebuild the price catalog."""


@catalog_group.command("show")
@click.option("--cloud", type=click.Choice(price_refreshed_names()))
@click.option("--accelerator", help="Only offerings with this accelerator (e.g. A100, tpu-v5p-8).")
@click.option("--region", help="Only this region (glob).")
@click.option("--catalog", "catalog_dir", type=click.Path(file_okay=False))
@click.option("--limit", default=50, show_default=True, help="Rows to show (0 = all); cheapest first.")
@click.option("--json", "as_json", is_flag=True)
def catalog_show(cloud, accelerator, region, catalog_dir, limit, as_json) -> None:
    """List offerings, cheapest on-demand first."""

    def run() -> int:
        from skyplan.catalog import catalog_rows, known_accelerators, load_catalog, spot_note

        catalog = load_catalog(catalog_dir)
        if accelerator and accelerator.lower() not in {a.lower() for a in known_accelerators(catalog)}:
            import difflib

            close = difflib.get_close_matches(accelerator, known_accelerators(catalog), n=5, cutoff=0.4)
            raise SkyplanError(
                f"unknown accelerator {accelerator!r}" + (f"; did you mean: {', '.join(close)}?" if close else "")
            )
        rows = catalog_rows(catalog, cloud=cloud, accelerator=accelerator)
        if region:
            rows = _rows_in_region(catalog, rows, region, cloud=cloud, accelerator=accelerator)
        rows.sort(
            key=lambda o: (
                o.price if o.price is not None else float("inf"),
                o.location.key,
                o.instance_type,
            )
        )
        total = len(rows)
        if limit:
            rows = rows[:limit]
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "catalog": {"date": catalog.info.date, "fingerprint": catalog.info.fingerprint},
                        "total": total,
                        "offerings": [
                            {
                                "cloud": o.location.cloud,
                                "region": o.location.region,
                                "zone": o.location.zone,
                                "instance_type": o.instance_type,
                                "accelerator": o.accelerator,
                                "accelerator_count": o.accelerator_count,
                                "vcpus": o.vcpus,
                                "memory_gib": o.memory_gib,
                                "price": o.price,
                                "spot_price": o.spot_price,
                                "note": spot_note(o),
                            }
                            for o in rows
                        ],
                    },
                    sort_keys=True,
                    indent=2,
                )
            )
            return 0
        from rich.table import Table

        table = Table(title=f"catalog {catalog.info.date} ({len(rows)} of {total})", title_justify="left")
        notes = [spot_note(o) for o in rows]
        headers = ["cloud", "region", "zone", "instance", "accelerator", "vCPUs", "GiB", "$/h", "spot $/h"]
        for header in headers + (["note"] if any(notes) else []):
            table.add_column(header, justify="right" if header in ("vCPUs", "GiB", "$/h", "spot $/h") else "left")
        for o, note in zip(rows, notes, strict=True):
            table.add_row(
                o.location.cloud,
                o.location.region,
                o.location.zone or "—",
                o.instance_type,
                f"{o.accelerator}×{o.accelerator_count}" if o.accelerator else "—",
                f"{o.vcpus:g}" if o.vcpus else "—",
                f"{o.memory_gib:g}" if o.memory_gib else "—",
                fmt.rate(o.price),
                fmt.rate(o.spot_price),
                *([note or ""] if any(notes) else []),
            )
        console = _console()
        console.print(table)
        if any(notes):
            console.print(f"{sum(n is not None for n in notes)} row(s) whose spot price is not below on-demand: with `use_spot: auto` the "
                          "planner runs on-demand there (spot also carries its preemption overhead)")
        return 0

    _guard(as_json, run)


def _rows_in_region(catalog, rows: list, pattern: str, *, cloud: str | None, accelerator: str | None) -> list:
    """The rows whose region matches the glob `pattern`; an error naming what exists when none does."""
    import difflib
    import fnmatch

    matched = [o for o in rows if fnmatch.fnmatch(o.location.region, pattern)]
    if matched:
        return matched
    scope = [o for o in catalog.offerings if cloud is None or o.cloud == cloud]
    regions = sorted({o.location.region for o in scope})
    where = f" on {cloud}" if cloud else ""
    if not any(fnmatch.fnmatch(r, pattern) for r in regions):
        close = difflib.get_close_matches(pattern.replace("*", "").replace("?", ""), regions, n=3, cutoff=0.5)
        if close:
            hint = f"did you mean {', '.join(close)}?"
        else:
            hint = f"regions{where}: " + ", ".join(regions[:12]) + (f" … ({len(regions)} in all)" if len(regions) > 12 else "")
        raise SkyplanError(f"--region {pattern!r}: no region{where} matches; {hint}")
    offered = sorted({o.location.region for o in rows})
    what = f"accelerator {accelerator}" if accelerator else "offering"
    shown = ", ".join(offered[:12]) + (f" … ({len(offered)} in all)" if len(offered) > 12 else "")
    raise SkyplanError(f"--region {pattern!r}: no {what}{where} in the matching regions"
                       + (f"; it is offered in: {shown}" if offered else ""))


@catalog_group.command("refresh")
@click.argument("cloud", type=click.Choice(price_refreshed_names()))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory to write <cloud>.csv into [~/.cache/skyplan/catalog]; use it with --catalog.")
@click.option("--region", "regions", multiple=True, help="Only these regions (repeatable).")
def catalog_refresh(cloud, out_dir, regions) -> None:
    """Rebuild CLOUD's prices from the cloud's own price API (read-only; needs that cloud's credentials)."""

    def run() -> int:
        from skyplan.refresh import refresh

        out = Path(out_dir) if out_dir else Path(os.path.expanduser("~/.cache/skyplan/catalog"))
        out.mkdir(parents=True, exist_ok=True)
        console = _console(stderr=True)
        path = refresh(cloud, out, regions=list(regions) or None, progress=lambda msg: console.print(msg))
        _console().print(f"wrote {path}; use it with --catalog {out}")
        return 0

    _guard(False, run)


# ---------------------------------------------------------------------------------------------
# diff
# ---------------------------------------------------------------------------------------------


@main.command("diff")
@click.argument("old_dir", type=click.Path(file_okay=False))
@click.argument("new_dir", type=click.Path(file_okay=False))
@click.option("--format", "output_format", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json (the flag every command takes).")
@click.option("--tf-plan", "tf_plans", multiple=True, metavar="STACK=FILE",
              help="Also show what `terraform plan` will do to STACK (aws, gcp, …): FILE is `terraform show -json` "
                   "or `terraform plan -json` output (repeatable).")
@click.option("--marker", "marker_name", metavar="NAME",
              help="Name in the hidden marker line <!-- skyplan-diff:NAME --> [the plan's name].")
def diff_cmd(old_dir, new_dir, output_format, as_json, tf_plans, marker_name) -> None:
    """Placement, cost and Terraform change between two compiled plans: a PR comment.

    OLD_DIR may be absent (a PR that adds the plan: everything is added). The markdown stays
    under GitHub's 65,535-character comment limit, folding long lists."""
    as_json = as_json or output_format == "json"

    def run() -> int:
        from skyplan.review.comment import comment_markdown, diff_document

        plans = {}
        for item in tf_plans:
            stack, sep, path = item.partition("=")
            if not sep or not stack or not path:
                raise SkyplanError(f"--tf-plan {item}: expected STACK=FILE (e.g. aws=aws-plan.json)")
            if stack in plans:
                raise SkyplanError(f"--tf-plan {item}: {stack} is given twice")
            plans[stack] = path
        diff = diff_document(old_dir, new_dir, tf_plans=plans, name=marker_name)
        if as_json:
            click.echo(json.dumps(diff, sort_keys=True, indent=2, ensure_ascii=False))
        else:
            click.echo(comment_markdown(diff), nl=False)
        return 0

    _guard(as_json, run)


if __name__ == "__main__":  # pragma: no cover
    main()

