"""The phone page (edge.diagnostics.page) as the node serves it: one self-contained document with
the login, status, self-test and visit parts, nothing fetched from elsewhere, and a
Content-Security-Policy that lets exactly its own script and style run."""

from __future__ import annotations

import base64
import hashlib
import re

from tests.edge.diagnostics.conftest import ServedNode, call


def page(node: ServedNode) -> tuple[str, dict[str, str]]:
    answer = call(node.url, "GET", "/diag/")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    return answer.body.decode(), answer.headers


def test_the_page_has_the_login_the_status_the_self_tests_and_the_visit_form(node: ServedNode) -> None:
    html, _ = page(node)

    for part in (
        'id="login-form"',
        'type="password"',
        'inputmode="numeric"',
        'id="s-outbox"',
        'id="s-uplink"',
        'id="s-bell"',
        'id="s-door"',
        'id="s-lamp"',
        'id="s-cameras"',
        'id="s-storage"',
        'id="self-tests"',
        'id="visit-form"',
        'value="check-in"',
        'value="resolve"',
        'value="check-out"',
        'name="technician"',
        'name="fault_id"',
        'name="note"',
        'name="viewport"',
    ):
        assert part in html, part
    # Every input has its label.
    for input_id in re.findall(r'<(?:input|textarea)[^>]*\bid="([^"]+)"', html):
        assert f'for="{input_id}"' in html, input_id


def test_the_page_fetches_nothing_from_other_hosts(node: ServedNode) -> None:
    html, _ = page(node)

    assert "http://" not in html
    assert "https://" not in html
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?(?:[a-z]+:)?//""", html, re.IGNORECASE)
    assert not re.search(r"<(?:link|img|iframe)\b", html, re.IGNORECASE)
    assert re.search(r"<script\b[^>]*\bsrc=", html) is None


def test_data_goes_into_the_page_as_text_never_as_markup(node: ServedNode) -> None:
    html, _ = page(node)
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]

    assert "textContent" in script
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


def test_the_content_security_policy_allows_the_pages_own_script_and_style(node: ServedNode) -> None:
    html, headers = page(node)
    policy = {}
    for directive in headers["Content-Security-Policy"].split("; "):
        name, _, value = directive.partition(" ")
        policy[name] = value
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]

    def digest(source: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"

    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == digest(script)
    assert policy["style-src"] == digest(style)
    assert policy["connect-src"] == "'self'"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_diag_without_the_slash_leads_to_the_page(node: ServedNode) -> None:
    html, _ = page(node)
    answer = call(node.url, "GET", "/diag")  # urllib follows the redirect

    assert answer.status == 200
    assert answer.body.decode() == html
