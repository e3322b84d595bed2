"""Rows a price fetcher produces, and writing them in the shipped catalog CSV format."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from skyplan.catalog import CSV_HEADER, CatalogRow

Progress = Callable[[str], None]


# A fetched row has exactly the shape of a parsed catalog row.
PriceRow = CatalogRow


def sort_key(row: PriceRow) -> tuple:
    """The shipped files' row order (catalog README "Output format")."""
    return (row.instance_type, row.accelerator or "", row.accelerator_count, row.region, row.zone or "")


def format_number(value: float | None, decimals: int = 6) -> str:
    """Shortest plain-decimal text (no exponent), at most `decimals` places; "" for None."""
    if value is None:
        return ""
    text = f"{value:.{decimals}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def render_csv(rows: Iterable[PriceRow]) -> str:
    """The CSV text, header first, rows sorted and deduplicated like the shipped snapshot."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    seen: set[tuple] = set()
    for row in sorted(rows, key=sort_key):
        if sort_key(row) in seen or (row.price is None and row.spot_price is None):
            continue
        seen.add(sort_key(row))
        writer.writerow(
            [
                row.cloud,
                row.instance_type,
                row.accelerator or "",
                str(row.accelerator_count) if row.accelerator else "",
                format_number(row.vcpus, 2),
                format_number(row.memory_gib, 3),
                format_number(row.price, 8),
                format_number(row.spot_price, 8),
                row.region,
                row.zone or "",
            ]
        )
    return out.getvalue()


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a reader sees the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8", newline=""
    ) as handle:
        handle.write(text)
    os.replace(handle.name, path)


def report(progress: Progress | None, message: str) -> None:
    """Send a progress line to the caller's callback, if any."""
    if progress is not None:
        progress(message)
