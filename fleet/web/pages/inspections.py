"""/inspections: the sites whose regular inspection is due, overdue or was never done
(fleet.inspections.service.due_by_site), filtered by site class, and a form to record one
(roles with `inspection:record`). The form's values are checked by `record_inspection`; a
refusal is shown next to the field it names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Final

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from fleet.access.roles import Permission, allowed
from fleet.access.tokens import Principal
from fleet.api.deps import DbSession, NowMs
from fleet.audit import log as audit_log
from fleet.inspections import service
from fleet.inspections.errors import InspectionRefused, UnknownSite
from fleet.inspections.schedule import INSPECTION_RESULTS, zone
from fleet.inventory.models import SITE_CLASSES
from fleet.reports.routes import Settings
from fleet.reports.service import ReportSettings
from fleet.web import i18n
from fleet.web.pages.nodes import clock_text
from fleet.web.render import language, page
from fleet.web.session import CentreUser, PageForbidden

router = APIRouter(include_in_schema=False)
SiteClassFilter = Annotated[str, Query(max_length=16)]
_LOCAL_TIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?")
# The service's field names, as the form names them.
_FORM_FIELD: Final = {"site_id": "site_id", "kind": "kind", "result": "result", "done_at_ms": "done_at"}


@dataclass(slots=True)
class InspectionForm:
    """What the user typed, kept to show again with the errors, by form field."""

    site_id: str = ""
    kind: str = "field"
    result: str = "pass"
    done_at: str = ""  # local time, "YYYY-MM-DDTHH:MM"; empty: now
    notes: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def due_sites(db: Session, now_ms: int, settings: ReportSettings, site_class: str) -> list[service.SiteDue]:
    sites = service.due_by_site(db, now_ms, schedule=settings.schedule, time_zone=settings.time_zone)
    return [s for s in sites if not site_class or s.due.site_class == site_class]


def local_ms(text: str, time_zone: str) -> int | None:
    """A datetime-local value in the city's time zone as epoch ms; None if it is not one."""
    if not _LOCAL_TIME.fullmatch(text):
        return None
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        return None
    return int(local.replace(tzinfo=zone(time_zone)).timestamp() * 1000)


def _may_record(who: Principal) -> bool:
    return allowed(who.role, Permission.INSPECTION_RECORD)


