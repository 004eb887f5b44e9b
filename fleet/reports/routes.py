"""/reports/sla/{year}-{month}: the monthly SLA report as JSON, `.csv` or `.html` (printable).

The CSV holds the fault rows; `?table=inspections` gives the inspections table instead. The
time zone and inspection schedule come from `report_settings`, a dependency the app may
override with the city's own (`app.dependency_overrides[report_settings]`)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from fleet.access.roles import Permission
from fleet.api.deps import DbSession, NowMs, require
from fleet.api.errors import ApiError
from fleet.reports import render
from fleet.reports.service import ReportSettings, sla_month_report

router = APIRouter(tags=["reports"])
Reader = Depends(require(Permission.READ))

_PERIOD: Final = re.compile(r"(\d{4})-(\d{2})(?:\.(json|csv|html))?")
Format = Literal["json", "csv", "html"]


def report_settings() -> ReportSettings:
    return ReportSettings()


Settings = Annotated[ReportSettings, Depends(report_settings)]


def parse_period(period: str) -> tuple[int, int, Format | None]:
    """ "2026-11", "2026-11.csv" → (2026, 11, "csv"); ApiError 422 naming the value otherwise."""
    match = _PERIOD.fullmatch(period)
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1970:
        raise ApiError(
            422,
            "invalid-request",
            f"period {period!r}: use YYYY-MM (month 01 to 12, year from 1970), optionally with .csv or .html",
            details=[{"field": "period", "problem": "not a YYYY-MM month", "where": "path"}],
        )
    suffix: Format | None = match[3]  # type: ignore[assignment]  # the pattern allows only these
    return int(match[1]), int(match[2]), suffix


@router.get(
    "/reports/sla/{period}",
    dependencies=[Reader],
    response_model=None,
    summary="Monthly SLA report (JSON, CSV or printable HTML)",
)
def sla_month(
    period: str,
    *,
    db: DbSession,
    now: NowMs,
    settings: Settings,
    format: Annotated[
        Format | None, Query(description="json, csv or html; or use a .csv/.html suffix")
    ] = None,
    table: Annotated[
        Literal["faults", "inspections"], Query(description="which table the CSV holds")
    ] = "faults",
) -> Response:
    year, month, suffix = parse_period(period)
    if suffix is not None and format is not None and suffix != format:
        raise ApiError(
            422, "invalid-request", f"format={format!r} contradicts the path's .{suffix}: give one of them"
        )
    chosen: Format = suffix or format or "json"
    report = sla_month_report(db, year, month, now_ms=now, settings=settings)
    if chosen == "csv":
        body = render.faults_csv(report) if table == "faults" else render.inspections_csv(report)
        filename = f"sla-{report.period}-{table}.csv"
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )
    if chosen == "html":
        return HTMLResponse(render.html(report))
    content: dict[str, Any] = render.to_json(report)
    return JSONResponse(content)
