"""/reports: the monthly SLA report (fleet.reports) inside the dashboard. `/reports` opens the
previous month in the city's time zone (or the one picked), `/reports/{YYYY-MM}` shows it,
`/reports/{YYYY-MM}.csv` downloads the same CSV as the API for the signed-in user (the API
wants a bearer token a browser does not hold), and `/reports/{YYYY-MM}/print` is the
printable page of fleet.reports.render."""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from fleet.api.deps import DbSession, NowMs
from fleet.inspections.schedule import local_month, zone
from fleet.reports import render
from fleet.reports.routes import Settings
from fleet.reports.service import ReportSettings, sla_month_report
from fleet.reports.sla_month import SlaMonthReport
from fleet.web import i18n
from fleet.web.pages.nodes import clock_text
from fleet.web.render import language, page
from fleet.web.session import CentreUser

router = APIRouter(include_in_schema=False)
_PERIOD: Final = re.compile(r"(\d{4})-(\d{2})")
Table = Literal["faults", "inspections"]


def month_of(period: str) -> tuple[int, int] | None:
    """ "2026-10" → (2026, 10); None for anything else (month 01 to 12, year from 1970)."""
    match = _PERIOD.fullmatch(period)
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1970:
        return None
    return int(match[1]), int(match[2])


def previous_month(now_ms: int, time_zone: str) -> str:
    year, month = local_month(now_ms, zone(time_zone))
    year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return f"{year:04d}-{month:02d}"


def _report(db: Session, period: str, now: int, settings: ReportSettings) -> SlaMonthReport | None:
    month = month_of(period)
    if month is None:
        return None
    return sla_month_report(db, *month, now_ms=now, settings=settings)


def _bad_period(
    request: Request, who: CentreUser, period: str, now: int, settings: ReportSettings
) -> HTMLResponse:
    t = i18n.Translator(language(request))
    return page(
        request,
        "report.html",
        who,
        status_code=422,
        report=None,
        period=period,
        default_period=previous_month(now, settings.time_zone),
        error=t("report.bad_period", value=period),
    )


@router.get("/reports")
def report_index(
    who: CentreUser, now: NowMs, settings: Settings, period: Annotated[str, Query(max_length=16)] = ""
) -> Response:
    """The month picked in the form, else the previous one."""
    chosen = period.strip() or previous_month(now, settings.time_zone)
    return RedirectResponse(f"/reports/{quote(chosen, safe='')}", status_code=303)


@router.get("/reports/{period}.csv")
def report_csv(
    request: Request,
    *,
    period: str,
    who: CentreUser,
    db: DbSession,
    now: NowMs,
    settings: Settings,
    table: Table = "faults",
) -> Response:
    report = _report(db, period, now, settings)
    if report is None:
        return _bad_period(request, who, period, now, settings)
    body = render.faults_csv(report) if table == "faults" else render.inspections_csv(report)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="sla-{report.period}-{table}.csv"'},
    )


@router.get("/reports/{period}/print")
def report_print(
    request: Request, *, period: str, who: CentreUser, db: DbSession, now: NowMs, settings: Settings
) -> Response:
    report = _report(db, period, now, settings)
    if report is None:
        return _bad_period(request, who, period, now, settings)
    return HTMLResponse(render.html(report))  # the API's printable page, as it is


@router.get("/reports/{period}")
def report_page(
    request: Request, *, period: str, who: CentreUser, db: DbSession, now: NowMs, settings: Settings
) -> HTMLResponse:
    report = _report(db, period, now, settings)
    if report is None:
        return _bad_period(request, who, period, now, settings)
    return page(
        request,
        "report.html",
        who,
        report=report,
        period=report.period,
        default_period=previous_month(now, settings.time_zone),
        error=None,
        rows=[render.fault_row(report.period, f) for f in report.rows],
        class_totals=[render.fault_row(report.period, f) for f in report.class_totals],
        total=render.fault_row(report.period, report.total),
        inspections=[render.inspection_row(report.period, i) for i in report.inspections],
        when=clock_text(settings.time_zone),
    )


