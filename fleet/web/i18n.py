"""English and Korean for the pages. The shared messages are here; a page module registers its
own (`register`). Every key exists in both catalogs (a test checks), and a missing key fails
loudly rather than showing a blank."""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("en", "ko")
COOKIE: Final = "wp_lang"

CATALOG: Final[dict[str, dict[str, str]]] = {
    "en": {
        "app.title": "watchpost",
        "nav.overview": "Overview",
        "nav.alarms": "Bell alarms",
        "nav.faults": "Faults",
        "nav.inspections": "Inspections",
        "nav.reports": "SLA report",
        "nav.updates": "Updates",
        "nav.jobs": "My jobs",
        "nav.sign_out": "Sign out",
        "lang.switch": "한국어",
        "signin.title": "Sign in",
        "signin.token": "Your access token",
        "signin.submit": "Sign in",
        "signin.hint": "Ask an administrator for a token; it is shown once when issued.",
        "signin.refused": "That token does not let you in: {reason}",
        "live.lost": "Live updates lost: reconnecting…",
        "error.api": "The fleet manager did not answer: {reason}. The page will try again.",
        "overview.title": "Fleet overview",
        "overview.nodes": "Nodes",
        "overview.online": "Online",
        "overview.offline": "Offline",
        "overview.with_faults": "With open faults",
        "overview.latched": "Bell alarms waiting",
        "overview.open_faults": "Open faults",
        "overview.districts": "Sites by district",
        "overview.district": "District",
        "overview.search": "Search a node or site",
        "overview.all_districts": "All districts",
        "overview.health": "Nodes by health",
        "overview.shown": "{n} nodes shown",
        "health.ok": "healthy",
        "health.fault": "open fault",
        "health.offline": "offline",
        "alarm.banner": "Bell pressed at {site} ({node})",
        "alarm.banner_more": "and {n} more waiting",
        "alarm.open": "Open",
    },
    "ko": {
        "app.title": "watchpost",
        "nav.overview": "현황",
        "nav.alarms": "비상벨 알람",
        "nav.faults": "장애",
        "nav.inspections": "점검",
        "nav.reports": "SLA 보고서",
        "nav.updates": "업데이트",
        "nav.jobs": "내 작업",
        "nav.sign_out": "로그아웃",
        "lang.switch": "English",
        "signin.title": "로그인",
        "signin.token": "접속 토큰",
        "signin.submit": "로그인",
        "signin.hint": "관리자에게 토큰을 요청하세요. 토큰은 발급할 때 한 번만 표시됩니다.",
        "signin.refused": "이 토큰으로는 접속할 수 없습니다: {reason}",
        "live.lost": "실시간 연결이 끊겼습니다. 다시 연결하는 중…",
        "error.api": "관제 서버가 응답하지 않습니다: {reason}. 잠시 후 다시 시도합니다.",
        "overview.title": "전체 현황",
        "overview.nodes": "노드",
        "overview.online": "온라인",
        "overview.offline": "오프라인",
        "overview.with_faults": "장애 발생",
        "overview.latched": "대기 중인 비상벨",
        "overview.open_faults": "진행 중인 장애",
        "overview.districts": "구별 개소",
        "overview.district": "구",
        "overview.search": "노드 또는 개소 검색",
        "overview.all_districts": "전체 구",
        "overview.health": "상태별 노드",
        "overview.shown": "노드 {n}개 표시",
        "health.ok": "정상",
        "health.fault": "장애",
        "health.offline": "오프라인",
        "alarm.banner": "비상벨 호출: {site} ({node})",
        "alarm.banner_more": "외 {n}건 대기",
        "alarm.open": "열기",
    },
}


def register(messages: dict[str, dict[str, str]]) -> None:
    """A page module's own messages, added to the catalogs (keys must be new)."""
    for language in LANGUAGES:
        clash = CATALOG[language].keys() & messages[language].keys()
        if clash:
            raise ValueError(f"message keys defined twice: {sorted(clash)}")
        CATALOG[language].update(messages[language])


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The user's choice (the cookie), else the first of the browser's languages we have."""
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "en"


class Translator:
    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else "en"
        self._catalog = CATALOG[self.language]

    def __call__(self, key: str, **values: object) -> str:
        return self._catalog[key].format(**values)
