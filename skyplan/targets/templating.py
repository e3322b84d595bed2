"""Rendering a target's `templates/<target>/*.tf.j2` root-stack templates, shared by every target."""

from __future__ import annotations

from typing import Any

import jinja2


def aligned(pairs: list[tuple[str, str]], indent: int) -> str:
    """`key = value` lines with the `=` aligned the way `terraform fmt` aligns them.

    Keys and values must already be HCL (e.g. `hcl_string` output). fmt pads every key of a run
    of single-line attributes to the longest one, counting characters (runes), as here.
    """
    if not pairs:
        return ""
    width = max(len(k) for k, _ in pairs)
    pad = " " * indent
    return "\n".join(f"{pad}{k.ljust(width)} = {v}" for k, v in pairs)


def render_templates(target: str, **values: Any) -> dict[str, str]:
    """Render every `templates/<target>/*.tf.j2`; keys are the `.tf` file names."""
    from skyplan.assets import templates_dir
    from skyplan.hcl import jinja_filters

    folder = templates_dir() / target
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(jinja_filters())
    env.filters["aligned"] = aligned
    return {
        path.name[: -len(".j2")]: env.get_template(path.name).render(**values)
        for path in sorted(folder.glob("*.tf.j2"))
    }
