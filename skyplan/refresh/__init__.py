"""`skyplan catalog refresh CLOUD`: rebuild `<cloud>.csv` from the cloud's own price APIs.

Only prices are read (AWS Pricing + EC2 describe calls, the GCP Cloud Billing catalog, the
public Azure retail prices API); nothing is created. The file written has the shipped
snapshot's format and row order, so `skyplan compile --catalog DIR` reads it directly.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from skyplan.assets import builtin_catalog_dir
from skyplan.catalog import META_FILE, read_rows
from skyplan.errors import CatalogError
from skyplan.refresh._errors import api_error
from skyplan.refresh._rows import PriceRow, Progress, render_csv, report, write_atomically
from skyplan.sdk import missing_sdk

GCP_SERVICE = "GCP Cloud Billing Catalog API"


def refresh(
    cloud: str,
    out_dir: str | Path,
    *,
    regions: Sequence[str] | None = None,
    progress: Progress | None = None,
    base_dir: str | Path | None = None,
    source: Any = None,
) -> Path:
    """Fetch current prices for `cloud` and write `out_dir/<cloud>.csv`; return its path.

    Args:
        cloud: "aws", "gcp" or "azure".
        out_dir: directory to write into (created if missing). Other clouds' CSVs there are
            kept; missing ones are copied from the shipped snapshot so the directory stays a
            complete catalog. `catalog.yaml` records each cloud's price date.
        regions: regions to fetch; default: the regions of the base catalog.
        progress: called with one human-readable line per step.
        base_dir: catalog whose instance types, zones and shapes are re-priced (GCP zones and
            Azure shapes are not in their price APIs); default: the shipped snapshot.
        source: the API access to use instead of the default credentials, for tests and
            custom setups: a `boto3.Session` (aws), an object with `list_skus` (gcp), or a
            `fetch(url) -> dict` function (azure).

    Raises CatalogError when credentials are missing, an API call fails, or nothing was found.
    """
    from skyplan.targets import price_refreshed_names

    clouds = price_refreshed_names()
    if cloud not in clouds:
        raise CatalogError(f"cannot refresh {cloud!r}: choose one of {', '.join(clouds)}")
    base_path = Path(base_dir or builtin_catalog_dir()) / f"{cloud}.csv"
    base = read_rows(base_path) if base_path.is_file() else []
    if cloud != "aws" and not base:
        raise CatalogError(
            f"refreshing {cloud} needs a base catalog with {base_path.name}; none at {base_path}"
        )
    chosen = list(regions) if regions else sorted({row.region for row in base})
    if not chosen:
        raise CatalogError(f"no regions to refresh for {cloud}: pass regions")
    unknown = sorted(set(chosen) - {row.region for row in base})
    if unknown and cloud == "gcp":
        raise CatalogError(
            f"gcp regions {', '.join(unknown)} are not in the base catalog, which is where zones come "
            f"from (the billing API has none)"
        )

    rows = _fetch(cloud, chosen, progress, base, source)
    if not rows:
        raise CatalogError(f"{cloud}: the price API returned no prices for {', '.join(chosen)}")
    out = Path(out_dir)
    path = out / f"{cloud}.csv"
    write_atomically(path, render_csv(rows))
    read_rows(path)  # what we wrote must load: same checks as `--catalog`
    _complete_directory(out, cloud, progress)
    report(progress, f"{cloud}: wrote {len(rows)} rows to {path}")
    return path


def _fetch(
    cloud: str, regions: list[str], progress: Progress | None, base: list[PriceRow], source: Any
) -> list[PriceRow]:
    if cloud == "aws":
        _require("aws", "boto3", "boto3", "botocore")
        from skyplan.refresh import aws

        return _with_aws_errors(lambda: aws.fetch_rows(source or _aws_session(), regions, progress))
    if cloud == "gcp":
        if source is None:
            _require("gcp", "google-cloud-billing", "google.cloud.billing_v1", "google.api_core", "google.auth")
        from skyplan.refresh import gcp

        return _with_gcp_errors(lambda: gcp.fetch_rows(source or _gcp_client(), base, regions, progress))
    from skyplan.refresh import azure

    return azure.fetch_rows(base, regions, progress, fetch=source)


def _require(cloud: str, packages: str, *modules: str) -> None:
    """Import `modules` now, so that a plain install fails with the extra to install."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise missing_sdk(cloud, packages, f"refreshing {cloud} prices", CatalogError) from None


def _aws_session() -> Any:
    import boto3

    return boto3.Session()


def _with_aws_errors(run: Callable[[], list[PriceRow]]) -> list[PriceRow]:
    from botocore.exceptions import NoCredentialsError

    try:
        return run()
    except NoCredentialsError as err:
        raise CatalogError(
            "AWS credentials not found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "(refresh only reads prices: pricing:GetProducts and ec2:Describe* are enough)"
        ) from err


def _gcp_client() -> Any:
    from google.cloud import billing_v1

    return billing_v1.CloudCatalogClient()


def _with_gcp_errors(run: Callable[[], list[PriceRow]]) -> list[PriceRow]:
    try:
        from google.api_core.exceptions import GoogleAPICallError, GoogleAPIError
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError:  # a test's fake client without the SDK installed
        return run()
    try:
        return run()
    except DefaultCredentialsError as err:
        raise CatalogError(
            "Google credentials not found: run `gcloud auth application-default login` or set "
            "GOOGLE_APPLICATION_CREDENTIALS (refresh only reads the public billing catalog)"
        ) from err
    except GoogleAPICallError as err:
        # `code` is the HTTP status for REST and gRPC calls alike (api_core maps gRPC codes).
        raise api_error(GCP_SERVICE, err.code, getattr(err, "reason", None), err.message) from err
    except GoogleAPIError as err:  # retries exhausted, and other failures without a response
        raise api_error(GCP_SERVICE, None, str(err).splitlines()[0] if str(err) else type(err).__name__) from err


def _complete_directory(out: Path, cloud: str, progress: Progress | None) -> None:
    """Copy the other clouds' shipped CSVs into `out` when missing, so that `--catalog out`
    still offers every cloud, and record each cloud's price date in `catalog.yaml` (the
    catalog's `date` is the oldest of them: how stale the directory is)."""
    builtin = builtin_catalog_dir()
    doc = _read_meta(out / META_FILE)
    dates = (
        {str(k): str(v) for k, v in (doc.get("clouds") or {}).items()}
        if isinstance(doc.get("clouds"), dict)
        else {}
    )
    dates[cloud] = _dt.datetime.now(_dt.timezone.utc).date().isoformat()
    builtin_date = str(_read_meta(builtin / META_FILE).get("date") or "")
    from skyplan.targets import price_refreshed_names

    for other in price_refreshed_names():
        target = out / f"{other}.csv"
        if other == cloud:
            continue
        if not target.exists() and (builtin / target.name).is_file():
            shutil.copyfile(builtin / target.name, target)
            dates[other] = builtin_date
            report(
                progress, f"{other}: no {target.name} in {out}; copied the shipped snapshot ({builtin_date})"
            )
        elif target.exists() and other not in dates:
            mtime = _dt.datetime.fromtimestamp(target.stat().st_mtime, tz=_dt.timezone.utc)
            dates[other] = mtime.date().isoformat()
    doc["clouds"] = dict(sorted(dates.items()))
    doc["date"] = min(dates.values())
    write_atomically(out / META_FILE, yaml.safe_dump(doc, sort_keys=True))


def _read_meta(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