MESSAGES: Final = {
    "en": {
        "report.title": "SLA report {period}",
        "report.heading": "Maintenance SLA report",
        "report.month": "Month",
        "report.show": "Show",
        "report.bad_period": "{value} is not a month: use YYYY-MM (month 01 to 12).",
        "report.scope": "Faults opened in {period} ({zone} time). Figures as of {as_of}.",
        "report.final": "Final: the month is over and every clock is judged.",
        "report.not_final": (
            "Not final: the month is not over or clocks are still running "
            "({response} response, {resolution} resolution pending)."
        ),
        "report.csv": "Download CSV (faults)",
        "report.csv_inspections": "Download CSV (inspections)",
        "report.print": "Print",
        "report.summary": "Month at a glance",
        "report.faults": "Faults",
        "report.handled": "Handled",
        "report.cancelled": "Cancelled",
        "report.open_at_month_end": "Open at month end",
        "report.response_met_pct": "Response met (%)",
        "report.resolution_met_pct": "Resolution met (%)",
        "report.mtta": "MTTA (min)",
        "report.mttr": "MTTR (min)",
        "report.by_category": "Faults by category and site class",
        "report.site_class": "Site class",
        "report.category": "Category",
        "report.met": "Met",
        "report.breached": "Breached",
        "report.pending": "Pending",
        "report.response": "Response",
        "report.resolution": "Resolution",
        "report.no_faults": "No faults opened this month.",
        "report.total": "Total",
        "report.inspections": "Inspections",
        "report.kind": "Kind",
        "report.expected": "Expected",
        "report.done": "Done",
        "report.passed": "Passed",
        "report.failed": "Failed",
        "report.partial": "Partial",
        "report.sites": "Sites",
    },
    "ko": {
        "report.title": "SLA 보고서 {period}",
        "report.heading": "유지보수 SLA 보고서",
        "report.month": "월",
        "report.show": "보기",
        "report.bad_period": "{value}은(는) 월이 아닙니다. YYYY-MM 형식으로 입력하세요 (01~12월).",
        "report.scope": "{period}에 발생한 장애 ({zone} 기준). {as_of} 현재 수치입니다.",
        "report.final": "확정: 월이 끝났고 모든 기한이 판정되었습니다.",
        "report.not_final": (
            "미확정: 월이 끝나지 않았거나 진행 중인 기한이 있습니다 "
            "(출동 {response}건, 복구 {resolution}건 판정 대기)."
        ),
        "report.csv": "CSV 내려받기 (장애)",
        "report.csv_inspections": "CSV 내려받기 (점검)",
        "report.print": "인쇄",
        "report.summary": "월간 요약",
        "report.faults": "장애",
        "report.handled": "처리",
        "report.cancelled": "자동 해소",
        "report.open_at_month_end": "월말 미처리",
        "report.response_met_pct": "출동 기한 준수율 (%)",
        "report.resolution_met_pct": "복구 기한 준수율 (%)",
        "report.mtta": "평균 확인 시간 (분)",
        "report.mttr": "평균 복구 시간 (분)",
        "report.by_category": "유형 및 개소 등급별 장애",
        "report.site_class": "개소 등급",
        "report.category": "유형",
        "report.met": "준수",
        "report.breached": "위반",
        "report.pending": "대기",
        "report.response": "출동",
        "report.resolution": "복구",
        "report.no_faults": "이번 달에 발생한 장애가 없습니다.",
        "report.total": "합계",
        "report.inspections": "점검",
        "report.kind": "종류",
        "report.expected": "계획",
        "report.done": "실시",
        "report.passed": "합격",
        "report.failed": "불합격",
        "report.partial": "부분 합격",
        "report.sites": "개소 수",
    },
}
i18n.register(MESSAGES)
