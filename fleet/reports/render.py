"""The monthly SLA report (fleet.reports.sla_month) as JSON-ready builtins, CSV and a printable
HTML page. Column names are stable: a contract manager's spreadsheet reads them month after
month. Only this module and its template know how the report looks."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import jinja2

from fleet.inspections.schedule import zone
from fleet.reports.sla_month import FaultFigures, InspectionFigures, SlaMonthReport

FAULT_COLUMNS: Final = (
    "period",
    "site_class",
    "category",
    "faults",
    "handled",
    "cancelled",
    "open_at_month_end",
    "response_met",
    "response_breached",
    "response_pending",
    "response_met_pct",
    "resolution_met",
    "resolution_breached",
    "resolution_pending",
    "resolution_met_pct",
    "acknowledged",
    "mtta_min",
    "mttr_min",
)
INSPECTION_COLUMNS: Final = (
    "period",
    "kind",
    "expected",
    "done",
    "passed",
    "failed",
    "partial",
    "sites",
)
TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
_ENV: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def pct(share: float | None) -> str:
    """A share as a percentage with one decimal ("66.7"); empty when nothing was judged."""
    return "" if share is None else f"{share * 100:.1f}"


def minutes(ms: int | None) -> str:
    """Milliseconds as minutes with one decimal ("213.3"); empty when nothing was measured."""
    return "" if ms is None else f"{ms / 60_000:.1f}"


def fault_row(period: str, figures: FaultFigures) -> dict[str, str | int]:
    return {
        "period": period,
        "site_class": figures.site_class,
        "category": figures.category,
        "faults": figures.faults,
        "handled": figures.handled,
        "cancelled": figures.cancelled,
        "open_at_month_end": figures.open_at_month_end,
        "response_met": figures.response_met,
        "response_breached": figures.response_breached,
        "response_pending": figures.response_pending,
        "response_met_pct": pct(figures.response_share),
        "resolution_met": figures.resolution_met,
        "resolution_breached": figures.resolution_breached,
        "resolution_pending": figures.resolution_pending,
        "resolution_met_pct": pct(figures.resolution_share),
        "acknowledged": figures.acknowledged,
        "mtta_min": minutes(figures.mtta_ms),
        "mttr_min": minutes(figures.mttr_ms),
    }


def inspection_row(period: str, figures: InspectionFigures) -> dict[str, str | int]:
    return {
        "period": period,
        "kind": figures.kind,
        "expected": "" if figures.expected is None else figures.expected,
        "done": figures.done,
        "passed": figures.passed,
        "failed": figures.failed,
        "partial": figures.partial,
        "sites": figures.sites,
    }


def _csv(columns: tuple[str, ...], rows: list[dict[str, str | int]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def faults_csv(report: SlaMonthReport) -> str:
    """One row per category x site class, then the total row (site class and category `all`)."""
    rows = [fault_row(report.period, f) for f in (*report.rows, report.total)]
    return _csv(FAULT_COLUMNS, rows)


def inspections_csv(report: SlaMonthReport) -> str:
    """One row per inspection kind: field, centre, remote (no expected count)."""
    return _csv(INSPECTION_COLUMNS, [inspection_row(report.period, i) for i in report.inspections])


def _figures_json(figures: FaultFigures) -> dict[str, Any]:
    return {
        "category": figures.category,
        "site_class": figures.site_class,
        "faults": figures.faults,
        "handled": figures.handled,
        "cancelled": figures.cancelled,
        "open_at_month_end": figures.open_at_month_end,
        "response": {
            "met": figures.response_met,
            "breached": figures.response_breached,
            "pending": figures.response_pending,
            "share": figures.response_share,
        },
        "resolution": {
            "met": figures.resolution_met,
            "breached": figures.resolution_breached,
            "pending": figures.resolution_pending,
            "share": figures.resolution_share,
        },
        "acknowledged": figures.acknowledged,
        "mtta_ms": figures.mtta_ms,
        "mttr_ms": figures.mttr_ms,
    }


def to_json(report: SlaMonthReport) -> dict[str, Any]:
    """The report as JSON-ready builtins: shares as fractions (0 to 1), times in ms."""
    return {
        "period": report.period,
        "time_zone": report.time_zone,
        "starts_at_ms": report.starts_at_ms,
        "ends_at_ms": report.ends_at_ms,
        "as_of_ms": report.as_of_ms,
        "final": report.final,
        "rows": [_figures_json(f) for f in report.rows],
        "class_totals": [_figures_json(f) for f in report.class_totals],
        "total": _figures_json(report.total),
        "inspections": [
            {
                "kind": i.kind,
                "expected": i.expected,
                "done": i.done,
                "passed": i.passed,
                "failed": i.failed,
                "partial": i.partial,
                "sites": i.sites,
            }
            for i in report.inspections
        ],
    }


def html(report: SlaMonthReport, *, title: str = "Maintenance SLA report") -> str:
    """A printable page: inline print stylesheet, no script, no outside asset."""
    tz = zone(report.time_zone)

    def local(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M")

    return _ENV.get_template("sla_month.html").render(
        title=title,
        report=report,
        period=report.period,
        as_of=local(report.as_of_ms),
        rows=[fault_row(report.period, f) for f in report.rows],
        class_totals=[fault_row(report.period, f) for f in report.class_totals],
        total=fault_row(report.period, report.total),
        inspections=[inspection_row(report.period, i) for i in report.inspections],
    )
