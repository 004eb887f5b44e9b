"""Dashboard: what the control centre's overview (`/`) costs a browser with the whole fleet on
it. Real PostgreSQL, the fleet (API and pages, uvicorn) in a process of its own (as
bench/fleet_api.py runs it), Debian's Chromium (`/usr/bin/chromium --no-sandbox`, headless)
driven by Playwright.

N nodes with sites, controllers and cameras, one in ten offline with its offline fault, one in
twenty with a door fault (`bench.fleet_api.seed_fleet`: through the models and the fault
store). Each load is a fresh browser context (cold cache, new connection; the server is warm),
signed in with a viewer's cookie, after a warm-up.

- Time to first paint and first contentful paint: `performance.getEntriesByType('paint')`,
  from the navigation's start. Reference: the same page on an empty fleet (0 nodes), the
  layout's own cost. The issue's aim: under 1 s.
- Page weight: the HTML and every sub-resource the page loaded (CSS, JS, fonts, the fragments
  htmx fetches), from the Performance API's navigation and resource entries once the banner
  fragment has arrived (decoded bytes; and bytes on the wire). The live stream (`/live`, an
  open event stream) is not counted.
- The bare HTML: `GET /` over one keep-alive connection from Python (server render + transfer,
  no browser), for both fleets.

Before each load its context opens `about:blank` and waits 0.5 s (the browser's own start-up of
the context, and the last one's teardown, out of the way), then navigates to `/`.

On the 2-core dev machine (2026-11-25, three full runs, other sessions' tests running beside,
load average 4-6):

- first contentful paint, 3,000 nodes (first paint is the same frame): p50 336-480 ms, p95
  540-900 ms; aim < 1 s, met in each run. Reference, 0 nodes: p50 116-164 ms, p95 184-252 ms.
  (Earlier runs without the pause before the load, at load average 6-9: p50 450-720 ms, p95
  0.9-1.5 s; on a busy machine the aim is only just met, or not.)
- page weight, 3,000 nodes: 458,698 B (HTML 381,948, CSS 18,295, JS 58,455: htmx, its SSE
  extension, app.js; no fonts; the alarm banner's fragment empty), the same on the wire
  (no compression); 0 nodes: 79,598 B, of which HTML 2,848.
- GET / alone (no browser), 3,000 nodes: p50 45-75 ms, p95 171-333 ms; 0 nodes p50 4-6 ms.

Where the time goes, 3,000 nodes (p50 of the last run): the first byte at 70 ms, the HTML in
at 75 ms, parsed (domInteractive) at 144 ms, first contentful paint at 336 ms; the renderer's
main thread spends 328 ms on the load (style 33, layout 59, script 33; the rest is parsing and
painting ~3,000 cells, ~9,000 DOM nodes) against 111 ms for the empty page. In the fleet
process, `overview()` is ~40 ms: `node_cells`' SQL ~12 ms, `counts` ~4 ms, the Jinja render
~21 ms. So the overview is not slow at 3,000 nodes, and what it costs grows with the cells, in
the browser more than in the server. The one small lever in overview_nodes.html is each cell's
`title` (45 % of the HTML): a static copy of the page without them painted ~15 % sooner (p50
396 vs 462 ms), but the title is a cell's only non-colour cue of its health, and its site's
name, so it stays. `content-visibility: auto` on the cells did not help (same static test).
Past a few thousand nodes: send the grid per district, or after the first paint.

    python bench/dashboard.py [--quick]
"""

from __future__ import annotations

import http.client
import logging
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy.orm import Session

from bench._report import print_header, quick_flag
from bench.fleet_api import new_database, running_fleet, seed_fleet, viewer_token
from fleet.faults.store import FaultTicketRow
from fleet.inventory.models import Node
from watchpost.postgres import PostgresCluster

CHROMIUM: Final = Path("/usr/bin/chromium")


@dataclass(frozen=True, slots=True)
class Counts:
    nodes: int
    loads: int  # timed page loads per fleet
    warmup: int  # untimed loads first
    requests: int  # timed bare-HTML requests per fleet


FULL, QUICK = Counts(3000, 10, 2, 30), Counts(300, 3, 1, 5)
TARGET_FCP_MS: Final = 1000.0

FCP = "first contentful paint, overview"
FP = "first paint, overview"
HTML = "GET / HTML alone, keep-alive, no browser"
WEIGHT = "page weight, overview"