def _page(
    request: Request,
    who: Principal,
    db: Session,
    now: int,
    settings: ReportSettings,
    *,
    site_class: str,
    form: InspectionForm,
    recorded: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    if site_class not in ("", *SITE_CLASSES):
        site_class = ""
    return page(
        request,
        "inspections.html",
        who,
        status_code=status_code,
        sites=due_sites(db, now, settings, site_class),
        site_class=site_class,
        site_classes=SITE_CLASSES,
        results=INSPECTION_RESULTS,
        form=form,
        may_record=_may_record(who),
        recorded=recorded,
        when=clock_text(settings.time_zone),
        time_zone=settings.time_zone,
    )


@router.get("/inspections")
def inspections_page(
    request: Request,
    *,
    who: CentreUser,
    db: DbSession,
    now: NowMs,
    settings: Settings,
    site_class: SiteClassFilter = "",
    site_id: Annotated[str, Query(max_length=64)] = "",
    recorded: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    form = InspectionForm(site_id=site_id)
    if site_id:
        # Opened from a row's "Record" link: the kind is that site's class.
        chosen = [s for s in due_sites(db, now, settings, "") if s.site_id == site_id]
        if chosen:
            form.kind = chosen[0].due.site_class
    return _page(request, who, db, now, settings, site_class=site_class, form=form, recorded=recorded)


@router.get("/fragments/inspections/due")
def inspections_due(
    request: Request,
    *,
    who: CentreUser,
    db: DbSession,
    now: NowMs,
    settings: Settings,
    site_class: SiteClassFilter = "",
) -> HTMLResponse:
    if site_class not in ("", *SITE_CLASSES):
        site_class = ""
    return page(
        request,
        "fragments/inspection_due.html",
        who,
        sites=due_sites(db, now, settings, site_class),
        may_record=_may_record(who),
        when=clock_text(settings.time_zone),
    )


@router.post("/inspections")
def record_inspection_form(
    request: Request,
    *,
    who: CentreUser,
    db: DbSession,
    now: NowMs,
    settings: Settings,
    site_id: Annotated[str, Form(max_length=64)] = "",
    kind: Annotated[str, Form(max_length=16)] = "",
    result: Annotated[str, Form(max_length=16)] = "",
    done_at: Annotated[str, Form(max_length=32)] = "",
    notes: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    if not _may_record(who):
        raise PageForbidden(who, request.url.path)
    t = i18n.Translator(language(request))
    form = InspectionForm(site_id=site_id.strip(), kind=kind, result=result, done_at=done_at, notes=notes)
    done_at_ms = now
    if done_at.strip():
        parsed = local_ms(done_at.strip(), settings.time_zone)
        if parsed is None:
            form.errors["done_at"] = t("inspections.error.done_at", value=done_at)
        else:
            done_at_ms = parsed
    if "\x00" in notes:
        form.errors["notes"] = t("inspections.error.notes")
    if not form.errors:
        try:
            with db.begin_nested():  # a refusal leaves the request's transaction usable
                service.record_inspection(
                    db,
                    site_id=form.site_id,
                    kind=kind,
                    done_at_ms=done_at_ms,
                    by=who.subject,
                    result=result,
                    now_ms=now,
                    notes=notes,
                )
        except UnknownSite as error:
            form.errors["site_id"] = t("inspections.error.site_id", value=error.site_id)
        except InspectionRefused as error:
            name = _FORM_FIELD.get(error.field, "site_id")
            form.errors[name] = t("inspections.error.refused", reason=str(error))
    if form.errors:
        return _page(request, who, db, now, settings, site_class="", form=form, status_code=422)
    audit_log.record(
        db,
        at_ms=now,
        actor=who.subject,
        role=who.role.value,
        action="inspection.record",
        target=f"site/{form.site_id}",
        detail={"kind": kind, "result": result},
    )
    return RedirectResponse(f"/inspections?recorded={form.site_id}", status_code=303)


MESSAGES: Final = {
    "en": {
        "inspections.title": "Inspections due",
        "inspections.intro": "Sites whose regular inspection is due, overdue or was never done.",
        "inspections.site_class": "Site class",
        "inspections.all_classes": "All classes",
        "inspections.class.field": "Field (pole)",
        "inspections.class.centre": "Control centre",
        "inspections.filter": "Show",
        "inspections.site": "Site",
        "inspections.state": "State",
        "inspections.last_done": "Last done",
        "inspections.due_at": "Due by",
        "inspections.none": "Nothing due: every site is inspected on schedule.",
        "inspections.count": "Sites needing an inspection: {n}",
        "inspections.state.never": "never inspected",
        "inspections.state.due": "due",
        "inspections.state.overdue": "overdue",
        "inspections.state.ok": "on schedule",
        "inspections.record": "Record",
        "inspections.form_title": "Record an inspection",
        "inspections.form_hint": "Times are {zone} time; leave the time empty for now.",
        "inspections.kind": "Kind",
        "inspections.result": "Result",
        "inspections.result.pass": "pass",
        "inspections.result.fail": "fail",
        "inspections.result.partial": "partial",
        "inspections.done_at": "Done at",
        "inspections.notes": "Notes",
        "inspections.submit": "Record inspection",
        "inspections.recorded": "Inspection of {site} recorded.",
        "inspections.cannot_record": "Your role cannot record inspections.",
        "inspections.error.site_id": "No site {value}: give a site id from the list.",
        "inspections.error.done_at": "{value} is not a date and time (YYYY-MM-DD HH:MM).",
        "inspections.error.notes": "Notes cannot hold a NUL character.",
        "inspections.error.refused": "Not accepted: {reason}",
    },
    "ko": {
        "inspections.title": "점검 예정",
        "inspections.intro": "정기 점검 기한이 되었거나, 지났거나, 점검한 적이 없는 개소입니다.",
        "inspections.site_class": "개소 등급",
        "inspections.all_classes": "전체 등급",
        "inspections.class.field": "현장 (폴)",
        "inspections.class.centre": "관제센터",
        "inspections.filter": "보기",
        "inspections.site": "개소",
        "inspections.state": "상태",
        "inspections.last_done": "최근 점검",
        "inspections.due_at": "기한",
        "inspections.none": "예정된 점검이 없습니다. 모든 개소가 일정대로 점검되었습니다.",
        "inspections.count": "점검이 필요한 개소 {n}곳",
        "inspections.state.never": "점검 기록 없음",
        "inspections.state.due": "기한 도래",
        "inspections.state.overdue": "기한 초과",
        "inspections.state.ok": "일정대로",
        "inspections.record": "기록",
        "inspections.form_title": "점검 기록",
        "inspections.form_hint": "시각은 {zone} 기준입니다. 비워 두면 지금 시각으로 기록합니다.",
        "inspections.kind": "종류",
        "inspections.result": "결과",
        "inspections.result.pass": "합격",
        "inspections.result.fail": "불합격",
        "inspections.result.partial": "부분 합격",
        "inspections.done_at": "점검 시각",
        "inspections.notes": "메모",
        "inspections.submit": "점검 기록",
        "inspections.recorded": "{site} 점검을 기록했습니다.",
        "inspections.cannot_record": "이 역할로는 점검을 기록할 수 없습니다.",
        "inspections.error.site_id": "개소 {value}이(가) 없습니다. 목록의 개소 ID를 입력하세요.",
        "inspections.error.done_at": "{value}은(는) 날짜와 시각이 아닙니다 (YYYY-MM-DD HH:MM).",
        "inspections.error.notes": "메모에 NUL 문자를 넣을 수 없습니다.",
        "inspections.error.refused": "받을 수 없는 값입니다: {reason}",
    },
}
i18n.register(MESSAGES)
