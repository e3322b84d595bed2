"""One line per price-API failure: the service, the HTTP status and (when it is short text) why.

Price endpoints answer an outage with an HTML page; printing it buries the one fact the user
needs (which service failed, with which status) under markup, so bodies that look like HTML,
or run over several lines, are left out.
"""

from __future__ import annotations

import http

from skyplan.errors import CatalogError

_MAX_DETAIL = 200


def status_text(status: int) -> str:
    """`500 Internal Server Error`; just the number for codes without a standard phrase."""
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def readable(detail: object) -> str | None:
    """`detail` as short one-line text, or None when it is empty, markup or long."""
    text = str(detail or "").strip()
    if not text or "<" in text or "\n" in text or len(text) > _MAX_DETAIL:
        return None
    return text


def api_error(service: str, status: int | None, *details: object) -> CatalogError:
    """`AWS Pricing API (us-east-1): HTTP 500 Internal Server Error[: detail]`."""
    parts = [f"{service}: HTTP {status_text(status)}" if status else service]
    shown = [text for text in (readable(d) for d in details) if text]
    parts.extend(dict.fromkeys(shown))
    return CatalogError(": ".join(parts))