# After `load`: wait for the fragment htmx fetches on load, then read what the page loaded.
_ENTRIES: Final = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const paint = Object.fromEntries(performance.getEntriesByType('paint').map(p => [p.name, p.startTime]));
  const resources = performance.getEntriesByType('resource').map(r => ({
    name: r.name, initiator: r.initiatorType, decoded: r.decodedBodySize, transfer: r.transferSize,
  }));
  return {
    paint, resources,
    html: {decoded: nav.decodedBodySize, transfer: nav.transferSize},
    at: {
      request: nav.requestStart, ttfb: nav.responseStart, html: nav.responseEnd,
      interactive: nav.domInteractive, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
    },
  };
}"""
_BANNER_FETCHED: Final = (
    "() => performance.getEntriesByType('resource').some(r => r.name.includes('/fragments/banner'))"
)


@dataclass(frozen=True, slots=True)
class Weight:
    """Bytes of one load by kind: decoded (as the page has them) and on the wire (headers too)."""

    decoded: dict[str, int]
    transfer: int

    @property
    def total(self) -> int:
        return sum(self.decoded.values())


@dataclass(frozen=True, slots=True)
class Load:
    fp_ms: float
    fcp_ms: float
    at_ms: dict[str, float]  # navigation milestones from its start
    main_thread_ms: dict[str, float]  # the renderer's work for the whole load (DevTools metrics)
    weight: Weight


# Chromium's DevTools `Performance.getMetrics`: seconds of the renderer's main thread.
MAIN_THREAD: Final = {
    "style": "RecalcStyleDuration",
    "layout": "LayoutDuration",
    "script": "ScriptDuration",
    "all tasks": "TaskDuration",
}
# The browser's own start-up of the context (and the last one's teardown) done before the load.
PAUSE_BEFORE_LOAD_S: Final = 0.5


def kind_of(name: str, initiator: str) -> str:
    path = name.split("?", maxsplit=1)[0]
    if path.endswith(".css"):
        return "css"
    if path.endswith(".js"):
        return "js"
    if path.endswith((".woff", ".woff2", ".ttf", ".otf")):
        return "fonts"
    if initiator in ("xmlhttprequest", "fetch"):
        return "fragments"
    return "other"


def weigh(entries: dict[str, Any]) -> Weight:
    decoded = {
        "html": int(entries["html"]["decoded"]),
        "css": 0,
        "js": 0,
        "fonts": 0,
        "fragments": 0,
        "other": 0,
    }
    transfer = int(entries["html"]["transfer"])
    for resource in entries["resources"]:
        if "/live" in resource["name"]:
            continue  # the event stream: open as long as the page is
        decoded[kind_of(resource["name"], resource["initiator"])] += int(resource["decoded"])
        transfer += int(resource["transfer"])
    return Weight(decoded, transfer)


def load_once(browser: Browser, base: str, token: str) -> Load:
    context = browser.new_context(base_url=base, viewport={"width": 1440, "height": 900})
    try:
        context.add_cookies([{"name": "wp_session", "value": token, "url": base}])
        page = context.new_page()
        page.goto("about:blank")
        time.sleep(PAUSE_BEFORE_LOAD_S)
        devtools = context.new_cdp_session(page)
        devtools.send("Performance.enable")
        response = page.goto("/", wait_until="load")
        if response is None or response.status != 200:
            raise RuntimeError(f"GET / answered {response.status if response else 'nothing'}")
        page.wait_for_function(_BANNER_FETCHED, timeout=30_000)
        page.wait_for_function("() => performance.getEntriesByType('paint').length >= 2", timeout=30_000)
        entries: dict[str, Any] = page.evaluate(_ENTRIES)
        metrics = {m["name"]: m["value"] for m in devtools.send("Performance.getMetrics")["metrics"]}
    finally:
        context.close()
    paint = entries["paint"]
    return Load(
        fp_ms=float(paint["first-paint"]),
        fcp_ms=float(paint["first-contentful-paint"]),
        at_ms={name: float(value) for name, value in entries["at"].items()},
        main_thread_ms={name: float(metrics[key]) * 1000 for name, key in MAIN_THREAD.items()},
        weight=weigh(entries),
    )


def html_times(port: int, token: str, warmup: int, requests: int) -> list[float]:
    """ms of each `GET /` over one keep-alive connection, after `warmup` untimed ones."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Cookie": f"wp_session={token}"}
    samples = []
    try:
        for n in range(warmup + requests):
            started = time.perf_counter()
            conn.request("GET", "/", headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200 or not body:
                raise RuntimeError(f"GET /: {response.status}")
            if n >= warmup:
                samples.append(elapsed)
    finally:
        conn.close()
    return samples


@dataclass(frozen=True, slots=True)
class FleetRun:
    nodes: int
    offline: int
    with_faults: int
    loads: list[Load]
    html_ms: list[float]

    def samples(self, what: str) -> list[float]:
        return [getattr(load, what) for load in self.loads]


def fleet_counts(engine: sa.Engine) -> tuple[int, int, int]:
    with Session(engine) as db:
        nodes = db.scalar(sa.select(sa.func.count()).select_from(Node)) or 0
        offline = db.scalar(sa.select(sa.func.count()).select_from(Node).where(Node.online.is_(False))) or 0
        faulty = (
            db.scalar(
                sa.select(sa.func.count(sa.distinct(FaultTicketRow.node_id))).where(
                    FaultTicketRow.open_key.is_not(None)
                )
            )
            or 0
        )
    return nodes, offline, faulty


def measure(postgres: PostgresCluster, browser: Browser, name: str, nodes: int, counts: Counts) -> FleetRun:
    url, engine = new_database(postgres, name)
    try:
        if nodes:
            seed_fleet(engine, nodes)
        token = viewer_token(engine)
        in_fleet = fleet_counts(engine)
    finally:
        engine.dispose()
    with running_fleet(url) as port:
        base = f"http://127.0.0.1:{port}"
        for _ in range(counts.warmup):
            load_once(browser, base, token)
        loads = []
        for _ in range(counts.loads):
            loads.append(load_once(browser, base, token))
        html_ms = html_times(port, token, counts.warmup, counts.requests)
    return FleetRun(*in_fleet, loads=loads, html_ms=html_ms)


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest rank, as bench._report.percentile."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def print_timings(rows: Sequence[tuple[str, Sequence[float]]]) -> None:
    """`label  p50 ...  p95 ...  ms (n samples)`, references indented under their figure."""
    width = max(len(label) for label, _ in rows)
    for label, samples in rows:
        p50, p95 = percentile(samples, 50), percentile(samples, 95)
        print(f"{label:<{width}}  p50 {p50:8,.1f}  p95 {p95:8,.1f}  ms   ({len(samples)} samples)")


def print_weights(rows: Sequence[tuple[str, Weight]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, weight in rows:
        parts = ", ".join(f"{kind} {size:,}" for kind, size in weight.decoded.items())
        print(f"{label:<{width}}  total {weight.total:,} B   ({parts}; on the wire {weight.transfer:,} B)")


def run(quick: bool) -> tuple[FleetRun, FleetRun, str]:
    counts = QUICK if quick else FULL
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} not found: install Debian's chromium (scripts/bootstrap test)")
    with PostgresCluster() as postgres, sync_playwright() as playwright:
        # --no-sandbox: as root (CI), Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            full = measure(postgres, browser, "dashboard", counts.nodes, counts)
            empty = measure(postgres, browser, "dashboard_empty", 0, counts)
            version = browser.version
        finally:
            browser.close()
    return full, empty, version


def main(argv: list[str] | None = None) -> int:
    quick = quick_flag((__doc__ or "").splitlines()[0], argv)
    logging.basicConfig(level=logging.ERROR)
    counts = QUICK if quick else FULL
    full, empty, version = run(quick)
    print_header(
        "dashboard: the overview page's first paint and weight with the whole fleet on it",
        [
            ("browser", f"Chromium {version} ({CHROMIUM}, headless, --no-sandbox), Playwright"),
            ("fleet", "API + pages (uvicorn) in a process of its own; real PostgreSQL"),
            (
                "overview",
                f"{full.nodes:,} nodes ({full.offline:,} offline, {full.with_faults:,} with open faults); "
                f"reference: {empty.nodes} nodes",
            ),
            (
                "loads",
                f"{counts.loads} per fleet after {counts.warmup} warm-up, each in a fresh context "
                f"(cold cache); {counts.requests} bare-HTML requests",
            ),
        ],
        quick=quick,
    )
    n = f"{full.nodes:,} nodes"
    print_timings(
        [
            (f"{FCP}, {n}", full.samples("fcp_ms")),
            (f"  reference: {FCP}, 0 nodes (the layout alone)", empty.samples("fcp_ms")),
            (f"{FP}, {n}", full.samples("fp_ms")),
            (f"  reference: {FP}, 0 nodes", empty.samples("fp_ms")),
            (f"{HTML}, {n}", full.html_ms),
            (f"  reference: {HTML}, 0 nodes", empty.html_ms),
        ]
    )
    print("  where the time goes (p50 from the navigation's start, ms):")
    for run_, label in ((full, n), (empty, "0 nodes")):
        milestones = ", ".join(
            f"{name} {statistics.median(load.at_ms[name] for load in run_.loads):,.1f}"
            for name in ("request", "ttfb", "html", "interactive", "dcl", "load")
        )
        work = ", ".join(
            f"{name} {statistics.median(load.main_thread_ms[name] for load in run_.loads):,.1f}"
            for name in MAIN_THREAD
        )
        print(f"    {label}: {milestones}")
        print(f"    {' ' * len(label)}  renderer main thread: {work}")
    print()
    print_weights(
        [
            (f"{WEIGHT}, {n}", full.loads[-1].weight),
            (f"  reference: {WEIGHT}, 0 nodes", empty.loads[-1].weight),
        ]
    )
    p95 = percentile(full.samples("fcp_ms"), 95)
    verdict = "met" if p95 < TARGET_FCP_MS else "NOT met"
    print(f"{FCP}, {n}: target p95 < {TARGET_FCP_MS:.0f} ms, {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
