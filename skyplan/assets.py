"""Where the files that ship with skyplan (templates, Terraform modules, catalog) are found.

Installed wheels carry `templates/` and `modules/` inside the package; a source checkout
(editable install, tests) keeps them at the repository top.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(f"skyplan is installed without its data: none of {candidates} exists")


def templates_dir() -> Path:
    """The jinja2 templates folder."""
    return _first_existing(_PACKAGE / "templates", _PACKAGE.parent / "templates")


def modules_dir() -> Path:
    """The hand-written Terraform modules folder (`<target>-node/`)."""
    return _first_existing(_PACKAGE / "modules", _PACKAGE.parent / "modules")


def builtin_catalog_dir() -> Path:
    """The price snapshot shipped inside the package."""
    return _PACKAGE / "data" / "catalog"
