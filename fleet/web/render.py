"""Pages from Jinja2 templates, in the user's language. `page(request, "x.html", who, ...)`
gives every template `t` (the translator), `lang`, `who`, `path` and `now_ms` (the fleet's
clock: countdowns in the browser run from it, not from the browser's own clock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from fleet.access.tokens import Principal
from fleet.web import i18n

TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
STATIC: Final = Path(__file__).resolve().parent / "static"

_ENV: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def language(request: Request) -> str:
    return i18n.choose(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))


def page(
    request: Request, template: str, who: Principal | None, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    lang = language(request)
    now_ms: int = request.app.state.clock_ms()  # the page's countdowns start from the fleet's clock
    html = _ENV.get_template(template).render(
        t=i18n.Translator(lang), lang=lang, who=who, path=request.url.path, now_ms=now_ms, **context
    )
    return HTMLResponse(html, status_code=status_code)
